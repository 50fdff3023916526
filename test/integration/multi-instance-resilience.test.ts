// A deployment of real blockgate processes sharing a real redis-server, living through what
// Redis and the balancer do to it: Redis stopped (or hung) under load costs no run, and no run
// waits on it beyond the call's bound; each instance says it is degraded (/readyz, its log)
// and goes back to shared state once Redis answers again. Through the shipped HAProxy config,
// every run of one API key lands on one instance, so its workspace's workers stay warm there.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { RedisClient } from 'bun'
import { createHash } from 'node:crypto'
import { type Deployment, startDeployment } from '../support/deployment.ts'
import { readAnswer, runRequest, SUM_BLOCK } from '../support/http.ts'
import type { ServerProcess } from '../support/server-process.ts'

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex')
/** Limits no test here comes near: quotas admit every run, shared or not. */
const GENEROUS = { requests_per_second: 10_000, burst: 10_000, concurrent_runs: 1000 }

const keyEntry = (id: string, key: string, workspace: string) => ({
  id,
  sha256: sha256(key),
  workspaces: [workspace],
  limits: GENEROUS,
})

interface RunResult {
  /** The run's input: a correct answer is a + 1. */
  a: number
  status: number
  answer: any
  ms: number
  startedAt: number
}

/** One small run with `key` at `baseUrl` (an instance or the balancer). */
async function run(baseUrl: string, key: string, a: number): Promise<RunResult> {
  const startedAt = performance.now()
  try {
    const response = await fetch(`${baseUrl}/v1/run`, {
      ...runRequest({ code: { run_function_code: SUM_BLOCK }, inputs: { a, b: 1 } }, 'json', {
        authorization: `Bearer ${key}`,
      }),
      // A hang shows as a 10 s run (and fails the bound below), not as a stuck test.
      signal: AbortSignal.timeout(10_000),
    })
    const answer = await readAnswer(response)
    return { a, status: response.status, answer, ms: performance.now() - startedAt, startedAt }
  } catch (error) {
    return {
      a,
      status: 0,
      answer: String(error),
      ms: performance.now() - startedAt,
      startedAt,
    }
  }
}

async function readyz(instance: ServerProcess, key: string): Promise<any> {
  const response = await fetch(`${instance.url}/readyz`, {
    headers: { authorization: `Bearer ${key}` },
  })
  return response.json()
}

async function until(
  what: string,
  condition: () => boolean | Promise<boolean>,
  ms: number,
): Promise<number> {
  const startedAt = performance.now()
  for (const end = startedAt + ms; !(await condition()); ) {
    if (performance.now() > end) throw new Error(`${what}: not within ${ms} ms`)
    await Bun.sleep(50)
  }
  return performance.now() - startedAt
}

/** Keys Redis holds for the deployment (the fresh Redis after a restart starts with none). */
async function deploymentKeys(deployment: Deployment): Promise<string[]> {
  const client = new RedisClient(deployment.redis.url, { autoReconnect: false })
  try {
    return (await client.send('KEYS', [`blockgate:${deployment.deploymentId}:*`])) as string[]
  } finally {
    client.close()
  }
}

/**
 * Runs without pause through every instance (`perInstance` clients each) until stopped;
 * every answer is kept, each with the instance it went to.
 */
function startLoad(instances: ServerProcess[], key: string, perInstance = 2) {
  const results: (RunResult & { instance: number })[] = []
  let going = true
  const clients = instances.flatMap((instance, i) =>
    Array.from({ length: perInstance }, async () => {
      for (let n = 0; going; n++)
        results.push({ ...(await run(instance.url, key, n)), instance: i })
    }),
  )
  const load = {
    results,
    /** Answers to runs sent after `since` (performance.now()), per instance. */
    answeredSince: (since: number, instance: number) =>
      results.filter((r) => r.instance === instance && r.startedAt >= since && r.status === 200)
        .length,
    async stop() {
      going = false
      await Promise.all(clients)
      loads.delete(load)
      return results
    },
  }
  loads.add(load)
  return load
}

/** Loads still going (a test that failed midway): stopped before the deployment is. */
const loads = new Set<{ stop(): Promise<unknown> }>()

/** The slowest run that was in flight at some moment of [from, to]. */
const slowestDuring = (results: RunResult[], from: number, to: number) =>
  Math.max(
    0,
    ...results.filter((r) => r.startedAt <= to && r.startedAt + r.ms >= from).map((r) => r.ms),
  )

/** The slowest a run may be while Redis goes, hangs or comes back: well under a second. */
const SLOWEST_MS = 750
const DEGRADED_LINE = 'Redis is not answering'
const SHARED_LINE = 'Redis answers: shared state in use'
const occurrences = (text: string, line: string) => text.split(line).length - 1

