// The /webexec code cache a deployment shares through Redis (src/interop/shared-code-cache.ts),
// against a real redis-server, each SharedState standing for one instance: what one instance
// remembers the others recall; per workspace, the least recently used code leaves beyond the
// bound and other workspaces keep theirs; what Redis returns is checked against its hash; with
// Redis gone, each instance has its own cache, without waiting.
import { afterAll, beforeAll, describe, expect, spyOn, test } from 'bun:test'
import { RedisClient } from 'bun'
import { CodeCache, ENTRY_OVERHEAD_BYTES, inferenceCodeHash } from '../../src/interop/code-cache.ts'
import { SharedCodeCache } from '../../src/interop/shared-code-cache.ts'
import { SharedState } from '../../src/shared/redis.ts'
import { startRedis, type RedisServer } from '../support/redis-server.ts'

const WORKSPACE_BYTES = 4096
const LOCAL_BYTES = 32 * 1024 * 1024

let redis: RedisServer
let client: RedisClient

beforeAll(async () => {
  redis = await startRedis()
  client = new RedisClient(redis.url)
})
afterAll(async () => {
  client?.close()
  await redis?.stop()
})

/** `count` instances of one deployment, started. */
async function instances(count: number): Promise<SharedState[]> {
  const deploymentId = `test-${crypto.randomUUID().slice(0, 8)}`
  const states = Array.from(
    { length: count },
    () =>
      new SharedState({
        redisUrl: redis.url,
        deploymentId,
        timeoutMs: 100,
        leaseMs: 15_000,
        codeCacheWorkspaceBytes: WORKSPACE_BYTES,
      }),
  )
  await Promise.all(states.map((state) => state.start()))
  return states
}

/** An instance's cache as it starts: nothing held in this process, so a recall asks Redis. */
const freshCache = (shared: SharedState) => new SharedCodeCache(new CodeCache(LOCAL_BYTES), shared)

/** Block code whose entry counts exactly `bytes` in Redis (its JSON value and the overhead). */
function sizedCode(tag: string, bytes: number) {
  const shell = JSON.stringify({ code: `${tag}#`, imports: [] }).length + ENTRY_OVERHEAD_BYTES
  const code = { code: `${tag}#${'x'.repeat(bytes - shell)}`, imports: [] }
  return { hash: inferenceCodeHash(code.code, code.imports), code }
}

const metaKey = (shared: SharedState, workspace: string) =>
  shared.key('code', `{${workspace}}`, 'meta')
const entriesKey = (shared: SharedState, workspace: string) =>
  shared.key('code', `{${workspace}}`, 'entries')

