// The E2B sandbox registry's scripts (src/backends/e2b/registry.ts) against a real Redis, with
// two registries playing two instances of one deployment: who may run on, take, end or sweep
// which sandbox, and what a Redis that lost everything gets back.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { type HeldSandbox, SandboxRegistry } from '../../src/backends/e2b/registry.ts'
import { SharedState } from '../../src/shared/redis.ts'
import { startRedis, type RedisServer } from '../support/redis-server.ts'

let redis: RedisServer

beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  await redis?.stop()
})

/** Two instances of a fresh deployment, each with its registry. */
async function twoInstances(leaseMs = 15_000, cap = 10) {
  const deploymentId = `reg-${crypto.randomUUID().slice(0, 8)}`
  const states = [0, 1].map(
    () =>
      new SharedState({
        redisUrl: redis.url,
        deploymentId,
        timeoutMs: 500,
        leaseMs,
        codeCacheWorkspaceBytes: 0,
      }),
  )
  await Promise.all(states.map((s) => s.start()))
  const [a, b] = states.map((s) => new SandboxRegistry(s, cap, 100)) as [
    SandboxRegistry,
    SandboxRegistry,
  ]
  return {
    a,
    b,
    stop: () => {
      for (const s of states) s.stop()
    },
  }
}

const sandbox = (id: string, workspace: string | null = 'acme'): HeldSandbox => ({
  id,
  workspace,
  createdAtMs: Date.now(),
  expiresAtMs: Date.now() + 300_000,
  blocks: ['h1'],
})

const reserve = async (registry: SandboxRegistry) => {
  const answer = await registry.reserveCreate(performance.now() + 5000)
  if (!answer || !('reservation' in answer))
    throw new Error(`no reservation: ${JSON.stringify(answer)}`)
  return answer.reservation
}

describe('the sandbox registry', () => {
  test('a busy sandbox is nobody else’s; an idle one is taken by the first instance that asks, once', async () => {
    const { a, b, stop } = await twoInstances()
    try {
      await a.register(sandbox('s1'), await reserve(a))
      expect(await b.claimIdle('acme', 0)).toBeNull() // busy on a
      expect(await b.drop('s1', 'acme')).toBe(false) // not b's to end
      await a.released(sandbox('s1'))
      expect(await b.claimIdle('other', 0)).toBeNull() // one workspace for life
      expect((await b.claimIdle('acme', 0))?.id).toBe('s1')
      expect(await a.claim('s1', 'acme')).toBe(false) // a finds it gone to b
      expect(await a.drop('s1', 'acme')).toBe(false) // and must not kill it
      expect(await a.renew([sandbox('s1')])).toEqual(['s1']) // nor keep it
      expect(await b.claim('s1', 'acme')).toBe(true) // b runs on it again
      expect(await b.drop('s1', 'acme')).toBe(true)
      expect(await b.ids()).toEqual(new Set())
    } finally {
      stop()
    }
  })

  test('a lease that is not renewed runs out: the sweep takes the sandbox off (for a kill), and its holder then lets it go', async () => {
    const { a, b, stop } = await twoInstances(1000)
    try {
      await a.register(sandbox('s2'), await reserve(a))
      await a.register(sandbox('s3'), await reserve(a))
      await Bun.sleep(600)
      expect(await a.renew([sandbox('s2')])).toEqual([]) // s2 renewed, s3 forgotten
      await Bun.sleep(600)
      expect(await b.sweep()).toEqual(['s3'])
      expect(await b.ids()).toEqual(new Set(['s2']))
      expect(await a.claim('s3', 'acme')).toBe(false) // its tombstone says: gone
      expect(await a.renew([sandbox('s3')])).toEqual(['s3'])
    } finally {
      stop()
    }
  })

  test('at the cap: full, then room by evicting an idle sandbox of another workspace, never one of the asker’s', async () => {
    const { a, b, stop } = await twoInstances(15_000, 2)
    try {
      await a.register(sandbox('x1', 'one'), await reserve(a))
      await b.register(sandbox('x2', 'two'), await reserve(b))
      expect(await a.reserveCreate(performance.now() + 5000)).toEqual({ full: 2 })
      expect(await a.evictIdle('three')).toBeNull() // both busy
      await a.released(sandbox('x1', 'one'))
      expect(await a.evictIdle('one')).toBeNull() // its own workspace's is not evicted for it
      expect(await b.evictIdle('three')).toBe('x1')
      expect(await a.claim('x1', 'one')).toBe(false) // gone to make room
      expect(await b.reserveCreate(performance.now() + 5000)).toMatchObject({
        reservation: expect.any(String),
      })
    } finally {
      stop()
    }
  })

  test('Redis restarted empty: the next renew writes back what each instance holds', async () => {
    const { a, stop } = await twoInstances()
    try {
      await a.register(sandbox('r1'), await reserve(a))
      await redis.restart()
      for (let i = 0; i < 50 && !a.active; i++) await Bun.sleep(100)
      expect(a.active).toBe(true)
      expect(await a.ids()).toEqual(new Set())
      expect(await a.renew([sandbox('r1')])).toEqual([])
      expect(await a.ids()).toEqual(new Set(['r1']))
      expect(await a.claim('r1', 'acme')).toBe(true)
    } finally {
      stop()
    }
  }, 20_000)
})