describe('Redis goes away under load (three instances, local workers, API keys)', () => {
  const KEY = 'bg_resilience-load-0123456789abcdef'
  let deployment: Deployment

  beforeAll(async () => {
    deployment = await startDeployment({
      instances: 3,
      env: {
        BLOCKGATE_MIN_WARM_WORKERS: '1',
        BLOCKGATE_API_KEYS: JSON.stringify({ keys: [keyEntry('load', KEY, 'load')] }),
      },
    })
    // Each instance's workers for the workspace (two: the load's two clients) forked and the
    // block loaded in each: the load below runs warm.
    for (let round = 0; round < 3; round++)
      for (const { status } of await Promise.all(
        deployment.instances.flatMap((instance) => [
          run(instance.url, KEY, 1),
          run(instance.url, KEY, 2),
        ]),
      ))
        expect(status).toBe(200)
  }, 60_000)
  afterAll(async () => {
    deployment?.redis.resume()
    await Promise.all([...loads].map((load) => load.stop()))
    await deployment?.stop()
  })

  const modes = () =>
    Promise.all(deployment.instances.map(async (i) => (await readyz(i, KEY)).shared.mode))
  const allIn = (mode: string) => async () => (await modes()).every((m) => m === mode)
  /** Each instance's log from now on. */
  const logsFromNow = () => {
    const offsets = deployment.instances.map((instance) => instance.log().length)
    return () => deployment.instances.map((instance, i) => instance.log().slice(offsets[i]))
  }

  test('Redis stopped: every run still answered at once, each instance degraded, then shared again after a restart', async () => {
    // Shared at start (a call that ran past its bound on this busy machine would have
    // degraded an instance for a second or so: the probe brings it back).
    await until('every instance shared', allIn('shared'), 5000)
    // The runs' quota path uses Redis now.
    expect((await deploymentKeys(deployment)).length).toBeGreaterThan(0)

    const load = startLoad(deployment.instances, KEY)
    await Bun.sleep(1000)
    const logs = logsFromNow()
    const stoppedAt = performance.now()
    await deployment.redis.stop()
    const degradedAfterMs = await until('every instance degraded', allIn('degraded'), 5000)
    const degradedAt = performance.now()
    const status = await readyz(deployment.instances[0]!, KEY)
    expect(status.shared).toMatchObject({ mode: 'degraded', deployment: deployment.deploymentId })
    expect(String(status.shared.last_error)).not.toBe('')
    await Bun.sleep(1500) // serving degraded for a while
    const restartAt = performance.now()
    await deployment.redis.restart()
    const sharedAfterMs = await until('every instance shared again', allIn('shared'), 5000)
    const sharedAt = performance.now()
    await Bun.sleep(1000)
    const results = await load.stop()

    const aroundStop = slowestDuring(results, stoppedAt - 200, degradedAt + 500)
    const aroundRestart = slowestDuring(results, restartAt - 200, sharedAt + 500)
    console.log(
      `redis stop under load: ${results.length} runs; degraded everywhere ${Math.round(degradedAfterMs)} ms after the stop, shared again ${Math.round(sharedAfterMs)} ms after the restart; slowest run around the stop ${Math.round(aroundStop)} ms, around the restart ${Math.round(aroundRestart)} ms, overall ${Math.round(Math.max(...results.map((r) => r.ms)))} ms`,
    )
    // Every run answered, none refused or failed.
    expect(
      results.filter((r) => r.status !== 200).map((r) => `${r.status} ${JSON.stringify(r.answer)}`),
    ).toEqual([])
    expect(results.filter((r) => r.answer.outputs.sum !== r.a + 1)).toEqual([])
    // None waited on Redis going or coming back. Runs take a few ms here and a Redis call
    // at most BLOCKGATE_REDIS_TIMEOUT_MS (100 ms); the rest of the margin is for a busy
    // machine (two CPU hogs on its two cores made one run 550 ms once).
    expect(aroundStop).toBeLessThan(SLOWEST_MS)
    expect(aroundRestart).toBeLessThan(SLOWEST_MS)
    // Each instance went on serving while degraded, and after.
    for (let i = 0; i < deployment.instances.length; i++) {
      expect(load.answeredSince(degradedAt, i)).toBeGreaterThan(5)
      expect(load.answeredSince(sharedAt, i)).toBeGreaterThan(5)
    }
    // The logs say so, in order: shared at start, degraded, shared again.
    for (const log of logs()) {
      expect(log).toContain(DEGRADED_LINE)
      expect(log.lastIndexOf(SHARED_LINE)).toBeGreaterThan(log.lastIndexOf(DEGRADED_LINE))
    }
    // And the runs use the (fresh, empty) Redis again.
    expect((await run(deployment.instances[0]!.url, KEY, 1)).status).toBe(200)
    expect((await deploymentKeys(deployment)).length).toBeGreaterThan(0)
  }, 30_000)

  test('Redis hung (SIGSTOP): runs wait at most the call bound (100 ms), then do not wait at all', async () => {
    await until('every instance shared', allIn('shared'), 5000)
    const load = startLoad(deployment.instances, KEY)
    await Bun.sleep(500)
    const logs = logsFromNow()
    const pausedAt = performance.now()
    deployment.redis.pause()
    let degradedAt: number
    try {
      await until('every instance degraded', allIn('degraded'), 5000)
      degradedAt = performance.now()
      await Bun.sleep(1000)
    } finally {
      deployment.redis.resume()
    }
    const sharedAfterMs = await until('every instance shared again', allIn('shared'), 6000)
    await Bun.sleep(500)
    const results = await load.stop()
    const aroundPause = slowestDuring(results, pausedAt - 200, degradedAt + 500)
    console.log(
      `redis hung under load: ${results.length} runs; slowest around the hang ${Math.round(aroundPause)} ms; shared again ${Math.round(sharedAfterMs)} ms after it resumed; times degraded so far, per instance: ${deployment.instances.map((i) => occurrences(i.log(), DEGRADED_LINE)).join(', ')}`,
    )
    expect(
      results.filter((r) => r.status !== 200).map((r) => `${r.status} ${JSON.stringify(r.answer)}`),
    ).toEqual([])
    expect(aroundPause).toBeLessThan(SLOWEST_MS)
    for (let i = 0; i < deployment.instances.length; i++)
      expect(load.answeredSince(degradedAt, i)).toBeGreaterThan(5)
    // Each instance's log says why: a call ran past its bound.
    for (const log of logs()) {
      expect(log).toContain(DEGRADED_LINE)
      expect(log).toContain('no answer within 100 ms')
    }
  }, 30_000)
})

