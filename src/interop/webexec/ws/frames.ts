// Frames of Inference's websocket transport (WEBEXEC_TRANSPORT=websocket; the protocol, from
// inference-core 1.8.3's client and Roboflow's server, is written up in
// docs/webexec-websocket.md). Every message is one msgpack map in a binary frame; one larger
// than 1 MiB travels as a `{"_chunked": N}` frame and then N raw slices of its bytes, in
// order (2..1024 slices, 64 MiB at most), the same both ways. This file reads and writes
// frames only: what a message means is the connection's business.
import { Packr } from 'msgpackr'
import { Float64 } from '../../../../serializers/cbor.ts'
import { MsgpackError, readMsgpack } from './msgpack-read.ts'

/** A message larger than this is chunked; each chunk is at most this long. */
export const MAX_FRAME_BYTES = 1024 * 1024
export const MAX_CHUNKS = 1024
/** The largest message either side sends or accepts, chunks put together. */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024
/** How long the chunks of a message may take to follow their header, each. */
export const CHUNK_TIMEOUT_MS = 30_000

/** A peer broke the framing: answered with an error frame and a close (1011, as Roboflow's server). */
export class FrameError extends Error {
  override name = 'FrameError'
}

// Whole numbers stay ints and fractional ones float64, as Python's msgpack writes them; a
// value whose int/float kind must survive (a block's result) is packed by the runtime itself.
const packr = new Packr({ useRecords: false, moreTypes: false, useFloat32: 0 })

/** One msgpack map, from a peer (floats kept as Python sent them): anything else is a FrameError. */
export function decodeMessage(bytes: Uint8Array): Record<string, unknown> {
  let value: unknown
  try {
    value = readMsgpack(bytes)
  } catch (error) {
    if (!(error instanceof MsgpackError)) throw error
    throw new FrameError(`a frame that is not msgpack: ${error.message}`)
  }
  if (
    typeof value !== 'object' ||
    value === null ||
    Array.isArray(value) ||
    value instanceof Uint8Array ||
    value instanceof Float64
  )
    throw new FrameError(`a message must be a msgpack map, not ${describe(value)}`)
  return value as Record<string, unknown>
}

export function encodeMessage(message: Record<string, unknown>): Uint8Array {
  return packr.pack(message)
}

/** A value already packed (a block's result as the runtime wrote it), put in a message as it is. */
export class Packed {
  constructor(readonly bytes: Uint8Array) {}
}

/** A number written as float64 whatever its value (Python reads a float back, even for 0). */
export class AsFloat {
  constructor(readonly value: number) {}
}

/**
 * A map of string keys whose values may be Packed or AsFloat: the one way a message holds
 * bytes packed elsewhere without decoding and packing them again.
 */
export function encodeMap(fields: Record<string, unknown>): Uint8Array {
  const entries = Object.entries(fields).filter(([, value]) => value !== undefined)
  const parts: Uint8Array[] = [mapHeader(entries.length)]
  for (const [key, value] of entries) {
    parts.push(packr.pack(key))
    if (value instanceof Packed) parts.push(value.bytes)
    else if (value instanceof AsFloat) {
      const float = new Uint8Array(9)
      float[0] = 0xcb
      new DataView(float.buffer).setFloat64(1, value.value)
      parts.push(float)
    } else parts.push(packr.pack(value))
  }
  return Buffer.concat(parts)
}

function mapHeader(size: number): Uint8Array {
  if (size < 16) return Uint8Array.of(0x80 | size)
  return Uint8Array.of(0xde, size >> 8, size & 0xff)
}

/**
 * The frames that carry one packed message: itself, or a `_chunked` header and its slices.
 * Throws FrameError when it is larger than the transport allows (the caller answers with
 * an error message instead).
 */
export function framesOf(packed: Uint8Array): Uint8Array[] {
  if (packed.byteLength <= MAX_FRAME_BYTES) return [packed]
  if (packed.byteLength > MAX_MESSAGE_BYTES)
    throw new FrameError(
      `${packed.byteLength} bytes, above the websocket transport's ${MAX_MESSAGE_BYTES}-byte limit`,
    )
  const count = Math.ceil(packed.byteLength / MAX_FRAME_BYTES)
  const frames = [encodeMessage({ _chunked: count })]
  for (let at = 0; at < packed.byteLength; at += MAX_FRAME_BYTES)
    frames.push(packed.subarray(at, at + MAX_FRAME_BYTES))
  return frames
}

/** What a frame completed: a message, or nothing yet (a header, or a chunk of one). */
export type Assembled = { message: Record<string, unknown> } | { waiting: true }

/**
 * Puts a peer's frames back together into messages. One message at a time, as both sides
 * send: after a `_chunked` header, the next frames are its slices, whatever they hold.
 */
export class MessageAssembler {
  private expected = 0
  private parts: Uint8Array[] = []
  private bytes = 0

  /** Whether a chunked message is incomplete (the connection times its chunks). */
  get waitingForChunks(): boolean {
    return this.expected > 0
  }

  /** `maxBytes`: the largest message this peer may send (the transport's, or less). */
  constructor(private readonly maxBytes = MAX_MESSAGE_BYTES) {}

  /** How many chunks the message being put together has, and how many came. */
  get progress(): { expected: number; received: number } {
    return { expected: this.expected, received: this.parts.length }
  }

  push(frame: Uint8Array): Assembled {
    if (this.expected > 0) return this.chunk(frame)
    if (frame.byteLength > MAX_FRAME_BYTES)
      throw new FrameError(`a frame of ${frame.byteLength} bytes, above ${MAX_FRAME_BYTES}`)
    if (frame.byteLength > this.maxBytes) throw this.tooLarge(frame.byteLength)
    const message = decodeMessage(frame)
    if (!('_chunked' in message)) return { message }
    const count = message._chunked
    if (typeof count !== 'number' || !Number.isInteger(count) || count < 1 || count > MAX_CHUNKS)
      throw new FrameError(
        `_chunked must be a whole number of chunks from 1 to ${MAX_CHUNKS}, not ${describe(count)}`,
      )
    this.expected = count
    return { waiting: true }
  }

  private chunk(frame: Uint8Array): Assembled {
    this.bytes += frame.byteLength
    if (frame.byteLength > MAX_FRAME_BYTES)
      throw new FrameError(`a chunk of ${frame.byteLength} bytes, above ${MAX_FRAME_BYTES}`)
    if (this.bytes > this.maxBytes) throw this.tooLarge(this.bytes)
    this.parts.push(frame)
    if (this.parts.length < this.expected) return { waiting: true }
    const whole = new Uint8Array(this.bytes)
    let at = 0
    for (const part of this.parts) {
      whole.set(part, at)
      at += part.byteLength
    }
    this.expected = 0
    this.parts = []
    this.bytes = 0
    return { message: decodeMessage(whole) }
  }

  private tooLarge(bytes: number): FrameError {
    return new FrameError(
      `a message of ${bytes} bytes or more, above the ${this.maxBytes}-byte limit for this connection`,
    )
  }
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return String(value)
  if (value instanceof Uint8Array) return `${value.byteLength} bytes`
  if (Array.isArray(value)) return 'an array'
  if (value instanceof Float64) return `float ${value.value}`
  if (typeof value === 'object') return 'a map'
  if (typeof value === 'string') return `string ${JSON.stringify(value.slice(0, 40))}`
  return `${typeof value} ${String(value)}`
}
