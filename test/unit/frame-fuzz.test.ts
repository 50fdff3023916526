// Fuzz targets for issue 13's forged-frame and bignum findings: random worker frames (what
// a block can write to its own socket) and random client bodies full of bignums. Whatever
// the bytes, the proxy may allocate no more than the frame limit for a frame's references,
// and no frame or body may hold the event loop for more than a few milliseconds.
import { afterAll, expect, test } from 'bun:test'
import fc from 'fast-check'
import { mkdtempSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import {
  BIGNUM,
  CborLimitExceeded,
  decodeCbor,
  Tag,
  TypedBytes,
  type SharedRegion,
} from '../../serializers/cbor.ts'
import { FrameReader, WORKER_FRAME_TAGS } from '../../src/backends/framing.ts'
import { FileRegion } from '../../src/backends/local/region.ts'
import { cbor, magnitudeOf, patternBytes, workerFrame } from '../support/cbor-bytes.ts'

const MiB = 1024 * 1024
const REGION_BYTES = 4 * MiB
// Room for two 1 MiB region references (the smallest a worker makes), not for three.
const MAX_FRAME_BYTES = 2.5 * MiB
// Generous for a noisy 2-core machine; the slowest push seen is printed at the end.
const MAX_MS_PER_ITEM = 50

const dir = mkdtempSync(join(process.env.TMPDIR ?? '/tmp', 'blockgate-frame-fuzz-'))
const fileRegion = FileRegion.create(dir, REGION_BYTES)
const slowest = { frame: 0, body: 0 }
afterAll(() => {
  fileRegion.close()
  rmSync(dir, { recursive: true, force: true })
  console.log(
    `slowest worker frame push: ${slowest.frame.toFixed(2)} ms; slowest body decode: ${slowest.body.toFixed(2)} ms`,
  )
})

/** The real region, counting the bytes the proxy asks to copy out of it. */
const region: SharedRegion & { requested: number } = {
  size: REGION_BYTES,
  requested: 0,
  write: (bytes) => fileRegion.write(bytes),
  read(offset, length) {
    this.requested += length
    return fileRegion.read(offset, length)
  },
}

const bignumSize = fc.oneof(
  fc.nat({ max: 40 }),
  fc.constantFrom(BIGNUM.maxBytes - 1, BIGNUM.maxBytes, BIGNUM.maxBytes + 1, 64 * 1024, 200 * 1024),
)
const bignum = fc.record({ size: bignumSize, seed: fc.nat({ max: 255 }), negative: fc.boolean() })
const position = fc.oneof(
  fc.constantFrom(
    0,
    1,
    64,
    4096,
    MiB - 1,
    MiB,
    MiB + 64,
    2 * MiB,
    3 * MiB,
    REGION_BYTES - 1,
    REGION_BYTES,
    64 * MiB,
    2 ** 31,
    2 ** 32 - 1,
  ),
  fc.nat({ max: REGION_BYTES }),
)
const reference = (tag: number) =>
  fc
    .tuple(position, position)
    .map(([offset, length]) => cbor.tag(tag, cbor.array(cbor.uint(offset), cbor.uint(length))))
// Tags of the protocol, tags cbor-x has meanings for, and any other.
const anyTag = fc.oneof(
  fc.constantFrom(
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    14,
    27,
    28,
    29,
    40,
    41,
    51,
    64,
    85,
    105,
    230,
    258,
    259,
    1040,
    28000,
    55799,
    57337,
    57343,
    61440,
    61441,
    61442,
    61443,
    61444,
    65535,
  ),
  fc.nat({ max: 2 ** 32 - 1 }),
)

const leaf = fc.oneof(
  fc.nat().map(cbor.uint),
  fc.string({ maxLength: 12 }).map(cbor.text),
  fc.uint8Array({ maxLength: 16 }).map(cbor.bytes),
  fc
    .nat({ max: 255 })
    .filter((n) => n < 24 || n >= 32)
    .map(cbor.simple),
  bignum.map(({ size, seed, negative }) => cbor.bignum(patternBytes(size, seed), negative)),
  reference(61440),
  reference(61444),
)

const { item } = fc.letrec<{
  item: Uint8Array
  array: Uint8Array
  map: Uint8Array
  tagged: Uint8Array
}>((tie) => ({
  item: fc.oneof(
    { maxDepth: 4, depthSize: 'small' },
    leaf,
    tie('array'),
    tie('map'),
    tie('tagged'),
  ),
  array: fc.array(tie('item'), { maxLength: 6 }).map((items) => cbor.array(...items)),
  map: fc
    .array(fc.tuple(fc.string({ maxLength: 8 }), tie('item')), { maxLength: 5 })
    .map((entries) => cbor.map(...entries)),
  tagged: fc.tuple(anyTag, tie('item')).map(([tag, content]) => cbor.tag(tag, content)),
}))

/** Byte views and bigints in a decoded value, and the tags it kept. */
function contents(value: unknown): { views: Uint8Array[]; bigints: bigint[]; tags: number[] } {
  const found = { views: [] as Uint8Array[], bigints: [] as bigint[], tags: [] as number[] }
  const visit = (node: unknown): void => {
    if (typeof node === 'bigint') found.bigints.push(node)
    if (node === null || typeof node !== 'object') return
    if (node instanceof Uint8Array) found.views.push(node)
    else if (node instanceof TypedBytes) {
      found.tags.push(node.tag)
      found.views.push(node.bytes)
    } else if (node instanceof Tag) {
      found.tags.push(node.tag)
      visit(node.value)
    } else for (const child of Object.values(node)) visit(child)
  }
  visit(value)
  return found
}

test('no worker frame makes the proxy allocate past the frame limit, or takes more than a few ms', () => {
  const frames = fc.record({
    head: item,
    sidecarBytes: fc.constantFrom(0, 100, 4096, 65536, 256 * 1024),
  })
  fc.assert(
    fc.property(frames, ({ head, sidecarBytes }) => {
      const frame = workerFrame(head, patternBytes(sidecarBytes))
      region.requested = 0
      let decoded: unknown[] = []
      const started = performance.now()
      try {
        decoded = new FrameReader(MAX_FRAME_BYTES, region).push(frame)
      } catch (error) {
        expect(error).toBeInstanceOf(Error) // a protocol error: the worker gets killed
      }
      const elapsed = performance.now() - started
      slowest.frame = Math.max(slowest.frame, elapsed)
      expect(elapsed).toBeLessThan(MAX_MS_PER_ITEM)
      expect(region.requested).toBeLessThanOrEqual(MAX_FRAME_BYTES)
      for (const message of decoded) {
        const { views, bigints, tags } = contents(message)
        // Bytes inside the head are the frame's own; everything else was referred to.
        const headEnd = 8 + head.byteLength
        const referenced = views
          .filter((view) => view.buffer !== frame.buffer || view.byteOffset >= headEnd)
          .reduce((sum, view) => sum + view.byteLength, 0)
        expect(referenced).toBeLessThanOrEqual(MAX_FRAME_BYTES)
        for (const n of bigints)
          expect((n < 0n ? -1n - n : n).toString(16).length).toBeLessThanOrEqual(
            2 * BIGNUM.maxBytes,
          )
        for (const tag of tags) expect(WORKER_FRAME_TAGS.has(tag)).toBe(true)
      }
    }),
    { numRuns: 400, endOnFailure: true },
  )
})

/** A CBOR item with the value it must decode to, or `oversized` if a bignum in it is over the limit. */
type Sample = { bytes: Uint8Array; expected: unknown; oversized: boolean }

const bignumSample: fc.Arbitrary<Sample> = bignum.map(({ size, seed, negative }) => {
  const magnitude = patternBytes(size, seed)
  if (size > BIGNUM.maxBytes)
    return { bytes: cbor.bignum(magnitude, negative), expected: null, oversized: true }
  return {
    bytes: cbor.bignum(magnitude, negative),
    expected: negative ? -1n - magnitudeOf(magnitude) : magnitudeOf(magnitude),
    oversized: false,
  }
})
const plainSample: fc.Arbitrary<Sample> = fc.oneof(
  fc.nat().map((n) => ({ bytes: cbor.uint(n), expected: n, oversized: false })),
  fc
    .string({ maxLength: 8 })
    .map((text) => ({ bytes: cbor.text(text), expected: text, oversized: false })),
)
const { sample } = fc.letrec<{ sample: Sample; list: Sample; record: Sample }>((tie) => ({
  sample: fc.oneof(
    { maxDepth: 3, depthSize: 'small' },
    bignumSample,
    plainSample,
    tie('list'),
    tie('record'),
  ),
  list: fc.array(tie('sample'), { maxLength: 5 }).map((items) => ({
    bytes: cbor.array(...items.map((entry) => entry.bytes)),
    expected: items.map((entry) => entry.expected),
    oversized: items.some((entry) => entry.oversized),
  })),
  record: fc
    .uniqueArray(fc.tuple(fc.string({ maxLength: 6 }), tie('sample')), {
      maxLength: 4,
      selector: ([key]) => key,
    })
    .map((entries) => ({
      bytes: cbor.map(...entries.map(([key, entry]): [string, Uint8Array] => [key, entry.bytes])),
      expected: Object.fromEntries(entries.map(([key, entry]) => [key, entry.expected])),
      oversized: entries.some(([, entry]) => entry.oversized),
    })),
}))

test('bignums in a client body decode exactly or are refused, never slowly', () => {
  fc.assert(
    fc.property(sample, ({ bytes, expected, oversized }) => {
      const body = cbor.map(['inputs', bytes])
      const started = performance.now()
      let decoded: unknown
      let failure: unknown
      try {
        decoded = decodeCbor(body)
      } catch (error) {
        failure = error
      }
      const elapsed = performance.now() - started
      slowest.body = Math.max(slowest.body, elapsed)
      expect(elapsed).toBeLessThan(MAX_MS_PER_ITEM)
      if (oversized) expect(failure).toBeInstanceOf(CborLimitExceeded)
      else expect(decoded).toEqual({ inputs: expected })
    }),
    { numRuns: 400, endOnFailure: true },
  )
})
