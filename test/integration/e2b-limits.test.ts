// The e2b backend against E2B's limits as the stand-in enforces them: a sandbox's own expiry,
// the create rate and its refusals, the run's deadline, the plan's lifetime (issue 16).
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'bun:test'
import type { RunJob } from '../../src/backends/backend.ts'
import { E2BPool } from '../../src/backends/e2b/pool.ts'
import { Lifecycle } from '../../src/backends/e2b/lifecycle.ts'
import { ConfigError, loadConfig } from '../../src/config.ts'
import { startStandin, type Standin } from '../standin/e2b/index.ts'
import { standinE2BConfig } from '../support/e2b-config.ts'
import { runJob } from '../support/run-job.ts'

let standin: Standin

beforeAll(async () => {
  standin = await startStandin()
}, 60_000)
afterAll(async () => {
  await standin?.stop()
})
beforeEach(() => {
  standin.faults.rateLimitCreates = 0
  standin.faults.slowCreateMs = 0
  standin.calls.reset()
})

const SUM = 'def run(self, a, b):\n    return {"sum": a + b}\n'

const job = (workspace: string): RunJob =>
  runJob(SUM, { inputs: { a: 1, b: 2 }, workspace, outputFormat: 'json' })

async function withPool<T>(
  env: Record<string, string>,
  queueTimeoutMs: number,
  body: (pool: E2BPool) => Promise<T>,
): Promise<T> {
  const pool = new E2BPool(standinE2BConfig(standin, env), {
    maxFrameBytes: 64 << 20,
    queueTimeoutMs,
  })
  await pool.start()
  try {
    return await body(pool)
  } finally {
    await pool.stop()
  }
}

describe("the plan's lifetime (row 2)", () => {
  test('a sandbox timeout past the plan is refused at start-up, naming both settings', () => {
    expect(() => loadConfig({ E2B_API_KEY: 'k', E2B_SANDBOX_TIMEOUT: '7200' })).toThrow(ConfigError)
    expect(() => loadConfig({ E2B_API_KEY: 'k', E2B_SANDBOX_TIMEOUT: '7200' })).toThrow(
      'BLOCKGATE_E2B_PLAN_MAX_LIFETIME',
    )
    expect(
      loadConfig({
        E2B_API_KEY: 'k',
        E2B_SANDBOX_TIMEOUT: '7200',
        BLOCKGATE_E2B_PLAN_MAX_LIFETIME: '86400',
      }).e2b?.lifetimeMs,
    ).toBe(7_200_000)
  })

  test("no timeout asked of E2B reaches past the plan's lifetime from the sandbox's start", () => {
    const config = loadConfig({
      E2B_API_KEY: 'k',
      E2B_SANDBOX_TIMEOUT: '3600',
      E2B_SANDBOX_IDLE_TIMEOUT: '3600',
    }).e2b!
    const lifecycle = new Lifecycle({ ...config, planMaxLifetimeMs: 1_000_000 })
    expect(lifecycle.keepAliveMs(0)).toBe(1_000_000)
    expect(lifecycle.keepAliveMs(400_000)).toBe(600_000)
  })
})

describe('spares (row 3)', () => {
  // A spare's create timeout is twice the idle period plus a margin (12.5 s here): E2B ends
  // it then unless the pool moves its timer on while it waits.
  test('a pre-warmed spare outlives its create timeout and serves the first run', async () => {
    await withPool(
      { BLOCKGATE_E2B_MIN_WARM: '1', E2B_SANDBOX_IDLE_TIMEOUT: '5', E2B_SANDBOX_TIMEOUT: '120' },
      20_000,
      async (pool) => {
        for (let i = 0; i < 100 && pool.sandboxes().length === 0; i++) await Bun.sleep(100)
        const [spare] = pool.sandboxes()
        expect(spare).toBeDefined()
        await Bun.sleep(15_000)
        expect(standin.alive().map((s) => s.sandboxId)).toContain(spare!.id)
        const outcome = await pool.run(job('spare'))
        expect(pool.sandboxes().find((s) => s.workspace === 'spare')?.id).toBe(spare!.id)
        expect(outcome.coldStart).toBe(true) // a spare still loads the block
        expect(pool.lifecycle.calls.set_timeout).toBeGreaterThanOrEqual(1)
      },
    )
  }, 40_000)
})

