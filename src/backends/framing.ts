// Frames between the proxy and a Python runtime (a local worker, or the runtime server in an
// E2B sandbox); template/runtime/framing.py is the twin.
//   frame   := length (u32 BE) payload
//   payload := head length (u32 BE) head (one CBOR item) [padding] sidecar
// The sidecar carries large typed-array bytes, 64-byte aligned, so they are written to
// the pipe as they are (no copy into one buffer) and become numpy arrays without a copy.
//
// Everything a runtime sends is hostile input (it shares its process with the block): its head is decoded with a budget for the
// bytes its references may hand over, and may carry only the tags the protocol uses.
import {
  alignSidecar,
  decodeWithSidecar,
  encodeWithSidecar,
  Tag,
  TYPED_ARRAY_TAGS,
  TypedBytes,
  type SharedRegion,
} from '../../serializers/cbor.ts'
import { SERIALIZERS } from '../../serializers/index.ts'
import { HOMOGENEOUS_TAG } from '../../serializers/ndarray/index.ts'

const U32 = 4

/** The frame as the pieces to write, in order: large buffers are not copied together. */
export function encodeFrame(message: unknown, region: SharedRegion | null = null): Uint8Array[] {
  const { head, buffers } = encodeWithSidecar(message, region)
  const prefix = new Uint8Array(2 * U32)
  const parts: Uint8Array[] = [prefix, head]
  let size = U32 + head.byteLength
  for (const buffer of buffers) {
    const start = alignSidecar(size)
    if (start > size) parts.push(new Uint8Array(start - size))
    parts.push(buffer)
    size = start + buffer.byteLength
  }
  const view = new DataView(prefix.buffer)
  view.setUint32(0, size)
  view.setUint32(U32, head.byteLength)
  return parts
}

export class FrameTooLarge extends Error {
  override name = 'FrameTooLarge'
}

/** Reassembles frames from arbitrary chunks of a byte stream. */
export class FrameReader {
  private chunks: Uint8Array[] = []
  private buffered = 0

  constructor(
    private readonly maxFrameBytes: number,
    /** Where the peer may have put large buffers instead of the frame. */
    private readonly region: SharedRegion | null = null,
  ) {}

  /** Adds a chunk and returns every frame it completed, decoded. */
  push(chunk: Uint8Array): unknown[] {
    this.chunks.push(chunk)
    this.buffered += chunk.byteLength
    const frames: unknown[] = []
    for (;;) {
      if (this.buffered < U32) return frames
      const header = this.peek(U32)
      const length = new DataView(header.buffer, header.byteOffset, U32).getUint32(0)
      if (length > this.maxFrameBytes) {
        throw new FrameTooLarge(
          `the runtime sent a ${length}-byte frame, over the ${this.maxFrameBytes}-byte limit`,
        )
      }
      if (this.buffered < U32 + length) return frames
      frames.push(
        decodePayload(this.take(U32 + length).subarray(U32), this.region, this.maxFrameBytes),
      )
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

/**
 * The tags a frame's values may keep after decoding: dates, the kinds and the arrays inside
 * them. Bignums (2, 3) and references (61440, 61444) are decoded into values on the way.
 */
export const WORKER_FRAME_TAGS: ReadonlySet<number> = new Set([
  0,
  1,
  HOMOGENEOUS_TAG,
  ...SERIALIZERS.flatMap((serializer) => serializer.tags),
  ...Array.from(
    { length: TYPED_ARRAY_TAGS.last - TYPED_ARRAY_TAGS.first + 1 },
    (_, i) => TYPED_ARRAY_TAGS.first + i,
  ),
])

function decodePayload(
  payload: Uint8Array,
  region: SharedRegion | null,
  maxReferencedBytes: number,
): unknown {
  if (payload.byteLength < U32)
    throw new Error(`frame payload of ${payload.byteLength} bytes has no head length`)
  const headLength = new DataView(payload.buffer, payload.byteOffset, U32).getUint32(0)
  if (U32 + headLength > payload.byteLength)
    throw new Error(`frame head of ${headLength} bytes overruns its payload`)
  const head = payload.subarray(U32, U32 + headLength)
  const message = decodeWithSidecar(
    head,
    payload.subarray(Math.min(payload.byteLength, alignSidecar(U32 + headLength))),
    region,
    maxReferencedBytes,
  )
  refuseForeignTags(message)
  return message
}

/** Throws at the first tag in `value` that the runtime protocol does not use. */
function refuseForeignTags(value: unknown): void {
  const pending: unknown[] = [value]
  while (pending.length > 0) {
    const node = pending.pop()
    if (node === null || typeof node !== 'object' || ArrayBuffer.isView(node)) continue
    if (node instanceof Tag || node instanceof TypedBytes) {
      if (!WORKER_FRAME_TAGS.has(node.tag))
        throw new Error(
          `a runtime frame carries CBOR tag ${node.tag}, which the protocol does not use`,
        )
      if (node instanceof Tag) pending.push(node.value)
    } else if (Array.isArray(node)) {
      for (const item of node) if (item !== null && typeof item === 'object') pending.push(item)
    } else {
      for (const item of Object.values(node))
        if (item !== null && typeof item === 'object') pending.push(item)
    }
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
