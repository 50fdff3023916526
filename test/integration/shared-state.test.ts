// The deployment's Redis as one instance sees it (src/shared/redis.ts), against a real
// redis-server: scripts run by their SHA, every call bounded; a Redis that stops, crashes or
// hangs puts the instance in degraded mode at once (calls fail fast, no run waits on Redis)
// and a probe brings it back to shared mode when Redis answers again.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { RedisScript, SharedState, SharedUnavailable } from '../../src/shared/redis.ts'
import { startRedis, type RedisServer } from '../support/redis-server.ts'

let redis: RedisServer

beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  await redis?.stop()
})

const INCR_BY = new RedisScript('test_incr', "return redis.call('INCRBY', KEYS[1], ARGV[1])")

function sharedState(timeoutMs = 100): SharedState {
  return new SharedState({
    redisUrl: redis.url,
    deploymentId: `test-${crypto.randomUUID().slice(0, 8)}`,
    timeoutMs,
    leaseMs: 15_000,
    codeCacheWorkspaceBytes: 1 << 20,
  })
}

async function until(condition: () => boolean, ms = 5000): Promise<void> {
  for (const end = performance.now() + ms; !condition(); ) {
    if (performance.now() > end) throw new Error('condition not met in time')
    await Bun.sleep(20)
  }
}

describe('shared state over a real Redis', () => {
  test('scripts run (loaded on first use), keys are the deployment’s own', async () => {
    const shared = sharedState()
    await shared.start()
    try {
      expect(shared.shared).toBe(true)
      expect(shared.key('quota', 'k1')).toBe(`blockgate:${shared.config.deploymentId}:quota:k1`)
      expect(await shared.eval<number>(INCR_BY, [shared.key('n')], [2])).toBe(2)
      expect(await shared.eval<number>(INCR_BY, [shared.key('n')], [3])).toBe(5)
      expect(shared.status()).toMatchObject({ mode: 'shared' })
    } finally {
      shared.stop()
    }
  })

  test('Redis crashes: degraded at the next call, calls then fail at once; back to shared when it returns', async () => {
    const shared = sharedState()
    const modes: string[] = []
    shared.onModeChange((mode) => modes.push(mode))
    await shared.start()
    try {
      await redis.kill9()
      await until(() => !shared.shared) // the closed connection is noticed, or the next call fails
      const started = performance.now()
      await expect(shared.eval(INCR_BY, [shared.key('n')], [1])).rejects.toBeInstanceOf(
        SharedUnavailable,
      )
      expect(performance.now() - started).toBeLessThan(20) // no wait while degraded
      expect(shared.status()).toMatchObject({ mode: 'degraded' })
      await redis.restart()
      await until(() => shared.shared)
      expect(await shared.eval<number>(INCR_BY, [shared.key('m')], [1])).toBe(1)
      expect(modes).toEqual(['shared', 'degraded', 'shared'])
    } finally {
      shared.stop()
    }
  }, 20_000)

  test('a hung Redis (SIGSTOP): the call gives up at the bound, degraded until it answers again', async () => {
    const shared = sharedState(100)
    await shared.start()
    try {
      await redis.pause()
      const started = performance.now()
      await expect(shared.eval(INCR_BY, [shared.key('n')], [1])).rejects.toBeInstanceOf(
        SharedUnavailable,
      )
      const waited = performance.now() - started
      expect(waited).toBeGreaterThanOrEqual(95)
      expect(waited).toBeLessThan(600)
      expect(shared.shared).toBe(false)
      await redis.resume()
      await until(() => shared.shared)
    } finally {
      await redis.resume()
      shared.stop()
    }
  }, 20_000)

  test('no Redis at start: the instance starts degraded and joins when Redis comes', async () => {
    await redis.stop()
    const shared = sharedState()
    try {
      await shared.start()
      expect(shared.shared).toBe(false)
      expect(String(shared.status().last_error)).toContain('connect')
      await redis.restart()
      await until(() => shared.shared)
    } finally {
      shared.stop()
    }
  }, 20_000)
})
