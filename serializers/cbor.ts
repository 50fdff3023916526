// The one place cbor-x is configured and extended. cbor-x's defaults (record extension,
// tagged Uint8Array, fixed-width map headers, typed arrays turned into JS classes that
// cannot tell a uint8 array from a byte string) are not what Python's cbor2 reads or
// what golden vectors can be compared against, so every option that matters is set here
// on purpose, and every extension is registered here, once. test/cbor.test.ts pins it.
//
// 'cbor-x/encode' is the pure-JS entry: the package root also loads the optional native
// cbor-extract addon, which aborts the Bun process when decoding longer strings.
import type { Tag as CborTag } from 'cbor-x'
import * as decodeEntry from 'cbor-x/decode'
import { addExtension, Encoder, FLOAT32_OPTIONS } from 'cbor-x/encode'

/** cbor-x's class for a tag it has no meaning for (its pure-JS entry's types omit it). */
export const Tag = (decodeEntry as unknown as { Tag: typeof CborTag }).Tag
export type Tag = CborTag

const codec = new Encoder({
  useRecords: false, // no cbor-x record extension (tag 105): plain CBOR maps
  mapsAsObjects: true, // maps decode to plain objects (keys are strings on our wire)
  variableMapSize: true, // shortest map length header, as cbor2 writes it
  tagUint8Array: false, // byte strings go untagged (tag 64 only inside RFC 8746 arrays)
  useFloat32: FLOAT32_OPTIONS.NEVER, // a JS number keeps its full float64 precision
  int64AsNumber: false, // 64-bit integers stay exact (BigInt)
  copyBuffers: false, // byte strings and typed arrays are views of the input: no copy
  pack: false,
  structuredClone: false,
  bundleStrings: false,
} as ConstructorParameters<typeof Encoder>[0])

/**
 * The bytes of an RFC 8746 typed array (tags 64–87), kept as a view with its tag.
 * cbor-x would turn tag 64 into a Uint8Array that re-encodes as a plain byte string, and
 * has no class for float16: keeping tag and bytes makes every dtype round-trip exactly.
 */
export class TypedBytes {
  constructor(
    readonly tag: number,
    readonly bytes: Uint8Array,
  ) {}
}

/**
 * A plain byte string that may ride in a worker frame's sidecar when large (an encoded
 * image file). Outside frames it is an ordinary byte string.
 */
export class ByteString {
  constructor(readonly bytes: Uint8Array) {}
}

/** An RFC 3339 timestamp (tag 0) kept as its text, so its UTC offset survives a round trip. */
export class TimestampText {
  constructor(readonly text: string) {}
  toJSON(): string {
    return this.text
  }
}

export const TYPED_ARRAY_TAGS = { first: 64, last: 87 } as const

type Write = (data: unknown) => void

// cbor-x's extension type wants `encode` to return bytes, but it ignores the return value
// and expects the content to be written through the callback; these two helpers say so once.
function decodeTag(tag: number, decode: (content: never) => unknown): void {
  addExtension({ tag, decode } as never)
}
// Registering a class also (re)sets the tag's decoder: pass the one it should keep.
function encodeClass<T>(
  Class: Function & { prototype: T },
  tag: number,
  encode: (value: T, write: Write) => void,
  decode?: (content: never) => unknown,
): void {
  addExtension({ Class, tag, encode, decode } as never)
}

for (let tag = TYPED_ARRAY_TAGS.first; tag <= TYPED_ARRAY_TAGS.last; tag++) {
  decodeTag(tag, (bytes: Uint8Array) => new TypedBytes(tag, bytes))
}
/**
 * Worker frames carry large typed-array bytes after the CBOR head ("sidecar"), 64-byte
 * aligned, so the Python side maps them to numpy arrays without a copy; the head holds
 * [offset, length] under this tag instead of the bytes. Never valid from a client.
 */
export const SIDECAR = { tag: 61440, align: 64, minBytes: 4096 } as const

export const alignSidecar = (n: number) => Math.ceil(n / SIDECAR.align) * SIDECAR.align

/**
 * A worker's shared-memory region: large buffers are copied into it rather than pushed
 * through the worker's socket (which hands 6 MB over in ~30 kernel round trips). The
 * head refers to them by [offset, length] under REGION_TAG.
 */
export interface SharedRegion {
  /** Copies bytes in; their offset, or null when they do not fit. */
  write(bytes: Uint8Array): number | null
  /** A fresh copy of the bytes at [offset, offset + length); throws when out of range. */
  read(offset: number, length: number): Uint8Array
}
export const REGION = { tag: 61444, minBytes: 1024 * 1024 } as const

let sidecarOut: { buffers: Uint8Array[]; size: number; region: SharedRegion | null } | null = null
let sidecarIn: Uint8Array | null = null
let regionIn: SharedRegion | null = null

