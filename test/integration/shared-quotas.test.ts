// A key's quotas held across a deployment (src/auth/quotas.ts) against a real redis-server:
// each simulated instance is a SharedState of its own (one connection, one instance id) and
// the Quotas over it, all joined by one deployment id. The rate and the runs in flight hold
// for the instances together; a run's lease outlives the lease time while renewed and frees
// within it once its instance dies; with Redis gone, each instance decides alone, at once.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { metrics } from '@opentelemetry/api'
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics'
import type { ApiKey } from '../../src/auth/keys.ts'
import { Quotas } from '../../src/auth/quotas.ts'
import { Overloaded } from '../../src/errors.ts'
import { SharedState } from '../../src/shared/redis.ts'
import { METRIC } from '../../src/telemetry/names.ts'
import { startRedis, type RedisServer } from '../support/redis-server.ts'

const LEASE_MS = 1000 // the least BLOCKGATE_REDIS_LEASE_MS allows

class CollectingReader extends MetricReader {
  protected async onShutdown(): Promise<void> {}
  protected async onForceFlush(): Promise<void> {}
}
const reader = new CollectingReader()

let redis: RedisServer
const started: { quotas: Quotas; shared: SharedState }[] = []

beforeAll(async () => {
  // Before any Quotas: its counter comes from the global provider when it is built.
  metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }))
  redis = await startRedis()
})
afterAll(async () => {
  for (const { quotas, shared } of started) {
    quotas.stop()
    shared.stop()
  }
  await redis?.stop()
  metrics.disable()
})

interface Instance {
  quotas: Quotas
  shared: SharedState
}

/** `count` instances of one new deployment, each on its own connection. */
async function deployment(count: number): Promise<Instance[]> {
  const deploymentId = `test-${crypto.randomUUID().slice(0, 8)}`
  const instances = []
  for (let i = 0; i < count; i++) {
    const shared = new SharedState({
      redisUrl: redis.url,
      deploymentId,
      timeoutMs: 1000, // a fallback that waited on Redis would show
      leaseMs: LEASE_MS,
      codeCacheWorkspaceBytes: 1 << 20,
    })
    await shared.start()
    expect(shared.shared).toBe(true)
    const instance = { quotas: new Quotas(shared), shared }
    started.push(instance)
    instances.push(instance)
  }
  return instances
}

function apiKey(
  id: string,
  limits: { requestsPerSecond: number; burst: number; concurrentRuns: number },
): ApiKey {
  return {
    id,
    workspaces: ['w'],
    limits: { ...limits, maxTimeoutMs: null, maxBodyBytes: null },
  }
}

/** The release function, or the Overloaded error admit refused with. */
async function tryAdmit(quotas: Quotas, key: ApiKey): Promise<(() => void) | Overloaded> {
  try {
    return await quotas.admit(key)
  } catch (error) {
    if (error instanceof Overloaded) return error
    throw error
  }
}

const admitted = (outcome: (() => void) | Overloaded): outcome is () => void =>
  typeof outcome === 'function'

/** Refusals counted for `keyId`, as `<quota>/<scope>` → count. */
async function rejectionsOf(keyId: string): Promise<Record<string, number>> {
  const { resourceMetrics } = await reader.collect()
  const counts: Record<string, number> = {}
  for (const metric of resourceMetrics.scopeMetrics.flatMap((scope) => scope.metrics))
    if (metric.descriptor.name === METRIC.quotaRejections)
      for (const point of metric.dataPoints)
        if (point.attributes['blockgate.key.id'] === keyId)
          counts[
            `${point.attributes['blockgate.quota']}/${point.attributes['blockgate.quota.scope']}`
          ] = point.value as number
  return counts
}