describe('through the balancer (shipped deploy/haproxy.cfg), a key stays on one instance', () => {
  // Fixed keys that look like keygen's random ones: HAProxy's consistent hash of their
  // Authorization headers is then fixed too, and spreads them (keys alike but for a digit
  // mostly land on one instance: sdbm keeps too much of a shared prefix).
  const KEYS = Array.from({ length: 6 }, (_, i) => ({
    id: `tenant-${i}`,
    key: `bg_${sha256(`balanced-tenant-${i}`).slice(0, 32)}`,
    workspace: `ws-${i}`,
  }))
  let deployment: Deployment

  beforeAll(async () => {
    deployment = await startDeployment({
      instances: 3,
      balancer: true,
      env: {
        BLOCKGATE_MAX_WORKERS: '8', // room for every workspace that may land on one instance
        BLOCKGATE_API_KEYS: JSON.stringify({
          keys: KEYS.map((k) => keyEntry(k.id, k.key, k.workspace)),
        }),
      },
    })
  }, 60_000)
  afterAll(async () => {
    await deployment?.stop()
  })

  test("a workspace's runs land on one instance: cold once, warm after", async () => {
    const homes: number[] = []
    for (const { id, key, workspace } of KEYS) {
      const colds: boolean[] = []
      for (let n = 0; n < 5; n++) {
        const { status, answer } = await run(deployment.balancerUrl!, key, n)
        expect(status).toBe(200)
        expect(answer.outputs.sum).toBe(n + 1)
        colds.push(answer.cold_start)
      }
      expect(colds).toEqual([true, false, false, false, false])
      // Which instances hold workers of the workspace: exactly one.
      const holding = (
        await Promise.all(
          deployment.instances.map(
            async (instance) => (await readyz(instance, key)).backends.local.by_workspace,
          ),
        )
      ).flatMap((byWorkspace, i) => ((byWorkspace[workspace] ?? 0) > 0 ? [i] : []))
      expect(holding).toHaveLength(1)
      const home = holding[0]!
      homes.push(home)
      // Its audit lines agree: all five runs of the key on that instance, none elsewhere.
      const audited = (instance: ServerProcess) => occurrences(instance.log(), `"key_id":"${id}"`)
      await until('the audit lines', () => audited(deployment.instances[home]!) === 5, 2000)
      deployment.instances.forEach((instance, i) => {
        if (i !== home) expect(audited(instance)).toBe(0)
      })
    }
    console.log(`balancer: keys landed on instances ${homes.join(', ')}`)
    // The keys spread: hashing, not everything on one instance.
    expect(new Set(homes).size).toBeGreaterThan(1)
  }, 60_000)
})
