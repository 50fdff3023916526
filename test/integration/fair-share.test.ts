// Each tenant (an API key, else a workspace) gets a share of the pool: one tenant's long runs
// queue behind its own share while another tenant's runs are served at once (issue 13, finding 5).
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createHash } from 'node:crypto'
import { createApp } from '../../src/app.ts'
import { checkedApp } from '../support/contract.ts'
import type { RunJob } from '../../src/backends/backend.ts'
import { E2BPool } from '../../src/backends/e2b/pool.ts'
import type { LocalPool } from '../../src/backends/local/pool.ts'
import { ConfigError, loadConfig } from '../../src/config.ts'
import { createBackends } from '../../src/backends/index.ts'
import { startStandin, type Standin } from '../standin/e2b/index.ts'
import { standinE2BConfig } from '../support/e2b-config.ts'
import { outputsOf, runJob } from '../support/run-job.ts'
import { readAnswer, runRequest, SUM_BLOCK } from '../support/http.ts'

// When the run held its worker, by the wall clock (workers share the host's clock).
const TIMED_SLEEP =
  'import time\ndef run(self, s):\n    start = time.time()\n    time.sleep(s)\n    return {"start": start, "end": time.time()}\n'

type Answer = { status: number; answer: any; headers: Headers; ms: number }
type Run = (body: Record<string, unknown>, key?: string) => Promise<Answer>

/** A pool (real sandboxed workers) and an app on it, for the tests of one describe block. */
function poolFor(env: Record<string, string>): { run: Run } {
  const config = loadConfig({ BLOCKGATE_MIN_WARM_WORKERS: '1', ...env })
  const backends = createBackends(config)
  const pool = backends.local as LocalPool
  const app = checkedApp(createApp({ config, backends }))
  beforeAll(() => pool.start(), 60_000)
  afterAll(() => pool.stop())
  const run: Run = async (request, key) => {
    const startedAt = performance.now()
    const headers: Record<string, string> = key ? { authorization: `Bearer ${key}` } : {}
    const response = await app.request(
      '/v1/run',
      runRequest(
        { code: { run_function_code: SUM_BLOCK }, inputs: { a: 1, b: 2 }, ...request },
        'json',
        headers,
      ),
    )
    return {
      status: response.status,
      answer: await readAnswer(response),
      headers: response.headers,
      ms: performance.now() - startedAt,
    }
  }
  return { run }
}

const sleeping = (s: number, workspace?: string) => ({
  code: { run_function_code: TIMED_SLEEP },
  inputs: { s },
  ...(workspace ? { workspace } : {}),
})

/** The most of these runs that held a worker at the same moment. */
function mostAtOnce(answers: Answer[]): number {
  const edges = answers.flatMap(({ answer }) => [
    { at: answer.outputs.start as number, step: 1 },
    { at: answer.outputs.end as number, step: -1 },
  ])
  edges.sort((a, b) => a.at - b.at || a.step - b.step) // an end before a start at the same instant
  let now = 0
  let most = 0
  for (const { step } of edges) {
    now += step
    most = Math.max(most, now)
  }
  return most
}

describe('a fair share of the local pool, per workspace', () => {
  const { run } = poolFor({ BLOCKGATE_MAX_WORKERS: '4', BLOCKGATE_TENANT_MAX_QUEUE: '2' })

  test("one workspace's long runs hold only its share and queue behind it; another workspace is served at once", async () => {
    const hog = [1, 2, 3, 4].map(() => run(sleeping(2, 'hog')))
    await Bun.sleep(300)
    // Two run (half of 4 workers), two wait: one more is past the hog's own queue bound.
    const [refused, other] = await Promise.all([
      run(sleeping(0.1, 'hog')),
      run({ workspace: 'other' }),
    ])
    expect(refused.status).toBe(429)
    expect(refused.headers.get('retry-after')).toBe('1')
    expect(refused.answer.error.type).toBe('Overloaded')
    expect(refused.answer.error.message).toBe(
      'workspace hog: 2 of its runs already wait for one of the 4 workers, its limit (BLOCKGATE_TENANT_MAX_QUEUE)',
    )
    expect(other.status).toBe(200)
    expect(other.answer.outputs).toEqual({ sum: 3 })
    expect(other.ms).toBeLessThan(1000) // the hog's runs sleep 2 s: it did not wait for one of them
    const hogs = await Promise.all(hog)
    expect(hogs.map((h) => h.status)).toEqual([200, 200, 200, 200])
    expect(mostAtOnce(hogs)).toBe(2)
    // The waiting two started as the first two ended, on the hog's own (warm) workers.
    const ends = hogs.map((h) => h.answer.outputs.end as number).sort()
    const starts = hogs.map((h) => h.answer.outputs.start as number).sort()
    expect(starts[2]!).toBeGreaterThanOrEqual(ends[0]! - 0.05)
    expect(hogs.filter((h) => h.answer.cold_start === false).length).toBeGreaterThanOrEqual(2)
  }, 30_000)
})

