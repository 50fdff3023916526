// The e2b backend against the offline stand-in: the real e2b SDK drives the stand-in's
// control plane, and runs reach real runtime servers in bubblewrap through its data plane.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { Sandbox } from 'e2b'
import { createApp } from '../../src/app.ts'
import { checkedApp } from '../support/contract.ts'
import type { RunJob } from '../../src/backends/backend.ts'
import { outputsOf, runJob } from '../support/run-job.ts'
import { E2BPool } from '../../src/backends/e2b/pool.ts'
import { METADATA } from '../../src/backends/e2b/lifecycle.ts'
import { loadConfig, type E2BConfig } from '../../src/config.ts'
import { createBackends } from '../../src/backends/index.ts'
import { startStandin, type Standin } from '../standin/e2b/index.ts'
import { readAnswer, runRequest, SUM_BLOCK } from '../support/http.ts'
import { comparable, parityBlocks } from '../support/parity.ts'
import { standinE2BConfig, standinEnv } from '../support/e2b-config.ts'

let standin: Standin

beforeAll(async () => {
  standin = await startStandin()
}, 60_000)
afterAll(async () => {
  await standin?.stop()
})

const e2bConfig = (
  overrides: Partial<E2BConfig> = {},
  env: Record<string, string> = {},
): E2BConfig =>
  standinE2BConfig(
    standin,
    { BLOCKGATE_E2B_MAX_SANDBOXES: '8', BLOCKGATE_E2B_MAX_QUEUE: '16', ...env },
    overrides,
  )

const poolOptions = { maxFrameBytes: 64 << 20, queueTimeoutMs: 20_000 }

async function withPool<T>(
  overrides: Partial<E2BConfig>,
  body: (pool: E2BPool) => Promise<T>,
  options: Partial<typeof poolOptions> = {},
): Promise<T> {
  const pool = new E2BPool(e2bConfig(overrides), { ...poolOptions, ...options })
  await pool.start()
  try {
    return await body(pool)
  } finally {
    await pool.stop()
  }
}

const job = (
  run_function_code: string,
  inputs: Record<string, unknown> = {},
  workspace = 'acme',
  timeoutMs = 10_000,
): RunJob => runJob(run_function_code, { inputs, workspace, timeoutMs })

/** Waits (up to 5 s) for a condition the pool reaches in the background, like a kill call landing. */
async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !condition(); i++) await Bun.sleep(50)
  expect(condition()).toBe(true)
}

const aliveIn = (workspaceTag: string) =>
  standin.alive().filter((s) => s.metadata[METADATA.deployment] === workspaceTag)