describe('slots at the concurrency cap (row 5)', () => {
  // E2B counts a sandbox against the plan's cap until its kill lands, and refuses a create
  // past the cap with 429 without Retry-After (e2b-dev/E2B#283).
  test('a sandbox ended to make room holds its place until its kill lands: no create is refused', async () => {
    standin.faults.maxConcurrent = 1
    standin.faults.slowKillMs = 1500
    try {
      await withPool({ BLOCKGATE_E2B_MAX_SANDBOXES: '1' }, 20_000, async (pool) => {
        await pool.run(job('first'))
        const before = standin.calls.creates.length
        const outcome = await pool.run(job('second')) // ends first's sandbox, then creates one
        expect(outcome.coldStart).toBe(true)
        expect(standin.calls.creates.length - before).toBe(1) // not refused and retried
      })
    } finally {
      standin.faults.maxConcurrent = null
      standin.faults.slowKillMs = 0
    }
  }, 30_000)
})

describe('one retry policy, bounded by the run (row 6)', () => {
  test('a refused create is retried BLOCKGATE_E2B_CREATE_RETRIES times, not again by the SDK under it', async () => {
    standin.faults.rateLimitCreates = 10
    standin.faults.retryAfterSeconds = 0
    await withPool({ BLOCKGATE_E2B_CREATE_RETRIES: '1' }, 20_000, async (pool) => {
      const refused = await pool.run(job('rate')).catch((error) => error)
      expect(refused.status).toBe(503)
      expect(standin.calls.creates.length).toBe(2) // one try and one retry
    })
  }, 30_000)

  test("a create that takes longer than the run may wait is given up at the run's deadline", async () => {
    standin.faults.slowCreateMs = 5000
    await withPool({}, 1000, async (pool) => {
      const startedAt = performance.now()
      const late = await pool.run(job('slow')).catch((error) => error)
      expect(performance.now() - startedAt).toBeLessThan(2500)
      expect(late.status).toBe(503)
      expect(late.message).toContain('before this run stopped waiting')
    })
  }, 30_000)
})

describe('what the backend passes the SDK (row 8)', () => {
  test('every connection option is explicit: nothing comes from E2B_DEBUG or E2B_DOMAIN in the environment', () => {
    const config = loadConfig({ E2B_API_KEY: 'k' }).e2b!
    expect(new Lifecycle(config).connection).toMatchObject({
      apiUrl: 'https://api.e2b.app',
      domain: 'e2b.app',
      debug: false,
      retries: 0,
    })
    const own = loadConfig({ E2B_API_KEY: 'k', E2B_DOMAIN: 'e2b.example.com' }).e2b!
    expect(new Lifecycle(own).connection).toMatchObject({
      apiUrl: 'https://api.e2b.example.com',
      domain: 'e2b.example.com',
    })
  })

  test('a create asks for no deprecated option: the traffic token guards the runtime, not `secure`', async () => {
    await withPool({}, 20_000, async (pool) => {
      await pool.run(job('secure'))
      const body = standin.calls.creates.at(-1) as Record<string, unknown>
      expect(body).not.toHaveProperty('secure')
      expect(body.network).toMatchObject({ allowPublicTraffic: false })
    })
  }, 30_000)
})

describe('what a block sees (row 1)', () => {
  test("the e2b pool's status (/readyz detail) names the Python and package versions blocks run on", () => {
    const pool = new E2BPool(standinE2BConfig(standin), {
      maxFrameBytes: 64 << 20,
      queueTimeoutMs: 1000,
    })
    const packages = pool.status().block_packages as {
      mode: string
      python: string
      packages: Record<string, string>
    }
    expect(packages.mode).toBe('template')
    expect(packages.python).toMatch(/^3\.\d+$/)
    expect(Object.keys(packages.packages)).toEqual(expect.arrayContaining(['numpy', 'supervision']))
  })
})
