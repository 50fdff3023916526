// Length-prefixed CBOR frames, the local worker protocol: a 4-byte big-endian length,
// then that many bytes holding one CBOR item. template/runtime/framing.py is the twin.
import { decodeCbor, encodeCbor } from '../../../serializers/cbor.ts'

const HEADER_BYTES = 4

export function encodeFrame(message: unknown): Uint8Array {
  const body = encodeCbor(message)
  const frame = new Uint8Array(HEADER_BYTES + body.byteLength)
  new DataView(frame.buffer).setUint32(0, body.byteLength)
  frame.set(body, HEADER_BYTES)
  return frame
}

export class FrameTooLarge extends Error {
  override name = 'FrameTooLarge'
}

/** Reassembles frames from arbitrary chunks of a byte stream. */
export class FrameReader {
  private chunks: Uint8Array[] = []
  private buffered = 0

  constructor(private readonly maxFrameBytes: number) {}

  /** Adds a chunk and returns every frame it completed, decoded. */
  push(chunk: Uint8Array): unknown[] {
    this.chunks.push(chunk)
    this.buffered += chunk.byteLength
    const frames: unknown[] = []
    for (;;) {
      if (this.buffered < HEADER_BYTES) return frames
      const header = this.peek(HEADER_BYTES)
      const length = new DataView(header.buffer, header.byteOffset, HEADER_BYTES).getUint32(0)
      if (length > this.maxFrameBytes) {
        throw new FrameTooLarge(`worker sent a ${length}-byte frame, over the ${this.maxFrameBytes}-byte limit`)
      }
      if (this.buffered < HEADER_BYTES + length) return frames
      const frame = this.take(HEADER_BYTES + length)
      frames.push(decodeCbor(frame.subarray(HEADER_BYTES)))
    }
  }

  private peek(n: number): Uint8Array {
    const first = this.chunks[0]!
    if (first.byteLength >= n) return first.subarray(0, n)
    this.chunks = [concat(this.chunks, this.buffered)]
    return this.chunks[0]!.subarray(0, n)
  }

  private take(n: number): Uint8Array {
    const joined = this.chunks.length === 1 ? this.chunks[0]! : concat(this.chunks, this.buffered)
    this.chunks = joined.byteLength > n ? [joined.subarray(n)] : []
    this.buffered -= n
    return joined.subarray(0, n)
  }
}

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total)
  let offset = 0
  for (const chunk of chunks) {
    out.set(chunk, offset)
    offset += chunk.byteLength
  }
  return out
}