describe('the sandbox lifecycle', () => {
  test('create → run → reuse warm with no control-plane call → idle kill', async () => {
    const config = e2bConfig({ idleMs: 1500 })
    const pool = new E2BPool(config, poolOptions)
    await pool.start()
    try {
      const dataBefore = standin.calls.dataTotal()
      const first = await pool.run(job(SUM_BLOCK, { a: 1, b: 2 }))
      expect(outputsOf(first)).toEqual({ sum: 3 })
      expect(first.coldStart).toBe(true)
      // The cold run was a create and one request: the block's code travelled with the run.
      expect(standin.calls.dataTotal() - dataBefore).toBe(1)
      const [sandbox] = pool.sandboxes()
      expect(sandbox?.workspace).toBe('acme')
      // With an idle period this short, a release may move E2B's timer on (a keep-alive, off
      // the run's path): what must not happen on the path is any other control-plane call.
      const onPath = () => {
        const { set_timeout: _, ...rest } = pool.lifecycle.calls
        return {
          ...rest,
          standin: standin.calls.total() - standin.calls.of('POST /sandboxes/:id/timeout'),
        }
      }
      const callsAfterCold = onPath()
      const dataRequestsAfterCold = standin.calls.dataTotal()

      const second = await pool.run(job(SUM_BLOCK, { a: 3, b: 4 }))
      expect(outputsOf(second)).toEqual({ sum: 7 })
      expect(second.coldStart).toBe(false)
      expect(pool.sandboxes().map((s) => s.id)).toEqual([sandbox!.id])
      expect(onPath()).toEqual(callsAfterCold)
      expect(standin.calls.dataTotal()).toBe(dataRequestsAfterCold + 1) // one round trip to the sandbox

      // Idle past E2B_SANDBOX_IDLE_TIMEOUT: killed, in the pool and at E2B.
      await Bun.sleep(2500)
      expect(pool.sandboxes()).toEqual([])
      expect(aliveIn(config.deploymentId)).toEqual([])
    } finally {
      await pool.stop()
    }
  }, 30_000)

  test('sandboxes carry their workspace and version, and no environment variables', async () => {
    const config = e2bConfig()
    const pool = new E2BPool(config, poolOptions)
    await pool.start()
    try {
      await pool.run(job(SUM_BLOCK, { a: 1, b: 1 }, 'tenant-meta'))
      const [info] = aliveIn(config.deploymentId)
      expect(info?.metadata).toMatchObject({
        [METADATA.workspace]: 'tenant-meta',
        [METADATA.deployment]: config.deploymentId,
      })
      const created = standin.calls.creates.at(-1) as Record<string, unknown>
      expect(created.envVars ?? {}).toEqual({})
      expect(JSON.stringify(created)).not.toContain(standin.apiKey)
    } finally {
      await pool.stop()
    }
    expect(aliveIn(config.deploymentId)).toEqual([])
  }, 30_000)

  test('two workspaces never share a sandbox', async () => {
    await withPool({}, async (pool) => {
      const probe = 'import os\ndef run(self):\n    return {"pid": os.getpid()}\n'
      await Promise.all([pool.run(job(probe, {}, 'one')), pool.run(job(probe, {}, 'two'))])
      await pool.run(job(probe, {}, 'one'))
      const byWorkspace = pool.sandboxes()
      expect(new Set(byWorkspace.map((s) => s.workspace))).toEqual(new Set(['one', 'two']))
      expect(new Set(byWorkspace.map((s) => s.id)).size).toBe(byWorkspace.length)
      // Module state of one workspace's block is invisible to the other's.
      const poison =
        'import json\ndef run(self):\n    json.dumps = lambda *a, **k: "poisoned"\n    return {}\n'
      const check = 'import json\ndef run(self):\n    return {"dumps": json.dumps([1])}\n'
      await pool.run(job(poison, {}, 'one'))
      expect(outputsOf(await pool.run(job(check, {}, 'two')))).toEqual({ dumps: '[1]' })
    })
  }, 30_000)

  test('sandboxes a previous run of the deployment left behind are killed at start', async () => {
    const config = e2bConfig()
    const leftover = await Sandbox.create(config.templateId, {
      apiKey: standin.apiKey,
      apiUrl: standin.apiUrl,
      sandboxUrl: standin.sandboxUrl,
      metadata: { [METADATA.deployment]: config.deploymentId, [METADATA.workspace]: 'old' },
    })
    const other = await Sandbox.create(config.templateId, {
      apiKey: standin.apiKey,
      apiUrl: standin.apiUrl,
      sandboxUrl: standin.sandboxUrl,
      metadata: { [METADATA.deployment]: 'someone-else' },
    })
    const pool = new E2BPool(config, poolOptions)
    await pool.start()
    await pool.stop()
    const alive = standin.alive().map((s) => s.sandboxId)
    expect(alive).not.toContain(leftover.sandboxId)
    expect(alive).toContain(other.sandboxId)
    await other.kill()
  }, 30_000)

  test('stop kills every sandbox, pre-warmed ones included', async () => {
    const config = e2bConfig({ minWarm: 2 })
    const pool = new E2BPool(config, poolOptions)
    await pool.start()
    await pool.run(job(SUM_BLOCK, { a: 1, b: 1 }))
    for (let i = 0; i < 50 && pool.status().spares !== 2; i++) await Bun.sleep(100)
    expect(pool.status().spares).toBe(2)
    expect(aliveIn(config.deploymentId).length).toBe(3)
    await pool.stop()
    expect(aliveIn(config.deploymentId)).toEqual([])
  }, 30_000)
})