describe('quotas across a deployment, over a real Redis', () => {
  test('the burst is the deployment’s: spent through two instances, then 429 with Retry-After', async () => {
    const [a, b] = await deployment(2)
    const key = apiKey('burst', { requestsPerSecond: 0.5, burst: 4, concurrentRuns: 100 })
    const outcomes = []
    for (let i = 0; i < 6; i++) outcomes.push(await tryAdmit((i % 2 ? b! : a!).quotas, key))
    expect(outcomes.map(admitted)).toEqual([true, true, true, true, false, false])
    const refusal = outcomes[4] as Overloaded
    expect(refusal.status).toBe(429)
    expect(refusal.message).toBe(
      'key burst: over its rate of 0.5 requests per second across the deployment',
    )
    // 0.5 per second: the next token is about 2 s away.
    expect(Number(refusal.headers?.['Retry-After'])).toBe(2)
    expect(await rejectionsOf('burst')).toEqual({ 'rate/deployment': 2 })
  })

  test('tokens come back at the key’s rate, for all instances together', async () => {
    const [a, b] = await deployment(2)
    const key = apiKey('refill', { requestsPerSecond: 5, burst: 2, concurrentRuns: 100 })
    expect(admitted(await tryAdmit(a!.quotas, key))).toBe(true)
    expect(admitted(await tryAdmit(b!.quotas, key))).toBe(true)
    expect(admitted(await tryAdmit(b!.quotas, key))).toBe(false)
    // Asked every 20 ms for a second, through both: about 5 tokens come back (not 5 each).
    const startedAt = performance.now()
    let count = 0
    for (let i = 0; performance.now() - startedAt < 1000; i++) {
      if (admitted(await tryAdmit((i % 2 ? b! : a!).quotas, key))) count++
      await Bun.sleep(20)
    }
    expect(count).toBeGreaterThanOrEqual(4)
    expect(count).toBeLessThanOrEqual(6)
  })

  test('runs in flight are counted across instances; a release frees a slot for any of them', async () => {
    const [a, b] = await deployment(2)
    const key = apiKey('flight', { requestsPerSecond: 100, burst: 100, concurrentRuns: 2 })
    const first = await tryAdmit(a!.quotas, key)
    const second = await tryAdmit(b!.quotas, key)
    expect([admitted(first), admitted(second)]).toEqual([true, true])
    const refusals = [await tryAdmit(a!.quotas, key), await tryAdmit(b!.quotas, key)]
    for (const refusal of refusals) {
      expect(refusal).toBeInstanceOf(Overloaded)
      expect((refusal as Overloaded).message).toBe(
        'key flight: 2 runs are already in flight across the deployment, its limit',
      )
      expect((refusal as Overloaded).headers?.['Retry-After']).toBe('1')
    }
    ;(first as () => void)()
    await Bun.sleep(50) // the release is not awaited: the slot is free once Redis has it
    expect(admitted(await tryAdmit(b!.quotas, key))).toBe(true)
    expect(admitted(await tryAdmit(a!.quotas, key))).toBe(false)
    expect(await rejectionsOf('flight')).toEqual({ 'concurrency/deployment': 3 })
  })

  test('a run longer than the lease keeps its slot; a dead instance’s slot frees within the lease time', async () => {
    const [a, b] = await deployment(2)
    const key = apiKey('lease', { requestsPerSecond: 100, burst: 100, concurrentRuns: 1 })
    expect(admitted(await tryAdmit(a!.quotas, key))).toBe(true)
    await Bun.sleep(2 * LEASE_MS) // renewed every LEASE_MS / 3 meanwhile
    expect(admitted(await tryAdmit(b!.quotas, key))).toBe(false)
    // Instance a dies: no more renewals, and its run never releases.
    a!.quotas.stop()
    a!.shared.stop()
    const diedAt = performance.now()
    let freed = false
    while (!freed && performance.now() - diedAt < 3 * LEASE_MS) {
      await Bun.sleep(50)
      freed = admitted(await tryAdmit(b!.quotas, key))
    }
    expect(freed).toBe(true)
    expect(performance.now() - diedAt).toBeLessThan(LEASE_MS + 300)
  }, 10_000)

  // Last: it stops Redis.
  test('a busy key far from its limits: most admissions make no Redis call, and the deployment still never passes the rate', async () => {
    const [a, b] = await deployment(2)
    const key = apiKey('busy', { requestsPerSecond: 400, burst: 400, concurrentRuns: 100 })
    let scriptCalls = 0
    for (const instance of [a!, b!]) {
      const original = instance.shared.eval.bind(instance.shared)
      instance.shared.eval = (async (...args: Parameters<typeof original>) => {
        if (args[0].op === 'quota_admit') scriptCalls++
        return original(...args)
      }) as typeof original
    }
    // 150 runs one after another on one instance: the bucket stays over half full, so tokens
    // come ahead (20 at a time: 50 ms of 400/s) and a released slot serves the next run.
    const firstAt = performance.now()
    for (let i = 0; i < 150; i++) {
      const outcome = await tryAdmit(a!.quotas, key)
      if (!admitted(outcome)) throw outcome
      outcome()
    }
    expect(scriptCalls).toBeLessThan(30)
    // Both instances, each as fast as it can, for a second: about the burst and the refill
    // are admitted, never more, for both together.
    const startedAt = performance.now()
    let admittedCount = 0
    await Promise.all(
      [a!, b!].map(async (instance) => {
        while (performance.now() - startedAt < 1000) {
          const outcome = await tryAdmit(instance.quotas, key)
          if (admitted(outcome)) {
            admittedCount++
            outcome()
          }
        }
      }),
    )
    // Since the first run: the burst and the refill, never more, for both together.
    const seconds = (performance.now() - firstAt) / 1000
    expect(150 + admittedCount).toBeLessThanOrEqual(Math.ceil(400 + 400 * seconds))
    expect(admittedCount).toBeGreaterThan(250) // what the burst had left at least
  })

  test('a key with many runs in flight: spare slots count as taken for the others, and go back once unused', async () => {
    const [a, b] = await deployment(2)
    const key = apiKey('wide', { requestsPerSecond: 10_000, burst: 10_000, concurrentRuns: 40 })
    // Each instance tries to hold 30 runs at once: 40 together at most, spares included.
    const held = await Promise.all(
      [a!, b!].flatMap((instance) =>
        Array.from({ length: 30 }, () => tryAdmit(instance.quotas, key)),
      ),
    )
    const running = held.filter(admitted)
    expect(running.length).toBeLessThanOrEqual(40)
    expect(running.length).toBeGreaterThanOrEqual(38) // at most one spare slot per instance
    const leases = a!.shared.key('quota', 'wide', 'leases')
    const inRedis = async () => Number(await a!.shared.command('t', 'ZCARD', [leases]))
    expect(await inRedis()).toBeLessThanOrEqual(40)
    for (const release of running) release()
    // Spares unused for 50 ms go back, then released within a few ms.
    await Bun.sleep(200)
    expect(await inRedis()).toBe(0)
  })

  test('Redis gone: each instance decides alone, at once, with its own limits', async () => {
    const [a, b] = await deployment(2)
    const key = apiKey('alone', { requestsPerSecond: 0.5, burst: 2, concurrentRuns: 2 })
    // One run admitted through Redis still counts against a's own cap once Redis is gone.
    expect(admitted(await tryAdmit(a!.quotas, key))).toBe(true)
    await redis.stop()
    const decisionMs: number[] = []
    const outcomes = []
    for (const instance of [a!, a!, b!, b!, b!]) {
      const startedAt = performance.now()
      outcomes.push(await tryAdmit(instance.quotas, key))
      decisionMs.push(performance.now() - startedAt)
    }
    // a: one more run fits its own cap of 2; b: its own burst of 2, then its own rate.
    expect(outcomes.map(admitted)).toEqual([true, false, true, true, false])
    expect((outcomes[1] as Overloaded).message).toBe(
      'key alone: 2 runs are already in flight, its limit',
    )
    expect((outcomes[4] as Overloaded).message).toBe(
      'key alone: over its rate of 0.5 requests per second',
    )
    // Far under BLOCKGATE_REDIS_TIMEOUT_MS (1000 here): no decision waits on Redis.
    expect(Math.max(...decisionMs)).toBeLessThan(50)
    expect(a!.shared.shared || b!.shared.shared).toBe(false)
    expect(await rejectionsOf('alone')).toEqual({
      'concurrency/instance': 1,
      'rate/instance': 1,
    })
  })
})
