// A msgpack reader that keeps what Python sent: Inference packs with Python's msgpack, where
// `3.0` is a float64 and `3` an int, and a block must get back the same type. JavaScript has
// no whole float, and msgpackr reads both as the number 3, so this reader gives a whole-valued
// float as a Float64 (serializers/cbor.ts: the runtime then gets a float, as from JSON's
// `3.0`), bin as bytes, ints beyond 2^53 as bigints. Maps become plain objects with string
// keys only (as the client's own reader demands); no extension types. A peer's bytes are
// untrusted: every length is checked against what is left before anything is allocated.
import { Float64 } from '../../../../serializers/cbor.ts'

export class MsgpackError extends Error {
  override name = 'MsgpackError'
}

/** Deeper nesting than this is refused: no workflow value nests so far. */
const MAX_DEPTH = 256

export function readMsgpack(bytes: Uint8Array): unknown {
  const reader = new Reader(bytes)
  const value = reader.value(0)
  if (reader.at !== bytes.byteLength)
    throw new MsgpackError(`${bytes.byteLength - reader.at} bytes after the value`)
  return value
}

const decoder = new TextDecoder('utf-8', { fatal: true })

class Reader {
  at = 0
  private readonly view: DataView

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  value(depth: number): unknown {
    if (depth > MAX_DEPTH) throw new MsgpackError(`nested deeper than ${MAX_DEPTH}`)
    const type = this.uint(1)
    if (type <= 0x7f) return type
    if (type >= 0xe0) return type - 0x100
    if (type <= 0x8f) return this.map(type & 0x0f, depth)
    if (type <= 0x9f) return this.array(type & 0x0f, depth)
    if (type <= 0xbf) return this.str(type & 0x1f)
    switch (type) {
      case 0xc0:
        return null
      case 0xc2:
        return false
      case 0xc3:
        return true
      case 0xc4:
      case 0xc5:
      case 0xc6:
        return this.take(this.uint(1 << (type - 0xc4))).slice()
      case 0xca:
        return float(this.view.getFloat32(this.advance(4)))
      case 0xcb:
        return float(this.view.getFloat64(this.advance(8)))
      case 0xcc:
      case 0xcd:
      case 0xce:
        return this.uint(1 << (type - 0xcc))
      case 0xcf:
        return safe(this.view.getBigUint64(this.advance(8)))
      case 0xd0:
        return this.view.getInt8(this.advance(1))
      case 0xd1:
        return this.view.getInt16(this.advance(2))
      case 0xd2:
        return this.view.getInt32(this.advance(4))
      case 0xd3:
        return safe(this.view.getBigInt64(this.advance(8)))
      case 0xd9:
      case 0xda:
      case 0xdb:
        return this.str(this.uint(1 << (type - 0xd9)))
      case 0xdc:
      case 0xdd:
        return this.array(this.uint(2 << (type - 0xdc)), depth)
      case 0xde:
      case 0xdf:
        return this.map(this.uint(2 << (type - 0xde)), depth)
      default:
        // 0xc1 (never used), ext and fixext (0xc7-0xc9, 0xd4-0xd8): no part of the protocol.
        throw new MsgpackError(`type byte 0x${type.toString(16)} is not one this protocol uses`)
    }
  }

  private map(count: number, depth: number): Record<string, unknown> {
    this.fits(count * 2)
    const map: Record<string, unknown> = {}
    for (let i = 0; i < count; i++) {
      const key = this.value(depth + 1)
      if (typeof key !== 'string')
        throw new MsgpackError(`a map key must be a string, not ${typeof key}`)
      // defineProperty: a key named "__proto__" is a key like any other, never the prototype.
      Object.defineProperty(map, key, {
        value: this.value(depth + 1),
        enumerable: true,
        writable: true,
        configurable: true,
      })
    }
    return map
  }

  private array(count: number, depth: number): unknown[] {
    this.fits(count)
    const array = new Array<unknown>(count)
    for (let i = 0; i < count; i++) array[i] = this.value(depth + 1)
    return array
  }

  private str(length: number): string {
    try {
      return decoder.decode(this.take(length))
    } catch {
      throw new MsgpackError('a string that is not UTF-8')
    }
  }

  /** An unsigned big-endian integer of `size` bytes (1, 2 or 4). */
  private uint(size: number): number {
    const at = this.advance(size)
    if (size === 1) return this.view.getUint8(at)
    if (size === 2) return this.view.getUint16(at)
    return this.view.getUint32(at)
  }

  private take(length: number): Uint8Array {
    return this.bytes.subarray(this.advance(length), this.at)
  }

  /** Moves past `length` bytes; where they start. */
  private advance(length: number): number {
    this.fits(length)
    const at = this.at
    this.at += length
    return at
  }

  /** At least `count` more bytes (each element takes one at least): a lying length is refused before any allocation. */
  private fits(count: number): void {
    if (count > this.bytes.byteLength - this.at)
      throw new MsgpackError(
        `cut short: ${count} more bytes announced, ${this.bytes.byteLength - this.at} left`,
      )
  }
}

/** A float as Python sent it: a whole value (or -0.0) as a Float64, else the number. */
const float = (value: number) => (Number.isInteger(value) ? new Float64(value) : value)

/** An int64 as a number when it is one exactly, else a bigint. */
const safe = (value: bigint) =>
  value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(value)
    : value