describe('failures of the block and of the service', () => {
  test('an infinite loop is a 504 BlockTimeout, the sandbox is killed, and the next run works', async () => {
    const config = e2bConfig()
    await withPool(config, async (pool) => {
      await pool.run(job(SUM_BLOCK, { a: 1, b: 1 }))
      const [looping] = pool.sandboxes()
      const error = await pool
        .run(job('def run(self):\n    while True:\n        pass\n', {}, 'acme', 800))
        .catch((e) => e)
      expect(error.status).toBe(504)
      expect(error.type).toBe('BlockTimeout')
      await until(() => !standin.alive().some((s) => s.sandboxId === looping!.id))
      expect(outputsOf(await pool.run(job(SUM_BLOCK, { a: 2, b: 2 })))).toEqual({ sum: 4 })
    })
  }, 30_000)

  test('a block error is a 422 with the line, and the sandbox stays warm', async () => {
    await withPool({}, async (pool) => {
      const error = await pool
        .run(job('def run(self):\n    x = 1\n    raise ValueError("bad")\n'))
        .catch((e) => e)
      expect(error.status).toBe(422)
      expect(error.details.line).toBe(3)
      const again = await pool.run(job(SUM_BLOCK, { a: 1, b: 1 }))
      expect(again.coldStart).toBe(true) // a new block, loaded in the same sandbox
      expect(pool.sandboxes().length).toBe(1)
    })
  }, 30_000)

  test('a crash of the interpreter is a clear 5xx, and the next run works', async () => {
    await withPool({}, async (pool) => {
      const error = await pool
        .run(job('import os\ndef run(self):\n    os._exit(1)\n'))
        .catch((e) => e)
      expect(error.status).toBe(502)
      expect(error.message).toContain('SandboxGone')
      expect(outputsOf(await pool.run(job(SUM_BLOCK, { a: 5, b: 5 })))).toEqual({ sum: 10 })
    })
  }, 30_000)

  test('429s with Retry-After are waited out and the create succeeds', async () => {
    standin.faults.rateLimitCreates = 2
    standin.faults.retryAfterSeconds = 1
    try {
      await withPool({}, async (pool) => {
        const started = performance.now()
        expect(outputsOf(await pool.run(job(SUM_BLOCK, { a: 1, b: 1 })))).toEqual({ sum: 2 })
        expect(performance.now() - started).toBeGreaterThan(1500) // two Retry-After waits
      })
    } finally {
      standin.faults.rateLimitCreates = 0
    }
  }, 30_000)

  test('503s past the retries become a 503 with Retry-After for the client', async () => {
    standin.faults.serviceUnavailableCreates = 10
    try {
      await withPool({ createRetries: 2 }, async (pool) => {
        const error = await pool.run(job(SUM_BLOCK, { a: 1, b: 1 })).catch((e) => e)
        expect(error.status).toBe(503)
        expect(error.headers['Retry-After']).toBeDefined()
        expect(error.message).toContain('ServiceBusyError')
      })
    } finally {
      standin.faults.serviceUnavailableCreates = 0
    }
  }, 30_000)

  test('a wrong API key stops the backend at start with a message naming the key', async () => {
    const pool = new E2BPool(e2bConfig({ apiKey: 'e2b_wrong' }), poolOptions)
    const error = await pool.start().catch((e) => e)
    expect(error.status).toBe(502)
    expect(error.message).toContain('E2B_API_KEY')
    await pool.stop()
  })

  test('a sandbox that vanished (404 on a live id) is replaced and the run succeeds', async () => {
    await withPool({}, async (pool) => {
      await pool.run(job(SUM_BLOCK, { a: 1, b: 1 }))
      const [first] = pool.sandboxes()
      standin.faults.notFoundIds = [first!.id]
      try {
        expect(outputsOf(await pool.run(job(SUM_BLOCK, { a: 2, b: 3 })))).toEqual({ sum: 5 })
        expect(pool.sandboxes().map((s) => s.id)).not.toContain(first!.id)
      } finally {
        standin.faults.notFoundIds = []
      }
    })
  }, 30_000)

  test('a slow create shows in the cold run’s acquire time, not the warm one’s', async () => {
    standin.faults.slowCreateMs = 700
    try {
      await withPool({}, async (pool) => {
        const cold = await pool.run(job(SUM_BLOCK, { a: 1, b: 1 }))
        const warm = await pool.run(job(SUM_BLOCK, { a: 1, b: 1 }))
        expect(cold.timings.acquire).toBeGreaterThan(700)
        expect(warm.timings.acquire).toBeLessThan(100)
      })
    } finally {
      standin.faults.slowCreateMs = 0
    }
  }, 30_000)

  test('at the sandbox cap, a run of another workspace waits for room, and none is lost', async () => {
    await withPool({ maxSandboxes: 1 }, async (pool) => {
      const sleepy = 'import time\ndef run(self, n):\n    time.sleep(0.2)\n    return {"n": n}\n'
      const runs = await Promise.all(
        ['a', 'b', 'a', 'b'].map((w, n) => pool.run(job(sleepy, { n }, w))),
      )
      expect(runs.map((r) => (outputsOf(r) as { n: number }).n)).toEqual([0, 1, 2, 3])
      expect(pool.sandboxes().length).toBeLessThanOrEqual(1)
    })
  }, 30_000)
})

