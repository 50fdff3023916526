// The websocket transport's frames (src/interop/webexec/ws/frames.ts): msgpack maps, chunked
// past 1 MiB into at most 1,024 slices and 64 MiB, both ways; and a parser that answers any
// bytes a peer sends with a message, a wait, or a FrameError, never anything else.
import { describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import { pack } from 'msgpackr'
import { Float64 } from '../../serializers/cbor.ts'
import {
  decodeMessage,
  encodeMessage,
  FrameError,
  framesOf,
  MAX_FRAME_BYTES,
  MAX_MESSAGE_BYTES,
  MessageAssembler,
} from '../../src/interop/webexec/ws/frames.ts'

const MiB = 1024 * 1024

function assemble(frames: Uint8Array[]): Record<string, unknown> {
  const assembler = new MessageAssembler()
  let last: ReturnType<MessageAssembler['push']> = { waiting: true }
  for (const frame of frames) last = assembler.push(frame)
  if (!('message' in last)) throw new Error('no message came out')
  expect(assembler.waitingForChunks).toBe(false)
  return last.message
}

describe('frames of the websocket transport', () => {
  test('a small message is one frame; a larger one a _chunked header and 1 MiB slices, put back in order', () => {
    const small = { _kind: 'heartbeat' }
    expect(framesOf(encodeMessage(small))).toHaveLength(1)
    expect(assemble(framesOf(encodeMessage(small)))).toEqual(small)

    const payload = new Uint8Array(3 * MiB - 100).map((_, i) => i % 251)
    const message = { request_id: 'r1', inputs: { image: payload } }
    const frames = framesOf(encodeMessage(message))
    expect(frames).toHaveLength(4)
    expect(decodeMessage(frames[0]!)).toEqual({ _chunked: 3 })
    expect(frames.slice(1).map((f) => f.byteLength)).toEqual([MiB, MiB, frames[3]!.byteLength])
    const back = assemble(frames)
    expect(back.request_id).toBe('r1')
    expect(new Uint8Array((back.inputs as { image: Uint8Array }).image)).toEqual(payload)
  })

  test('exactly 1 MiB goes in one frame; over 64 MiB is refused before sending', () => {
    const exact = new Uint8Array(MAX_FRAME_BYTES)
    expect(framesOf(exact)).toEqual([exact])
    expect(() => framesOf(new Uint8Array(MAX_MESSAGE_BYTES + 1))).toThrow(FrameError)
  })

  test('a header must name 1 to 1,024 chunks as a whole number', () => {
    for (const count of [0, 1025, 2.5, true, '3', null, -1])
      expect(() => new MessageAssembler().push(pack({ _chunked: count }))).toThrow(
        /_chunked must be a whole number of chunks from 1 to 1024/,
      )
  })

  test('chunks past 64 MiB together are refused, however many the header promised', () => {
    const assembler = new MessageAssembler()
    assembler.push(pack({ _chunked: 1024 }))
    const slice = new Uint8Array(MiB)
    for (let i = 0; i < 64; i++) expect(assembler.push(slice)).toEqual({ waiting: true })
    expect(() => assembler.push(new Uint8Array(1))).toThrow(/64 ?MiB|67108864-byte limit/)
  })

  test('a frame that is not msgpack, or not a map, or too large is a FrameError that says so', () => {
    const assembler = new MessageAssembler()
    expect(() => assembler.push(new Uint8Array([0x82, 0xa1]))).toThrow(/not msgpack/) // cut short
    expect(() => assembler.push(new Uint8Array([0xc1]))).toThrow(
      /0xc1 is not one this protocol uses/,
    )
    expect(() => assembler.push(pack([1, 2]))).toThrow(/must be a msgpack map, not an array/)
    expect(() => assembler.push(pack('hello'))).toThrow(/not string "hello"/)
    expect(() => assembler.push(new Uint8Array(MAX_FRAME_BYTES + 1))).toThrow(/above/)
  })

  test('fuzz: any bytes are a message, a wait or a FrameError, never another error', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 8 }), (frames) => {
        const assembler = new MessageAssembler()
        for (const frame of frames) {
          try {
            const out = assembler.push(frame)
            if ('message' in out) expect(typeof out.message).toBe('object')
          } catch (error) {
            expect(error).toBeInstanceOf(FrameError)
            return
          }
        }
      }),
      { numRuns: 2000 },
    )
  })

  test('fuzz: maps of any msgpack values come back equal through frames, chunked or not', () => {
    const value = fc.letrec((tie) => ({
      leaf: fc.oneof(
        fc.string(),
        fc.integer(),
        fc.double({ noNaN: true }),
        fc.boolean(),
        fc.constant(null),
        fc.uint8Array({ maxLength: 64 }),
      ),
      node: fc.oneof(
        { depthSize: 'small' },
        tie('leaf'),
        fc.array(tie('node'), { maxLength: 4 }),
        fc.dictionary(fc.string(), tie('node'), { maxKeys: 4 }),
      ),
    })).node
    fc.assert(
      fc.property(fc.dictionary(fc.string(), value), fc.nat(2.5 * MiB), (message, padding) => {
        const withPadding = { ...message, _padding: new Uint8Array(padding) }
        const back = assemble(framesOf(encodeMessage(withPadding)))
        expect(normalize(back)).toEqual(normalize(withPadding))
      }),
      { numRuns: 12 },
    )
  }, 30_000)
})

/**
 * Bytes as plain arrays of numbers, -0 as 0, and a whole float as its number: msgpackr packs a
 * JavaScript number past 32 bits as a float64, which the reader keeps as a Float64.
 */
function normalize(value: unknown): unknown {
  if (value instanceof Float64) return normalize(value.value)
  if (value instanceof Uint8Array) return { bytes: Array.from(value) }
  if (Array.isArray(value)) return value.map(normalize)
  if (typeof value === 'number' && Object.is(value, -0)) return 0
  if (value && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalize(v)]))
  return value
}
