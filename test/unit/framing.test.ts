import { describe, expect, test } from 'bun:test'
import {
  BIGNUM,
  decodeCbor,
  encodeCbor,
  Tag,
  TimestampText,
  TypedBytes,
} from '../../serializers/cbor.ts'
import {
  encodeFrame,
  FrameReader,
  FrameTooLarge,
  WORKER_FRAME_TAGS,
} from '../../src/backends/framing.ts'
import { cbor, patternBytes, workerFrame } from '../support/cbor-bytes.ts'

const frameBytes = (message: unknown) => Buffer.concat(encodeFrame(message))

describe('worker frames', () => {
  test('a frame is a length, a head length, then one CBOR item', () => {
    expect([...frameBytes({ op: 'ping' })]).toEqual([
      0, 0, 0, 13, 0, 0, 0, 9, 0xa1, 0x62, 0x6f, 0x70, 0x64, 0x70, 0x69, 0x6e, 0x67,
    ])
  })

  test('large typed arrays ride in the sidecar, 64-byte aligned, and come back as views', () => {
    const big = new TypedBytes(
      85,
      new Uint8Array(8192).map((_, i) => i % 251),
    )
    const small = new TypedBytes(64, new Uint8Array([1, 2, 3]))
    const parts = encodeFrame({ big, small })
    expect(parts).toContain(big.bytes) // written as it is, not copied into the head
    const frame = Buffer.concat(parts)
    const headLength = frame.readUInt32BE(4)
    const regionStart = 4 + Math.ceil((4 + headLength) / 64) * 64
    expect(
      Buffer.from(frame.subarray(regionStart, regionStart + 8192)).equals(Buffer.from(big.bytes)),
    ).toBe(true)
    const [decoded] = new FrameReader(1 << 20).push(frame) as {
      big: TypedBytes
      small: TypedBytes
    }[]
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
      for (let at = 0; at < stream.length; at += size)
        seen.push(...reader.push(stream.subarray(at, at + size)))
      expect(seen).toEqual(messages)
    }
  })

  test('an oversized frame is refused before it is buffered', () => {
    const reader = new FrameReader(16)
    expect(() => reader.push(new Uint8Array([0, 0, 1, 0]))).toThrow(FrameTooLarge)
  })
})

// What a block can write to its own socket: every byte of it is hostile input.
describe('forged reply frames', () => {
  const sidecarRef = (offset: number, length: number) =>
    cbor.tag(61440, cbor.array(cbor.uint(offset), cbor.uint(length)))

  test('references together hand over no more than the frame limit', () => {
    // 2,000 references to the same 64 KiB of sidecar: a 14 KB head that referred to 131 MB.
    const head = cbor.map(
      ['ok', cbor.simple(21)],
      ['pieces', cbor.array(...Array.from({ length: 2000 }, () => sidecarRef(0, 65536)))],
    )
    const frame = workerFrame(head, patternBytes(65536))
    expect(() => new FrameReader(1 << 20).push(frame)).toThrow(
      'sidecar reference [0, 65536] would bring the bytes this frame refers to to 1114112, over the 1048576-byte frame limit',
    )
    const [reply] = new FrameReader(1 << 20).push(
      workerFrame(cbor.array(sidecarRef(0, 65536), sidecarRef(0, 65536)), patternBytes(65536)),
    )
    expect((reply as Uint8Array[]).map((piece) => piece.byteLength)).toEqual([65536, 65536]) // within the limit: fine
  })

  test('a sidecar reference outside the frame is refused', () => {
    expect(() =>
      new FrameReader(1 << 20).push(workerFrame(sidecarRef(64, 65536), patternBytes(65536))),
    ).toThrow('sidecar reference [64,65536] is outside the frame')
    const long = cbor.tag(
      61440,
      cbor.array(...Array.from({ length: 1000 }, () => cbor.uint(2n ** 60n))),
    )
    expect(() => new FrameReader(1 << 20).push(workerFrame(long))).toThrow(
      'sidecar reference (an array of 1000 items) is outside the frame',
    )
    expect(() =>
      new FrameReader(1 << 20).push(
        workerFrame(cbor.tag(61444, cbor.array(cbor.uint(0), cbor.uint(1 << 20)))),
      ),
    ).toThrow(/runtime that has no shared region/)
  })

  test('a frame may carry only the tags the worker protocol uses', () => {
    for (const tag of [4, 5, 6, 14, 27, 28, 29, 51, 105, 258, 259, 55799, 60, 1004, 12345, 61445]) {
      const frame = workerFrame(
        cbor.map(
          ['ok', cbor.simple(21)],
          ['error', cbor.array(cbor.tag(61442, cbor.map(['data', cbor.tag(tag, cbor.uint(1))])))],
        ),
      )
      expect(() => new FrameReader(1 << 20).push(frame)).toThrow(
        `a runtime frame carries CBOR tag ${tag}, which the protocol does not use`,
      )
    }
    for (const tag of [57343, 1399353956])
      expect(() => new FrameReader(1 << 20).push(workerFrame(cbor.tag(tag, cbor.array())))).toThrow(
        'is not accepted',
      )
    expect([...WORKER_FRAME_TAGS].sort((a, b) => a - b)).toEqual([
      0,
      1,
      40,
      41,
      ...Array.from({ length: 24 }, (_, i) => 64 + i),
      1040,
      61441,
      61442,
      61443,
    ])
  })

  test('everything the protocol does use still crosses', () => {
    const message = {
      ok: true,
      big: [2n ** 100n, -(2n ** 100n) - 1n],
      when: new TimestampText('2026-11-26T12:00:00+01:00'),
      seconds: new Tag(1700000000, 1),
      image: new Tag(
        { pixels: new Tag([[2, 2], new TypedBytes(64, new Uint8Array([1, 2, 3, 4]))], 40) },
        61441,
      ),
      names: new Tag([[2], new Tag(['a', 'b'], 41)], 40),
      column_major: new Tag([[2], new TypedBytes(85, new Uint8Array(8))], 1040),
      meta: new Tag({ fps: 30 }, 61443),
      dets: new Tag({ xyxy: new Tag([[0, 4], new TypedBytes(85, new Uint8Array())], 40) }, 61442),
      plain: { inner: [1, 'two', null] },
    }
    const [decoded] = new FrameReader(1 << 20).push(Buffer.concat(encodeFrame(message)))
    expect(decoded).toEqual(message)
  })

  test('an oversized bignum in a worker frame is a protocol error, at once', () => {
    const frame = workerFrame(
      cbor.map(['ok', cbor.simple(21)], ['n', cbor.bignum(patternBytes(200_000))]),
    )
    const started = performance.now()
    expect(() => new FrameReader(1 << 20).push(frame)).toThrow(`a bignum (tag 2) of 200000 bytes`)
    expect(performance.now() - started).toBeLessThan(50) // cbor-x's own loop: ~10 s for this one
    const [fits] = new FrameReader(1 << 20).push(
      workerFrame(cbor.bignum(patternBytes(BIGNUM.maxBytes), true)),
    )
    expect(typeof fits).toBe('bigint')
  })

  test('a payload too short for its head length is refused', () => {
    expect(() => new FrameReader(1 << 20).push(new Uint8Array([0, 0, 0, 2, 0, 0]))).toThrow(
      'frame payload of 2 bytes has no head length',
    )
  })
})
