import { describe, expect, test } from 'bun:test'
import { decodeCbor, encodeCbor, TypedBytes } from '../serializers/cbor.ts'
import { encodeFrame, FrameReader, FrameTooLarge } from '../src/backends/local/framing.ts'

const frameBytes = (message: unknown) => Buffer.concat(encodeFrame(message))

describe('worker frames', () => {
  test('a frame is a length, a head length, then one CBOR item', () => {
    expect([...frameBytes({ op: 'ping' })]).toEqual([0, 0, 0, 13, 0, 0, 0, 9, 0xa1, 0x62, 0x6f, 0x70, 0x64, 0x70, 0x69, 0x6e, 0x67])
  })

  test('large typed arrays ride in the sidecar, 64-byte aligned, and come back as views', () => {
    const big = new TypedBytes(85, new Uint8Array(8192).map((_, i) => i % 251))
    const small = new TypedBytes(64, new Uint8Array([1, 2, 3]))
    const parts = encodeFrame({ big, small })
    expect(parts).toContain(big.bytes) // written as it is, not copied into the head
    const frame = Buffer.concat(parts)
    const headLength = frame.readUInt32BE(4)
    const regionStart = 4 + Math.ceil((4 + headLength) / 64) * 64
    expect(Buffer.from(frame.subarray(regionStart, regionStart + 8192)).equals(Buffer.from(big.bytes))).toBe(true)
    const [decoded] = new FrameReader(1 << 20).push(frame) as { big: TypedBytes; small: TypedBytes }[]
    expect(decoded!.big.tag).toBe(85)
    expect(Buffer.from(decoded!.big.bytes).equals(Buffer.from(big.bytes))).toBe(true)
    expect(decoded!.big.bytes.buffer).toBe(frame.buffer) // a view of the frame, not a copy
    expect([...decoded!.small.bytes]).toEqual([1, 2, 3])
  })

  test('a sidecar reference from a client is refused', () => {
    const forged = Buffer.from('d8 55 d9 f0 00 82 00 04'.replace(/ /g, ''), 'hex')
    expect(() => decodeCbor(forged)).toThrow(/internal to blockgate/)
    expect(encodeCbor(new TypedBytes(64, new Uint8Array(5000))).byteLength).toBeGreaterThan(5000) // inline outside frames
  })

  test('frames split at every byte boundary reassemble', () => {
    const messages = [{ op: 'run', n: 1 }, { op: 'load', text: 'é'.repeat(300) }, { ok: true }]
    const stream = new Uint8Array(messages.flatMap((m) => [...frameBytes(m)]))
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