describe('more faults of the service', () => {
  test('a key revoked while serving: the run is a 502 naming AuthenticationError, and runs recover with the key', async () => {
    await withPool({}, async (pool) => {
      standin.faults.unauthorized = true
      try {
        const error = await pool.run(job(SUM_BLOCK, { a: 1, b: 1 }, 'revoked')).catch((e) => e)
        expect(error.status).toBe(502)
        expect(error.message).toContain('AuthenticationError')
        expect(error.message).toContain('E2B_API_KEY')
      } finally {
        standin.faults.unauthorized = false
      }
      expect(outputsOf(await pool.run(job(SUM_BLOCK, { a: 1, b: 1 }, 'revoked')))).toEqual({
        sum: 2,
      })
    })
  }, 30_000)

  test("the plan's concurrent-sandbox cap at E2B: a create refused with 429 becomes a 503 with Retry-After", async () => {
    await withPool({ createRetries: 0 }, async (pool) => {
      await pool.run(job(SUM_BLOCK, { a: 1, b: 1 }, 'first'))
      standin.faults.maxConcurrent = standin.alive().length
      try {
        const error = await pool.run(job(SUM_BLOCK, { a: 1, b: 1 }, 'second')).catch((e) => e)
        expect(error.status).toBe(503)
        expect(error.headers['Retry-After']).toBeDefined()
        expect(error.message).toContain('RateLimitError')
        // The workspace that has its sandbox is not affected.
        expect(outputsOf(await pool.run(job(SUM_BLOCK, { a: 2, b: 2 }, 'first')))).toEqual({
          sum: 4,
        })
      } finally {
        standin.faults.maxConcurrent = null
      }
    })
  }, 30_000)
})

describe('code-interpreter mode', () => {
  // A cold create installs the wheelhouse into the sandbox (about 5 s alone, more with another
  // test file on the other core): the runs that may create get the time for it.
  const ciJob = (code: string, inputs: Record<string, unknown> = {}) =>
    job(code, inputs, 'acme', 30_000)

  test('the runtime is uploaded once; later runs reuse it warm', async () => {
    await withPool(
      { mode: 'code-interpreter', templateId: 'code-interpreter-v1' },
      async (pool) => {
        const first = await pool.run(ciJob(SUM_BLOCK, { a: 2, b: 3 }))
        expect(outputsOf(first)).toEqual({ sum: 5 })
        expect(first.coldStart).toBe(true)
        const second = await pool.run(ciJob(SUM_BLOCK, { a: 4, b: 5 }))
        expect(outputsOf(second)).toEqual({ sum: 9 })
        expect(second.coldStart).toBe(false)
        const error = await pool.run(ciJob('def run(self):\n    return 1 / 0\n')).catch((e) => e)
        expect(error.status).toBe(422)
        expect(error.details.line).toBe(2)
      },
    )
  }, 60_000)

  test('a vanished sandbox is replaced; a loop is a 504', async () => {
    await withPool(
      { mode: 'code-interpreter', templateId: 'code-interpreter-v1' },
      async (pool) => {
        await pool.run(ciJob(SUM_BLOCK, { a: 1, b: 1 }))
        const [first] = pool.sandboxes()
        standin.faults.notFoundIds = [first!.id]
        try {
          expect(outputsOf(await pool.run(ciJob(SUM_BLOCK, { a: 2, b: 3 })))).toEqual({ sum: 5 })
        } finally {
          standin.faults.notFoundIds = []
        }
        expect(pool.sandboxes().map((s) => s.id)).not.toContain(first!.id)
        const error = await pool
          .run(job('def run(self):\n    while True:\n        pass\n', {}, 'acme', 1000))
          .catch((e) => e)
        expect(error.status).toBe(504)
      },
    )
  }, 60_000)
})

describe('local and e2b give identical answers', () => {
  const config = loadConfig({ BLOCKGATE_MIN_WARM_WORKERS: '1', BLOCKGATE_MAX_WORKERS: '2' })
  let backends: ReturnType<typeof createBackends>
  let app: ReturnType<typeof createApp>
  beforeAll(async () => {
    backends = { ...createBackends(config), e2b: new E2BPool(e2bConfig(), poolOptions) }
    app = checkedApp(createApp({ config, backends }))
    await Promise.all(Object.values(backends).map((b) => b.start()))
  }, 60_000)
  afterAll(async () => {
    await Promise.all(Object.values(backends).map((b) => b.stop()))
  })

  // The same blocks `npm run smoke:e2b` compares (test/support/parity.ts).
  for (const { name, code, inputs, formats } of parityBlocks()) {
    for (const format of formats) {
      test(`${name} (${format})`, async () => {
        const answers = []
        for (const backend of ['local', 'e2b']) {
          const response = await app.request(
            '/v1/run',
            runRequest(
              { code: { run_function_code: code }, inputs, backend, workspace: 'parity' },
              format,
            ),
          )
          answers.push({ status: response.status, answer: comparable(await readAnswer(response)) })
        }
        expect(answers[1]).toEqual(answers[0]!)
      }, 30_000)
    }
  }
})