/** Writes bytes inline, or, inside a frame and when large, a reference to the sidecar. */
function writeBytes(bytes: Uint8Array, write: Write): void {
  if (!sidecarOut || bytes.byteLength < SIDECAR.minBytes) return write(bytes)
  if (sidecarOut.region && bytes.byteLength >= REGION.minBytes) {
    const at = sidecarOut.region.write(bytes)
    if (at !== null) return write(new Tag([at, bytes.byteLength], REGION.tag))
  }
  const offset = sidecarOut.size
  sidecarOut.buffers.push(bytes)
  sidecarOut.size = alignSidecar(offset + bytes.byteLength)
  write(new Tag([offset, bytes.byteLength], SIDECAR.tag))
}

// The tag comes from the value: cbor-x asks getTag when an extension has no fixed tag.
addExtension({ Class: TypedBytes, getTag: (value: TypedBytes) => value.tag, encode: (value: TypedBytes, write: Write) => writeBytes(value.bytes, write) } as never)
addExtension({ Class: ByteString, encode: (value: ByteString, write: Write) => writeBytes(value.bytes, write) } as never)

/** [offset, length] of a sidecar or region reference, or null when it is not two non-negative integers. */
function bufferReference(ref: unknown): [number, number] | null {
  const [offset, length] = Array.isArray(ref) ? ref : []
  return Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 && length >= 0 ? [offset, length] : null
}

decodeTag(SIDECAR.tag, (ref: unknown) => {
  if (!sidecarIn) throw new Error(`tag ${SIDECAR.tag} is internal to blockgate's worker frames`)
  const at = bufferReference(ref)
  if (!at || at[0] + at[1] > sidecarIn.byteLength) throw new Error(`sidecar reference ${JSON.stringify(ref)} is outside the frame`)
  return sidecarIn.subarray(at[0], at[0] + at[1])
})

// Dates are kept as sent (tag 0 text with its offset, tag 1 seconds with every digit);
// decodeKinds checks them, so a bad one is a 400 naming its path, not a failure in cbor2.
encodeClass(
  TimestampText,
  0,
  (value, write) => write(value.text),
  (text: unknown) => (typeof text === 'string' ? new TimestampText(text) : new Tag(text, 0)),
)
decodeTag(1, (seconds: unknown) => new Tag(seconds, 1))

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/

/** Why a decoded date (tag 0 or 1) is not one cbor2 will read, or null when it is fine. */
export function dateProblem(value: TimestampText | Tag): string | null {
  if (value instanceof TimestampText) return RFC3339.test(value.text) ? null : `tag 0 must hold an RFC 3339 date-time with an offset, got ${JSON.stringify(value.text)}`
  if (value.tag === 0) return 'tag 0 must hold text'
  const seconds = value.value
  return (typeof seconds === 'number' && Number.isFinite(seconds)) || typeof seconds === 'bigint' ? null : 'tag 1 must hold a finite number of seconds'
}

// cbor-x gives some tags meanings (shared references, packed tables, objects built from
// class names, sets and maps) that no peer of ours sends; from a client they would only
// be a way to build surprising values. They stay inert Tag objects.
for (const tag of [6, 27, 28, 29, 51, 258, 259]) decodeTag(tag, (value: unknown) => new Tag(value, tag))

/** Registers how a class of ours is written; each kind's plugin calls this once. */
export function registerEncoder<T>(Class: Function & { prototype: T }, tag: number, toContent: (value: T) => unknown): void {
  encodeClass(Class, tag, (value, write) => write(toContent(value)))
}

/**
 * Encodes one CBOR item. The bytes stay valid: cbor-x never writes over the region it
 * returned, it continues after it or moves to a new buffer.
 */
export function encodeCbor(value: unknown): Uint8Array {
  return codec.encode(value)
}

decodeTag(REGION.tag, (ref: unknown) => {
  if (!regionIn) throw new Error(`tag ${REGION.tag} is internal to blockgate's worker frames`)
  const at = bufferReference(ref)
  if (!at) throw new Error(`region reference ${JSON.stringify(ref)} is malformed`)
  return regionIn.read(at[0], at[1])
})

/** Encodes a worker frame's head; typed arrays of SIDECAR.minBytes or more go to `buffers`. */
export function encodeWithSidecar(value: unknown, region: SharedRegion | null = null): { head: Uint8Array; buffers: Uint8Array[] } {
  sidecarOut = { buffers: [], size: 0, region }
  try {
    return { head: codec.encode(value), buffers: sidecarOut.buffers }
  } finally {
    sidecarOut = null
  }
}

/** Decodes a worker frame's head whose sidecar references point into `region`. */
export function decodeWithSidecar(head: Uint8Array, sidecar: Uint8Array, region: SharedRegion | null = null): unknown {
  sidecarIn = sidecar
  regionIn = region
  try {
    return codec.decode(head)
  } finally {
    sidecarIn = null
    regionIn = null
  }
}

/** Decodes exactly one CBOR item; throws on malformed or trailing bytes. */
export function decodeCbor(bytes: Uint8Array): unknown {
  return codec.decode(bytes)
}
