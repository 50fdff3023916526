import { describe, expect, test } from 'bun:test'
import { encodeFrame, FrameReader, FrameTooLarge } from '../src/backends/local/framing.ts'

describe('worker frames', () => {
  test('a frame is a big-endian length then one CBOR item', () => {
    expect([...encodeFrame({ op: 'ping' })]).toEqual([0, 0, 0, 9, 0xa1, 0x62, 0x6f, 0x70, 0x64, 0x70, 0x69, 0x6e, 0x67])
  })

  test('frames split at every byte boundary reassemble', () => {
    const messages = [{ op: 'run', n: 1 }, { op: 'load', text: 'é'.repeat(300) }, { ok: true }]
    const stream = new Uint8Array(messages.flatMap((m) => [...encodeFrame(m)]))
    for (const size of [1, 2, 3, 5, 7, 64, stream.length]) {
      const reader = new FrameReader(1 << 20)
      const seen: unknown[] = []
      for (let at = 0; at < stream.length; at += size) seen.push(...reader.push(stream.subarray(at, at + size)))
      expect(seen).toEqual(messages)
    }
  })

  test('an oversized frame is refused before it is buffered', () => {
    const reader = new FrameReader(16)
    expect(() => reader.push(new Uint8Array([0, 0, 1, 0]))).toThrow(FrameTooLarge)
  })
})