describe('a fair share of the local pool, per API key', () => {
  const sha256 = (text: string) => createHash('sha256').update(text).digest('hex')
  const ALPHA = 'bg_alpha-key-000000000000'
  const BETA = 'bg_beta-key-0000000000000'
  const keys = {
    keys: [
      { id: 'alpha', sha256: sha256(ALPHA), workspaces: ['alpha-one', 'alpha-two'] },
      { id: 'beta', sha256: sha256(BETA), workspaces: ['beta'] },
    ],
  }
  const { run } = poolFor({ BLOCKGATE_MAX_WORKERS: '4', BLOCKGATE_API_KEYS: JSON.stringify(keys) })

  test('the key is the tenant: two keys each get their share, whatever workspaces they use', async () => {
    // alpha asks first, for the whole pool, spread over its two workspaces.
    const alpha = ['alpha-one', 'alpha-two', 'alpha-one', 'alpha-two'].map((w) =>
      run(sleeping(1.5, w), ALPHA),
    )
    await Bun.sleep(300)
    const sentAt = Date.now() / 1000
    const betas = await Promise.all([1, 2, 3].map(() => run(sleeping(1.5), BETA)))
    const alphas = await Promise.all(alpha)
    expect([...alphas, ...betas].every((a) => a.status === 200)).toBe(true)
    expect(mostAtOnce(alphas)).toBe(2)
    expect(mostAtOnce(betas)).toBe(2)
    // beta's first runs started at once, not after one of alpha's.
    expect(Math.min(...betas.map((b) => b.answer.outputs.start)) - sentAt).toBeLessThan(1)
  }, 30_000)
})

describe('a fair share of the E2B sandboxes (the offline stand-in)', () => {
  let standin: Standin
  beforeAll(async () => {
    standin = await startStandin()
  }, 60_000)
  afterAll(() => standin?.stop())

  const job = (workspace: string, inputs: Record<string, unknown>, code = TIMED_SLEEP): RunJob =>
    runJob(code, { inputs, workspace, outputFormat: 'json' })

  test("one workspace holds its share of the sandboxes; another workspace's run does not wait for it", async () => {
    const config = standinE2BConfig(standin, {
      BLOCKGATE_E2B_MAX_SANDBOXES: '2',
      BLOCKGATE_E2B_TENANT_MAX_SANDBOXES: '1',
      BLOCKGATE_E2B_MAX_QUEUE: '16',
      BLOCKGATE_TENANT_MAX_QUEUE: '4',
    })
    const pool = new E2BPool(config, { maxFrameBytes: 64 << 20, queueTimeoutMs: 20_000 })
    await pool.start()
    try {
      const hog = [pool.run(job('hog', { s: 1.5 })), pool.run(job('hog', { s: 1.5 }))]
      await Bun.sleep(200)
      const other = await pool.run(job('other', { a: 1, b: 2 }, SUM_BLOCK))
      const otherDoneAt = Date.now() / 1000
      const [first, second] = (await Promise.all(hog)).map(outputsOf)
      expect(outputsOf(other)).toEqual({ sum: 3 })
      expect(otherDoneAt).toBeLessThan(first.end) // it did not wait for one of the hog's runs
      expect(second.start).toBeGreaterThanOrEqual(first.end - 0.05) // the hog's second run waited for its first
      expect(pool.sandboxes().filter((s) => s.workspace === 'hog').length).toBe(1)
    } finally {
      await pool.stop()
    }
  }, 30_000)
})

describe('configuration', () => {
  test('a tenant holds half the pool by default, at least one; more than the pool is refused', () => {
    expect(loadConfig({ BLOCKGATE_MAX_WORKERS: '4' }).local.tenantMaxWorkers).toBe(2)
    expect(
      loadConfig({ BLOCKGATE_MAX_WORKERS: '1', BLOCKGATE_MIN_WARM_WORKERS: '1' }).local
        .tenantMaxWorkers,
    ).toBe(1)
    expect(
      loadConfig({ BLOCKGATE_MAX_WORKERS: '4', BLOCKGATE_TENANT_MAX_WORKERS: '4' }).local
        .tenantMaxWorkers,
    ).toBe(4)
    expect(() =>
      loadConfig({ BLOCKGATE_MAX_WORKERS: '4', BLOCKGATE_TENANT_MAX_WORKERS: '5' }),
    ).toThrow(ConfigError)
    expect(() =>
      loadConfig({ BLOCKGATE_MAX_WORKERS: '4', BLOCKGATE_TENANT_MAX_WORKERS: '5' }),
    ).toThrow('BLOCKGATE_TENANT_MAX_WORKERS: must not exceed BLOCKGATE_MAX_WORKERS')
    expect(() => loadConfig({ BLOCKGATE_MAX_QUEUE: '8', BLOCKGATE_TENANT_MAX_QUEUE: '9' })).toThrow(
      'BLOCKGATE_TENANT_MAX_QUEUE: must not exceed BLOCKGATE_MAX_QUEUE',
    )
    expect(loadConfig({ BLOCKGATE_MAX_QUEUE: '256' }).local.tenantMaxQueue).toBe(64)
    expect(loadConfig({ BLOCKGATE_MAX_QUEUE: '1' }).local.tenantMaxQueue).toBe(1)
  })
})
