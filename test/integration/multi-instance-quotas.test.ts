// A key's quotas in a deployment of three real blockgate processes joined through a real
// redis-server (test/support/deployment.ts): requests spread over all three instances get the
// key's rate once, not once per instance; its runs in flight are capped for the three
// together; and the slot of a run on an instance killed with SIGKILL frees within the lease.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createHash } from 'node:crypto'
import { type Deployment, startDeployment } from '../support/deployment.ts'
import { readAnswer } from '../support/http.ts'

const LEASE_MS = 2000
const RATE = 5
const RATED = 'bg_multi-instance-rated-0123456789'
const SLOTS = 'bg_multi-instance-slots-0123456789'
const SINGLE = 'bg_multi-instance-single-012345678'
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex')
const unlimitedRate = { requests_per_second: 1000, burst: 1000 }

let deployment: Deployment

beforeAll(async () => {
  deployment = await startDeployment({
    instances: 3,
    env: {
      BLOCKGATE_LOG_LEVEL: 'warn',
      BLOCKGATE_REDIS_LEASE_MS: String(LEASE_MS),
      BLOCKGATE_API_KEYS: JSON.stringify({
        keys: [
          {
            id: 'rated',
            sha256: sha256(RATED),
            workspaces: ['rated'],
            limits: { requests_per_second: RATE, burst: RATE, concurrent_runs: 100 },
          },
          {
            id: 'slots',
            sha256: sha256(SLOTS),
            workspaces: ['slots'],
            limits: { ...unlimitedRate, concurrent_runs: 2 },
          },
          {
            id: 'single',
            sha256: sha256(SINGLE),
            workspaces: ['single'],
            limits: { ...unlimitedRate, concurrent_runs: 1 },
          },
        ],
      }),
    },
  })
}, 60_000)

afterAll(async () => {
  await deployment?.stop()
})

const sleepyBlock = (seconds: number) =>
  `import time\ndef run(self):\n    time.sleep(${seconds})\n    return {"slept": ${seconds}}\n`

async function post(instance: number, key: string, body: unknown) {
  const response = await fetch(`${deployment.instances[instance]!.url}/v1/run`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  return {
    status: response.status,
    retryAfter: response.headers.get('retry-after'),
    answer: await readAnswer(response),
  }
}

/** A request the quota admits (or refuses) and that then fails at once, before any run: 400. */
const probe = (instance: number, key: string) => post(instance, key, {})

describe('quotas across a deployment of three instances', () => {
  test('requests round-robin over three instances get the key’s rate once, not three times', async () => {
    const startedAt = performance.now()
    let admitted = 0
    let refused = 0
    let lastRefusal: Awaited<ReturnType<typeof probe>> | null = null
    // About 90 requests a second, far over the key's 5.
    for (let i = 0; performance.now() - startedAt < 3000; i++) {
      const answer = await probe(i % 3, RATED)
      if (answer.status === 429) {
        refused++
        lastRefusal = answer
      } else {
        expect(answer.status).toBe(400) // admitted: the empty body is refused after the quota
        admitted++
      }
      await Bun.sleep(10)
    }
    const seconds = (performance.now() - startedAt) / 1000
    // The burst, then RATE a second: per instance it would be three times as many.
    const expected = RATE + RATE * seconds
    expect(admitted).toBeGreaterThanOrEqual(Math.floor(expected) - 3)
    expect(admitted).toBeLessThanOrEqual(Math.ceil(expected) + 2)
    expect(refused).toBeGreaterThan(100)
    expect(lastRefusal!.answer.error.message).toBe(
      'key rated: over its rate of 5 requests per second across the deployment',
    )
    expect(Number(lastRefusal!.retryAfter)).toBe(1)
  }, 15_000)

  test('runs in flight are capped for the three instances together', async () => {
    const slow = { code: { run_function_code: sleepyBlock(1.5) }, inputs: {} }
    // Two waves of two runs per instance at once: two of each wave run, the rest get 429.
    for (let wave = 0; wave < 2; wave++) {
      const answers = await Promise.all(
        [0, 0, 1, 1, 2, 2].map((instance) => post(instance, SLOTS, slow)),
      )
      const statuses = answers.map((a) => a.status).sort()
      expect(statuses).toEqual([200, 200, 429, 429, 429, 429])
      for (const answer of answers.filter((a) => a.status === 429)) {
        expect(answer.answer.error.message).toBe(
          'key slots: 2 runs are already in flight across the deployment, its limit',
        )
        expect(answer.retryAfter).toBe('1')
      }
    }
  }, 20_000)

  test('a run’s slot outlives the lease while its instance lives, and frees within it once the instance is killed', async () => {
    const long = {
      code: { run_function_code: sleepyBlock(30) },
      inputs: {},
      timeout_ms: 40_000,
    }
    // Its connection breaks when the instance dies: that answer is never read.
    const running = post(0, SINGLE, long).catch(() => null)
    let held = false
    for (let i = 0; i < 100 && !held; i++) {
      await Bun.sleep(20)
      held = (await probe(1, SINGLE)).status === 429
    }
    expect(held).toBe(true)
    await Bun.sleep(LEASE_MS + 500) // past one lease: renewed meanwhile
    const stillHeld = await probe(2, SINGLE)
    expect(stillHeld.status).toBe(429)
    expect(stillHeld.answer.error.message).toContain('1 runs are already in flight')

    process.kill(deployment.instances[0]!.pid, 'SIGKILL')
    const killedAt = performance.now()
    let freedAfterMs: number | null = null
    for (let i = 0; freedAfterMs === null && performance.now() - killedAt < 3 * LEASE_MS; i++) {
      await Bun.sleep(50)
      if ((await probe(1 + (i % 2), SINGLE)).status === 400)
        freedAfterMs = performance.now() - killedAt
    }
    expect(await running).toBeNull()
    // Renewed every LEASE_MS / 3: the lease had between 2/3 of its time and all of it left.
    expect(freedAfterMs).not.toBeNull()
    expect(freedAfterMs!).toBeGreaterThan(LEASE_MS / 2)
    expect(freedAfterMs!).toBeLessThan(LEASE_MS + 500)
  }, 20_000)
})
