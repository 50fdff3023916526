// The /webexec code cache on its own: fair shares between workspaces, LRU within one, and
// byte accounting that stays exact through every insert, replace, recall and eviction.
import { describe, expect, test } from 'bun:test'
import {
  CodeCache,
  ENTRY_OVERHEAD_BYTES,
  entryBytes,
  MIN_SHARES,
  type CachedCode,
} from '../../src/interop/code-cache.ts'

const KiB = 1024
/** An entry that counts exactly `bytes` against the cache. */
const sized = (bytes: number, tag = ''): CachedCode => ({
  code: tag + 'x'.repeat(bytes - ENTRY_OVERHEAD_BYTES - tag.length),
  imports: [],
})

describe('fair shares between workspaces', () => {
  test("one workspace's huge entry and flood of entries never evict another's small ones", () => {
    const cache = new CodeCache(256 * KiB)
    for (let i = 0; i < 8; i++) cache.remember('victim', `v${i}`, sized(2 * KiB, `v${i}`))
    // As large as the cache allows for one entry, then a flood of many more than fit.
    cache.remember('attacker', 'huge', sized(cache.maxEntryBytes))
    for (let i = 0; i < 2000; i++) cache.remember('attacker', `a${i}`, sized(1 * KiB, `a${i}`))
    for (let i = 0; i < 8; i++) expect(cache.recall('victim', `v${i}`)?.code).toStartWith(`v${i}`)
    expect(cache.bytes).toBeLessThanOrEqual(cache.maxBytes)
    // The attacker keeps the rest of the cache: fair, not starved.
    expect(cache.bytesOf('attacker')).toBeGreaterThan(
      cache.maxBytes - cache.bytesOf('victim') - 1 * KiB,
    )
    expect(cache.recall('attacker', 'a1999')).toBeDefined()
    expect(cache.recall('attacker', 'a0')).toBeUndefined()
  })

  test('an entry larger than 1/MIN_SHARES of the cache is not kept, and evicts nothing', () => {
    const cache = new CodeCache(64 * KiB)
    cache.remember('victim', 'v', sized(4 * KiB))
    cache.remember('attacker', 'own', sized(4 * KiB))
    cache.remember('attacker', 'huge', sized(cache.maxEntryBytes + 1))
    expect(cache.maxEntryBytes).toBe(Math.floor((64 * KiB) / MIN_SHARES))
    expect(cache.recall('attacker', 'huge')).toBeUndefined()
    expect(cache.recall('attacker', 'own')).toBeDefined()
    expect(cache.recall('victim', 'v')).toBeDefined()
    expect(cache.bytes).toBe(8 * KiB)
  })

  test('under pressure, the workspace holding the most bytes gives way, whoever inserted', () => {
    const cache = new CodeCache(40 * KiB)
    cache.remember('a', 'a1', sized(8 * KiB))
    cache.remember('b', 'b1', sized(4 * KiB))
    cache.remember('b', 'b2', sized(4 * KiB))
    cache.remember('c', 'c1', sized(6 * KiB))
    cache.remember('c', 'c2', sized(6 * KiB))
    cache.remember('b', 'b3', sized(9 * KiB)) // 37 KiB held: a 8, b 17, c 12
    cache.remember('a', 'a2', sized(7 * KiB)) // 44 KiB: b (17) is the largest and loses its oldest
    expect(cache.recall('b', 'b1')).toBeUndefined()
    expect(cache.bytes).toBe(40 * KiB)
    cache.remember('a', 'a3', sized(6 * KiB)) // 46 KiB: now a (21) is the largest
    expect(cache.recall('a', 'a1')).toBeUndefined()
    for (const hash of ['a2', 'a3', 'b2', 'b3', 'c1', 'c2'])
      expect(cache.recall(hash[0]!, hash)).toBeDefined()
    expect([cache.bytesOf('a'), cache.bytesOf('b'), cache.bytesOf('c'), cache.bytes]).toEqual([
      13 * KiB,
      13 * KiB,
      12 * KiB,
      38 * KiB,
    ])
  })

  test('with many workspaces, each within its fair share keeps everything', () => {
    const cache = new CodeCache(128 * KiB)
    const workspaces = 16 // fair share: 8 KiB each
    for (let w = 0; w < workspaces; w++)
      for (let i = 0; i < 3; i++) cache.remember(`w${w}`, `h${i}`, sized(2 * KiB))
    // 96 KiB held by 16 workspaces at 6 KiB each; one workspace now inserts far past its share.
    for (let i = 0; i < 500; i++) cache.remember('w0', `big${i}`, sized(4 * KiB))
    for (let w = 1; w < workspaces; w++)
      for (let i = 0; i < 3; i++) expect(cache.recall(`w${w}`, `h${i}`)).toBeDefined()
    // w0 keeps as many 4 KiB entries as fit in what the others leave (128 - 90 KiB).
    expect(cache.bytesOf('w0')).toBe(36 * KiB)
    expect(cache.workspaces).toBe(workspaces)
  })
})

