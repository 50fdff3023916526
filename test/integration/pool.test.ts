// The pool's policy against real sandboxed workers: recycling, a bounded queue, cancelled
// runs, and draining on SIGTERM.
import { describe, expect, test } from 'bun:test'
import { resolve } from 'node:path'
import { createApp } from '../../src/app.ts'
import { checkedApp } from '../support/contract.ts'
import { loadConfig, PROJECT_ROOT } from '../../src/config.ts'
import type { LocalPool } from '../../src/backends/local/pool.ts'
import { createBackends } from '../../src/backends/index.ts'
import { readAnswer, runRequest, SUM_BLOCK } from '../support/http.ts'
import { followLog } from '../support/server-process.ts'

const MARKER =
  'import builtins, uuid\ndef run(self):\n    return {"process": builtins.__dict__.setdefault("_blockgate_test_marker", str(uuid.uuid4()))}\n'
const SLEEP = 'import time\ndef run(self, s):\n    time.sleep(s)\n    return {"slept": s}\n'

async function withPool(
  env: Record<string, string>,
  body: (
    run: (
      code: string,
      extra?: Record<string, unknown>,
      init?: RequestInit,
    ) => Promise<{ status: number; answer: any; headers: Headers }>,
    pool: LocalPool,
  ) => Promise<void>,
) {
  const config = loadConfig({ BLOCKGATE_MIN_WARM_WORKERS: '1', ...env })
  const backends = createBackends(config)
  const pool = backends.local as LocalPool
  await pool.start()
  const app = checkedApp(createApp({ config, backends }))
  const run = async (code: string, extra: Record<string, unknown> = {}, init: RequestInit = {}) => {
    const response = await app.request('/v1/run', {
      ...runRequest({ code: { run_function_code: code }, ...extra }, 'json'),
      ...init,
    })
    return {
      status: response.status,
      answer: await readAnswer(response),
      headers: response.headers,
    }
  }
  try {
    await body(run, pool)
  } finally {
    await pool.stop()
  }
}

describe('pool policy', () => {
  test('a worker is recycled after its quota of runs', async () => {
    await withPool({ BLOCKGATE_MAX_WORKERS: '2', BLOCKGATE_WORKER_MAX_RUNS: '2' }, async (run) => {
      const first = (await run(MARKER)).answer.outputs.process
      const second = (await run(MARKER)).answer.outputs.process
      const third = (await run(MARKER)).answer.outputs.process
      expect(second).toBe(first)
      expect(third).not.toBe(first)
    })
  }, 30_000)

  test('a full queue is a 429 with Retry-After; a long wait is a 503', async () => {
    await withPool(
      { BLOCKGATE_MAX_WORKERS: '1', BLOCKGATE_MAX_QUEUE: '1', BLOCKGATE_QUEUE_TIMEOUT_MS: '400' },
      async (run) => {
        const busy = run(SLEEP, { inputs: { s: 1.5 } })
        await Bun.sleep(200)
        const queued = run(SUM_BLOCK, { inputs: { a: 1, b: 1 } })
        await Bun.sleep(50)
        const refused = await run(SUM_BLOCK, { inputs: { a: 1, b: 1 } })
        expect(refused.status).toBe(429)
        expect(refused.headers.get('retry-after')).toBe('1')
        expect(refused.answer.error.type).toBe('Overloaded')
        const waitedTooLong = await queued
        expect(waitedTooLong.status).toBe(503)
        expect(waitedTooLong.answer.error.message).toContain('within 400 ms')
        expect((await busy).status).toBe(200)
        expect((await run(SUM_BLOCK, { inputs: { a: 2, b: 2 } })).answer.outputs).toEqual({
          sum: 4,
        })
      },
    )
  }, 30_000)

  test('a run whose client went away is stopped, and its worker replaced', async () => {
    await withPool({ BLOCKGATE_MAX_WORKERS: '1' }, async (run) => {
      const before = (await run(MARKER)).answer.outputs.process
      const controller = new AbortController()
      const startedAt = performance.now()
      const abandoned = run(SLEEP, { inputs: { s: 20 } }, { signal: controller.signal }).catch(
        () => null,
      )
      await Bun.sleep(300)
      controller.abort()
      await abandoned
      const after = await run(MARKER)
      expect(after.status).toBe(200)
      expect(after.answer.outputs.process).not.toBe(before) // the sleeper's worker was killed
      expect(performance.now() - startedAt).toBeLessThan(5000)
    })
  }, 30_000)
})

test('SIGTERM lets in-flight runs finish, then the server exits', async () => {
  const server = Bun.spawn({
    cmd: [process.execPath, resolve(PROJECT_ROOT, 'src/server.ts')],
    env: {
      ...process.env,
      PORT: '0',
      BLOCKGATE_MIN_WARM_WORKERS: '1',
      BLOCKGATE_MAX_WORKERS: '2',
    },
    stdout: 'pipe',
    stderr: 'pipe',
  })
  try {
    const url = await followLog(server.stderr).url(server.exited)
    for (let i = 0; i < 100; i++) {
      if (
        await fetch(`${url}/readyz`).then(
          (r) => r.ok,
          () => false,
        )
      )
        break
      await Bun.sleep(100)
    }
    const inflight = fetch(
      `${url}/v1/run`,
      runRequest({ code: { run_function_code: SLEEP }, inputs: { s: 1 } }, 'json'),
    )
    await Bun.sleep(300)
    server.kill('SIGTERM')
    const response = await inflight
    expect(response.status).toBe(200)
    expect(((await response.json()) as { outputs: unknown }).outputs).toEqual({ slept: 1 })
    expect(await server.exited).toBe(0)
  } finally {
    server.kill('SIGKILL')
  }
}, 60_000)

describe('without bubblewrap', () => {
  test('the server refuses to start, naming the way out', () => {
    const result = Bun.spawnSync({
      cmd: [process.execPath, resolve(PROJECT_ROOT, 'src/server.ts')],
      env: { ...process.env, PATH: '/nonexistent', BLOCKGATE_ALLOW_UNSANDBOXED: '0' },
      stderr: 'pipe',
    })
    expect(result.exitCode).toBe(2)
    expect(result.stderr.toString()).toContain('bubblewrap (bwrap) is not installed')
    expect(result.stderr.toString()).toContain('BLOCKGATE_ALLOW_UNSANDBOXED=1')
  })

  test('with the explicit opt-out it runs blocks and says isolation is off', async () => {
    await withPool(
      { BLOCKGATE_MAX_WORKERS: '1', BLOCKGATE_ALLOW_UNSANDBOXED: '1' },
      async (run, pool) => {
        expect(String(pool.status().isolation)).toStartWith('OFF')
        expect((await run(SUM_BLOCK, { inputs: { a: 2, b: 3 } })).answer.outputs).toEqual({
          sum: 5,
        })
      },
    )
  }, 30_000)
})