describe('a code cache shared through Redis', () => {
  test('code one instance remembered, another recalls; then from its own memory', async () => {
    const [a, b] = await instances(2)
    try {
      const code = { code: 'def run(self, x):\n    return {"x": x}\n', imports: ['import math'] }
      const hash = inferenceCodeHash(code.code, code.imports)
      await new SharedCodeCache(new CodeCache(LOCAL_BYTES), a!).remember('acme', hash, code)

      const onB = freshCache(b!)
      const calls = spyOn(b!, 'eval')
      expect(await onB.recall('acme', hash)).toEqual(code)
      expect(calls).toHaveBeenCalledTimes(1)
      expect(await onB.recall('acme', hash)).toEqual(code) // held locally now: no Redis call
      expect(calls).toHaveBeenCalledTimes(1)
      // Only under its workspace, and a hash that is no md5 digest never reaches Redis.
      expect(await onB.recall('other', hash)).toBeUndefined()
      expect(await onB.recall('acme', 'not-a-hash')).toBeUndefined()
      expect(calls).toHaveBeenCalledTimes(2)
    } finally {
      a!.stop()
      b!.stop()
    }
  })

  test('a workspace past its bound loses its least recently used code; other workspaces keep theirs', async () => {
    const [a, b] = await instances(2)
    try {
      const writer = freshCache(a!)
      const entries = Array.from({ length: 5 }, (_, i) => sizedCode(`e${i}`, WORKSPACE_BYTES / 4))
      const neighbour = sizedCode('n', WORKSPACE_BYTES / 4)
      await writer.remember('busy', neighbour.hash, neighbour.code) // as if its own
      await writer.remember('quiet', neighbour.hash, neighbour.code)
      for (const { hash, code } of entries.slice(0, 4)) await writer.remember('busy', hash, code)
      // Exactly at the bound: four entries of a quarter each, the neighbour's gone from 'busy'.
      expect(Number(await client.hget(metaKey(a!, 'busy'), 'bytes'))).toBe(WORKSPACE_BYTES)
      expect(await freshCache(b!).recall('busy', neighbour.hash)).toBeUndefined()

      // e0 used (on another instance) since: e1 is now the least recently used.
      expect(await freshCache(b!).recall('busy', entries[0]!.hash)).toEqual(entries[0]!.code)
      await writer.remember('busy', entries[4]!.hash, entries[4]!.code)
      const reader = freshCache(b!)
      const held = await Promise.all(entries.map(({ hash }) => reader.recall('busy', hash)))
      expect(held.map((code) => code !== undefined)).toEqual([true, false, true, true, true])
      expect(Number(await client.hget(metaKey(a!, 'busy'), 'bytes'))).toBe(WORKSPACE_BYTES)
      expect(await client.hlen(entriesKey(a!, 'busy'))).toBe(4)
      // The other workspace's code stayed.
      expect(await freshCache(b!).recall('quiet', neighbour.hash)).toEqual(neighbour.code)
    } finally {
      a!.stop()
      b!.stop()
    }
  })

  test('code larger than the bound is not stored and evicts nothing; code of exactly the bound is', async () => {
    const [a, b] = await instances(2)
    try {
      const writer = freshCache(a!)
      const small = sizedCode('small', 512)
      await writer.remember('ws', small.hash, small.code)
      const oversized = sizedCode('big', WORKSPACE_BYTES + 1)
      await writer.remember('ws', oversized.hash, oversized.code)
      expect(await freshCache(b!).recall('ws', oversized.hash)).toBeUndefined()
      expect(await freshCache(b!).recall('ws', small.hash)).toEqual(small.code)
      // It still runs where it was sent: this instance keeps it.
      expect(await writer.recall('ws', oversized.hash)).toEqual(oversized.code)

      const whole = sizedCode('whole', WORKSPACE_BYTES)
      await writer.remember('ws', whole.hash, whole.code)
      expect(await freshCache(b!).recall('ws', whole.hash)).toEqual(whole.code)
      expect(await freshCache(b!).recall('ws', small.hash)).toBeUndefined()
    } finally {
      a!.stop()
      b!.stop()
    }
  })

  test('what Redis holds is checked: code that does not match its hash is treated as unknown', async () => {
    const [a, b] = await instances(2)
    try {
      const code = { code: 'def run(self):\n    return {"safe": True}\n', imports: [] }
      const hash = inferenceCodeHash(code.code, code.imports)
      await freshCache(a!).remember('acme', hash, code)
      const swapped = { code: 'def run(self):\n    return {"evil": True}\n', imports: [] }
      for (const tampered of [JSON.stringify(swapped), 'not json', '{"code": 1}', 'null']) {
        await client.hset(entriesKey(a!, 'acme'), hash, tampered)
        expect(await freshCache(b!).recall('acme', hash)).toBeUndefined()
      }
      // Sent again, it is stored again and recalled.
      await freshCache(a!).remember('acme', hash, code)
      expect(await freshCache(b!).recall('acme', hash)).toEqual(code)
    } finally {
      a!.stop()
      b!.stop()
    }
  })

  test('Redis down: each instance keeps and finds its own code, without waiting', async () => {
    const [a, b] = await instances(2)
    const cacheA = freshCache(a!)
    const cacheB = freshCache(b!)
    try {
      const before = sizedCode('before', 512)
      await cacheA.remember('ws', before.hash, before.code)
      await redis.stop()

      const during = sizedCode('during', 512)
      const started = performance.now()
      await cacheA.remember('ws', during.hash, during.code)
      expect(await cacheA.recall('ws', during.hash)).toEqual(during.code)
      expect(await cacheA.recall('ws', before.hash)).toEqual(before.code)
      expect(await cacheB.recall('ws', before.hash)).toBeUndefined()
      expect(await cacheB.recall('ws', during.hash)).toBeUndefined()
      expect(performance.now() - started).toBeLessThan(50)
      expect(a!.shared || b!.shared).toBe(false)
    } finally {
      await redis.restart()
      a!.stop()
      b!.stop()
    }
  }, 20_000)
})
