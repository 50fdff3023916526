// A worker's shared-memory region, as the proxy sees it: pread/pwrite, never a mapping.
import { afterAll, describe, expect, test } from 'bun:test'
import { ftruncateSync, mkdtempSync, openSync, readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import type { SharedRegion } from '../../serializers/cbor.ts'
import { encodeFrame, FrameReader } from '../../src/backends/framing.ts'
import { FileRegion } from '../../src/backends/local/region.ts'
import { ByteString } from '../../serializers/cbor.ts'
import { cbor, patternBytes, workerFrame } from '../support/cbor-bytes.ts'

const dir = mkdtempSync(join(process.env.TMPDIR ?? '/tmp', 'blockgate-region-test-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

test('writes are aligned and read back as copies; a region that is full says so', () => {
  const region = FileRegion.create(dir, 4096)
  const first = region.write(new Uint8Array([1, 2, 3]))
  const second = region.write(new Uint8Array(100).fill(7))
  expect([first, second]).toEqual([0, 64])
  expect([...region.read(0, 3)]).toEqual([1, 2, 3])
  expect(region.read(64, 100).every((b) => b === 7)).toBe(true)
  expect(region.write(new Uint8Array(4000))).toBeNull() // does not fit after the first two
  region.reset()
  expect(region.write(new Uint8Array(4000))).toBe(0)
  region.close()
})

test('a region the worker shrank is an error, not a crash', () => {
  const region = FileRegion.create(dir, 4096)
  const [name] = readdirSync(dir)
  ftruncateSync(openSync(join(dir, name!), 'r+'), 10)
  expect(() => region.read(0, 100)).toThrow(/shrank/)
  expect(() => region.read(4000, 200)).toThrow(/outside the 4096-byte region/)
  region.close()
  expect(readdirSync(dir)).toEqual([])
})

const MiB = 1024 * 1024

/** A region that counts the bytes the proxy asked to copy out of it. */
function countingRegion(size: number): SharedRegion & { requested: number; close(): void } {
  const region = FileRegion.create(dir, size)
  return {
    size,
    requested: 0,
    write: (bytes) => region.write(bytes),
    read(offset, length) {
      this.requested += length
      return region.read(offset, length)
    },
    close: () => region.close(),
  }
}

const regionRef = (offset: number, length: number) =>
  cbor.tag(61444, cbor.array(cbor.uint(offset), cbor.uint(length)))
const reply = (...refs: Uint8Array[]) =>
  workerFrame(
    cbor.map(
      ['ok', cbor.simple(21)],
      [
        'outputs_document',
        cbor.map(['format', cbor.text('cbor')], ['pieces', cbor.array(...refs)]),
      ],
    ),
  )

describe('region references in a worker frame', () => {
  test('the same region bytes referenced again are refused before they are copied', () => {
    // Issue 13: 24 references to [0, 64 MiB] in a 400-byte frame took the server from 80 MB to 1.65 GB.
    const region = countingRegion(64 * MiB)
    const rssBefore = process.memoryUsage.rss()
    const frame = reply(...Array.from({ length: 24 }, () => regionRef(0, 64 * MiB)))
    expect(frame.byteLength).toBeLessThan(400)
    expect(() => new FrameReader(65 * MiB, region).push(frame)).toThrow(
      `region reference [0, ${64 * MiB}] overlaps [0, ${64 * MiB}], referenced earlier in this frame: each region byte may be referenced once`,
    )
    expect(region.requested).toBe(64 * MiB) // the first reference only
    expect(process.memoryUsage.rss() - rssBefore).toBeLessThan(256 * MiB)
    region.close()
  })

  test('overlapping references are refused, adjacent ones are fine', () => {
    const region = countingRegion(4 * MiB)
    expect(() =>
      new FrameReader(8 * MiB, region).push(reply(regionRef(MiB, MiB), regionRef(64, MiB))),
    ).toThrow(`region reference [64, ${MiB}] overlaps [${MiB}, ${MiB}]`)
    expect(region.requested).toBe(MiB)
    const [decoded] = new FrameReader(8 * MiB, region).push(
      reply(regionRef(MiB, MiB), regionRef(0, MiB), regionRef(2 * MiB, 2 * MiB)),
    )
    expect(
      (decoded as { outputs_document: { pieces: Uint8Array[] } }).outputs_document.pieces.map(
        (piece) => piece.byteLength,
      ),
    ).toEqual([MiB, MiB, 2 * MiB])
    region.close()
  })

  test('distinct references stop at the frame limit, before the copy that would cross it', () => {
    const region = countingRegion(8 * MiB)
    const frame = reply(
      regionRef(0, MiB),
      regionRef(MiB, MiB),
      regionRef(2 * MiB, MiB),
      regionRef(3 * MiB, MiB),
    )
    expect(() => new FrameReader(2.5 * MiB, region).push(frame)).toThrow(
      `region reference [${2 * MiB}, ${MiB}] would bring the bytes this frame refers to to ${3 * MiB}, over the ${2.5 * MiB}-byte frame limit`,
    )
    expect(region.requested).toBe(2 * MiB)
    region.close()
  })

  test('sidecar and region references share one budget', () => {
    const region = countingRegion(4 * MiB)
    const head = cbor.array(
      cbor.tag(61440, cbor.array(cbor.uint(0), cbor.uint(600_000))),
      regionRef(0, MiB),
    )
    expect(() =>
      new FrameReader(1.5 * MiB, region).push(workerFrame(head, patternBytes(600_000))),
    ).toThrow(/over the 1572864-byte frame limit/)
    expect(region.requested).toBe(0)
    region.close()
  })

  test('a reference outside the region, malformed or too short for the region is refused without a read', () => {
    const region = countingRegion(4 * MiB)
    const refused: [Uint8Array, string][] = [
      [
        regionRef(3 * MiB, 2 * MiB),
        `region reference [${3 * MiB}, ${2 * MiB}] is outside the ${4 * MiB}-byte region`,
      ],
      [regionRef(2 ** 40, 2 ** 40), 'region reference [1099511627776,1099511627776] is malformed'], // 64-bit integers decode as BigInt
      [regionRef(2 ** 31, 2 ** 31), 'is outside the'],
      [
        regionRef(0, 100),
        `region reference [0, 100] is shorter than the ${MiB} bytes a buffer needs to go through the region`,
      ],
      [regionRef(0, 0), 'is shorter than'],
      [
        cbor.tag(61444, cbor.array(cbor.text('0'), cbor.uint(MiB))),
        'region reference (an array of 2 items) is malformed',
      ],
      [cbor.tag(61444, cbor.uint(7)), 'region reference 7 is malformed'],
    ]
    for (const [ref, message] of refused)
      expect(() => new FrameReader(64 * MiB, region).push(reply(ref))).toThrow(message)
    expect(region.requested).toBe(0)
    // A reference whose content is itself a large value is described, not printed.
    const nested = cbor.tag(61440, regionRef(0, 2 * MiB))
    const started = performance.now()
    expect(() => new FrameReader(64 * MiB, region).push(reply(nested))).toThrow(
      `sidecar reference (a byte string of ${2 * MiB} bytes) is outside the frame`,
    )
    expect(performance.now() - started).toBeLessThan(50) // printing it took seconds
    expect(() => region.read(-1, 10)).toThrow(/outside the/)
    region.close()
  })

  test('large buffers still go through the region and come back intact', () => {
    const region = FileRegion.create(dir, 4 * MiB)
    const big = patternBytes(1.5 * MiB, 3)
    const frame = Buffer.concat(encodeFrame({ ok: true, pieces: [new ByteString(big)] }, region))
    expect(frame.byteLength).toBeLessThan(100) // the bytes went into the region
    const [decoded] = new FrameReader(2 * MiB, region).push(frame)
    expect(
      Buffer.from((decoded as { pieces: Uint8Array[] }).pieces[0]!).equals(Buffer.from(big)),
    ).toBe(true)
    region.close()
  })
})