describe('settings that reach the e2b backend', () => {
  /** The e2b pool the server would build from this environment. */
  async function withServerPool<T>(
    env: Record<string, string>,
    body: (pool: E2BPool) => Promise<T>,
  ): Promise<T> {
    const config = loadConfig({ ...standinEnv(standin), ...env })
    const pool = createBackends(config).e2b as E2BPool
    await pool.start()
    try {
      return await body(pool)
    } finally {
      await pool.stop()
    }
  }

  // The runtime server in a sandbox was started by the template, not by blockgate: the
  // deployment's BLOCKGATE_BLOCK_CACHE_SIZE travels with the blocks it is sent.
  for (const [cacheSize, reloaded] of [
    [2, true],
    [64, false],
  ] as const) {
    test(`with BLOCKGATE_BLOCK_CACHE_SIZE=${cacheSize}, the first of three blocks is ${reloaded ? 'evicted and loaded again' : 'still loaded'}`, async () => {
      await withServerPool({ BLOCKGATE_BLOCK_CACHE_SIZE: String(cacheSize) }, async (pool) => {
        const blocks = ['a', 'b', 'c'].map(
          (name) => `def run(self):\n    return {"block": "${name}"}\n`,
        )
        for (const code of blocks)
          expect(outputsOf(await pool.run(job(code, {}, 'cache')))).toEqual({
            block: expect.any(String),
          })
        const again = await pool.run(job(blocks[0]!, {}, 'cache'))
        expect(outputsOf(again)).toEqual({ block: 'a' })
        expect(again.coldStart).toBe(reloaded)
      })
    }, 60_000)
  }

  // As the cache size: the sandbox's runtime learns the deployment's bound on captured output.
  for (const [maxCapture, kept] of [
    ['100', false],
    ['1048576', true],
  ] as const) {
    test(`with BLOCKGATE_MAX_CAPTURE_BYTES=${maxCapture}, 5,000 printed characters are ${kept ? 'all kept' : 'cut'}`, async () => {
      await withServerPool({ BLOCKGATE_MAX_CAPTURE_BYTES: maxCapture }, async (pool) => {
        const outcome = await pool.run(
          job('def run(self):\n    print("x" * 5000)\n    return {}\n', {}, 'capture'),
        )
        const printed = outcome.stdout.split('x').length - 1
        if (kept) expect(printed).toBe(5000)
        else expect(printed).toBeLessThanOrEqual(100)
      })
    }, 60_000)
  }

  // The queue for sandboxes is bounded by its own setting, not by the local workers' queue.
  test('BLOCKGATE_E2B_MAX_QUEUE bounds the runs waiting for a sandbox; BLOCKGATE_MAX_QUEUE does not', async () => {
    const sleep = 'import time\ndef run(self):\n    time.sleep(0.3)\n    return {"slept": True}\n'
    const env = {
      BLOCKGATE_MAX_QUEUE: '1',
      BLOCKGATE_E2B_MAX_QUEUE: '2',
      BLOCKGATE_E2B_MAX_SANDBOXES: '1',
    }
    expect(loadConfig({ ...env, E2B_API_KEY: 'k' }).e2b).toMatchObject({
      maxQueue: 2,
      tenantMaxQueue: 1,
    })
    await withServerPool(env, async (pool) => {
      // Four workspaces (four tenants), one sandbox: one runs, two wait their turn, the fourth finds the queue full.
      const settled = await Promise.allSettled(
        [1, 2, 3, 4].map((n) => pool.run(job(sleep, {}, `queue-${n}`))),
      )
      expect(settled.filter((s) => s.status === 'fulfilled').length).toBe(3)
      const refused = settled.find((s) => s.status === 'rejected') as PromiseRejectedResult
      expect(refused.reason.status).toBe(429)
      expect(refused.reason.message).toContain('2 runs are waiting')
    })
  }, 60_000)
})
