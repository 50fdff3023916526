// CBOR written byte by byte, for tests that forge what no well-behaved encoder writes:
// tags cbor-x gives meanings to, oversized bignums, reply frames with forged references.

/** A major type's header with the shortest argument for `n`. */
export function header(major: number, n: number | bigint): Uint8Array {
  const value = BigInt(n)
  const top = major << 5
  if (value < 24n) return new Uint8Array([top | Number(value)])
  for (const [extra, size] of [
    [24, 1],
    [25, 2],
    [26, 4],
    [27, 8],
  ] as const) {
    if (value < 1n << BigInt(8 * size)) {
      const out = new Uint8Array(1 + size)
      out[0] = top | extra
      for (let i = 0; i < size; i++) out[size - i] = Number((value >> BigInt(8 * i)) & 0xffn)
      return out
    }
  }
  throw new Error(`${n} does not fit a CBOR argument`)
}

export const join = (...parts: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts))

export const cbor = {
  uint: (n: number | bigint) => header(0, n),
  bytes: (bytes: Uint8Array) => join(header(2, bytes.byteLength), bytes),
  text: (text: string) => {
    const utf8 = Buffer.from(text)
    return join(header(3, utf8.byteLength), utf8)
  },
  array: (...items: Uint8Array[]) => join(header(4, items.length), ...items),
  map: (...entries: [string, Uint8Array][]) =>
    join(header(5, entries.length), ...entries.flatMap(([key, value]) => [cbor.text(key), value])),
  tag: (tag: number | bigint, content: Uint8Array) => join(header(6, tag), content),
  simple: (n: number) => (n < 24 ? new Uint8Array([0xe0 | n]) : new Uint8Array([0xf8, n])),
  /** A bignum (tag 2, or 3 for -1 - n) over `magnitude` as given, leading zeros and all. */
  bignum: (magnitude: Uint8Array, negative = false) =>
    cbor.tag(negative ? 3 : 2, cbor.bytes(magnitude)),
}

/** `length` bytes of a fixed pattern (never all zeros), quick to make at any size. */
export function patternBytes(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length)
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed * 17 + 1) & 0xff
  return out
}

/** The integer a bignum's magnitude bytes stand for, computed the slow and obvious way. */
export function magnitudeOf(bytes: Uint8Array): bigint {
  let value = 0n
  for (const byte of bytes) value = (value << 8n) | BigInt(byte)
  return value
}

/**
 * A worker frame as a worker writes it: length, head length, head, padding to the 64-byte
 * boundary, then the sidecar.
 */
export function workerFrame(head: Uint8Array, sidecar: Uint8Array = new Uint8Array()): Uint8Array {
  const sidecarStart = sidecar.byteLength
    ? Math.ceil((4 + head.byteLength) / 64) * 64
    : 4 + head.byteLength
  const payload = new Uint8Array(sidecarStart + sidecar.byteLength)
  new DataView(payload.buffer).setUint32(0, head.byteLength)
  payload.set(head, 4)
  payload.set(sidecar, sidecarStart)
  const frame = new Uint8Array(4 + payload.byteLength)
  new DataView(frame.buffer).setUint32(0, payload.byteLength)
  frame.set(payload, 4)
  return frame
}