describe('least recently used within a workspace', () => {
  test('the entry recalled last is kept; the one untouched longest goes', () => {
    const cache = new CodeCache(16 * KiB)
    cache.remember('acme', 'first', sized(3 * KiB))
    cache.remember('acme', 'second', sized(3 * KiB))
    cache.remember('acme', 'third', sized(3 * KiB))
    cache.remember('acme', 'fourth', sized(3 * KiB))
    expect(cache.recall('acme', 'first')).toBeDefined() // now most recently used
    cache.remember('acme', 'fifth', sized(3 * KiB)) // 15 KiB: fits
    cache.remember('acme', 'sixth', sized(3 * KiB)) // 18 KiB: one must go
    expect(cache.recall('acme', 'second')).toBeUndefined()
    for (const hash of ['first', 'third', 'fourth', 'fifth', 'sixth'])
      expect(cache.recall('acme', hash)).toBeDefined()
    expect(cache.bytes).toBe(15 * KiB)
  })

  test('remembering a hash again replaces it and makes it most recent', () => {
    const cache = new CodeCache(12 * KiB)
    cache.remember('acme', 'a', sized(3 * KiB, 'old'))
    cache.remember('acme', 'b', sized(3 * KiB))
    cache.remember('acme', 'a', sized(2 * KiB, 'new'))
    expect(cache.bytes).toBe(5 * KiB)
    cache.remember('acme', 'c', sized(3 * KiB))
    cache.remember('acme', 'd', sized(3 * KiB))
    cache.remember('acme', 'e', sized(3 * KiB)) // 14 KiB: b is the oldest now
    expect(cache.recall('acme', 'b')).toBeUndefined()
    expect(cache.recall('acme', 'a')?.code).toStartWith('new')
    expect(cache.bytes).toBe(11 * KiB)
  })

  test('a hash is found only under its own workspace', () => {
    const cache = new CodeCache(16 * KiB)
    cache.remember('acme', 'h', sized(1 * KiB))
    expect(cache.recall('other', 'h')).toBeUndefined()
    expect(cache.recall('acme', 'h')).toBeDefined()
  })
})

describe('byte accounting', () => {
  test('counts UTF-8 bytes of the code and import lines, plus the per-entry overhead', () => {
    const cache = new CodeCache(64 * KiB)
    cache.remember('acme', 'h', { code: 'é'.repeat(10), imports: ['import numpy', 'import 中'] })
    expect(cache.bytes).toBe(ENTRY_OVERHEAD_BYTES + 20 + 12 + 10)
  })

  test('stays exact through random inserts, replacements, recalls and evictions', () => {
    const cache = new CodeCache(48 * KiB)
    const all: [string, string, CachedCode][] = []
    const WORKSPACES = ['w0', 'w1', 'w2', 'w3', 'w4', 'w5']
    let seed = 7
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return seed % n
    }
    for (let step = 0; step < 5000; step++) {
      const workspace = WORKSPACES[random(WORKSPACES.length)]!
      const hash = `h${random(40)}`
      if (random(3) === 0) {
        cache.recall(workspace, hash)
        continue
      }
      const code = sized(
        512 + random(step % 500 === 0 ? 14 * KiB : 3 * KiB),
        `${workspace}/${hash}/${step}`,
      )
      const before = WORKSPACES.map((w) => cache.bytesOf(w))
      const holding = before.filter((bytes, w) => bytes > 0 || WORKSPACES[w] === workspace).length
      cache.remember(workspace, hash, code)
      all.push([workspace, hash, code])
      // The guarantee: another workspace loses bytes only when it held more than a fair share.
      WORKSPACES.forEach((w, i) => {
        if (w !== workspace && cache.bytesOf(w) < before[i]!)
          expect(before[i]!).toBeGreaterThan(cache.maxBytes / holding)
      })
      expect(cache.bytes).toBeLessThanOrEqual(cache.maxBytes)
    }
    // Only the latest code per key can be recalled; older ones must not match (toEqual would fail).
    const latest = new Map(all.map((entry) => [`${entry[0]}/${entry[1]}`, entry]))
    const perWorkspace = new Map<string, number>()
    for (const [workspace, hash, code] of latest.values()) {
      const found = cache.recall(workspace, hash)
      if (!found) continue
      expect(found).toEqual(code)
      perWorkspace.set(workspace, (perWorkspace.get(workspace) ?? 0) + entryBytes(found))
    }
    expect([...perWorkspace.values()].reduce((sum, bytes) => sum + bytes, 0)).toBe(cache.bytes)
    for (const [workspace, bytes] of perWorkspace) expect(cache.bytesOf(workspace)).toBe(bytes)
    expect(cache.workspaces).toBe(perWorkspace.size)
  })

  test('a workspace that empties leaves: its share goes back to the others', () => {
    const cache = new CodeCache(16 * KiB)
    cache.remember('a', 'h', sized(2 * KiB))
    cache.remember('b', 'h', sized(2 * KiB))
    expect(cache.workspaces).toBe(2)
    for (let i = 0; i < 10; i++) cache.remember('b', `g${i}`, sized(4 * KiB))
    expect(cache.recall('a', 'h')).toBeDefined()
    cache.remember('a', 'h', sized(cache.maxEntryBytes + 1)) // replaced by something not kept: a holds nothing
    expect(cache.workspaces).toBe(1)
    expect(cache.bytes).toBe(cache.bytesOf('b'))
  })
})
