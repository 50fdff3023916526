// A worker's shared-memory region, as the proxy sees it: pread/pwrite, never a mapping.
import { afterAll, expect, test } from 'bun:test'
import { ftruncateSync, mkdtempSync, openSync, readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { FileRegion } from '../src/backends/local/region.ts'

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
