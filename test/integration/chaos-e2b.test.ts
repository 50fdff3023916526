// The E2B stand-in killed under load (its API and every sandbox with it), then back: the runs
// the outage hits get a clean typed error, never a bare 500 or a hang; runs sent once it is
// back succeed; the server keeps answering throughout. Real processes: the stand-in as
// `npm run standin:e2b` runs it, and the server as users run it.
import { afterAll, expect, test } from 'bun:test'
import { randomBytes } from 'node:crypto'
import { resolve } from 'node:path'
import type { Subprocess } from 'bun'
import { PROJECT_ROOT } from '../../src/config.ts'
import { SUM_BLOCK } from '../support/http.ts'
import { startServer, type ServerProcess } from '../support/server-process.ts'

// Fixed for the test (the stand-in comes back on the same ports), below Linux's ephemeral range
// (32768 and up), where another test's outgoing connection could hold one.
const apiPort = 20000 + Math.floor(Math.random() * 12000)
const sandboxPort = apiPort + 1
const apiKey = `e2b_${randomBytes(16).toString('hex')}`
let standin: Subprocess | null = null
let server: ServerProcess | null = null

async function startStandin(): Promise<Subprocess> {
  const proc = Bun.spawn({
    cmd: [process.execPath, resolve(PROJECT_ROOT, 'test/standin/e2b/main.ts')],
    env: {
      ...process.env,
      STANDIN_API_PORT: String(apiPort),
      STANDIN_SANDBOX_PORT: String(sandboxPort),
      STANDIN_API_KEY: apiKey,
    },
    stdout: 'pipe',
    stderr: 'ignore',
  })
  const reader = proc.stdout.getReader()
  let printed = ''
  while (!printed.includes('E2B_API_KEY=')) {
    const { value, done } = await reader.read()
    if (done) throw new Error(`the stand-in exited: ${printed}`)
    printed += new TextDecoder().decode(value)
  }
  reader.releaseLock()
  return proc
}

afterAll(async () => {
  await server?.stop()
  if (standin && standin.exitCode === null) {
    const contract = await fetch(`http://127.0.0.1:${apiPort}/_standin/contract`)
    expect(((await contract.json()) as { divergences: unknown[] }).divergences).toEqual([])
    standin.kill('SIGTERM')
    // It exits 1 if any call or answer diverged from E2B's published spec (contract.ts).
    expect(await standin.exited).toBe(0)
  }
})

async function run(
  workspace: string,
  code = SUM_BLOCK,
  inputs: Record<string, unknown> = { a: 1, b: 2 },
) {
  const sentAt = performance.now()
  try {
    const response = await fetch(`${server!.url}/v1/run`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ code: { run_function_code: code }, inputs, workspace }),
      signal: AbortSignal.timeout(45_000),
    })
    return { sentAt, status: response.status, answer: (await response.json()) as any }
  } catch (error) {
    return {
      sentAt,
      status: 0,
      answer: { error: { type: 'NoAnswer', message: (error as Error).message } },
    }
  }
}

test('the E2B stand-in killed mid-run: typed errors while it is gone, runs succeed once it is back', async () => {
  standin = await startStandin()
  server = await startServer({
    BLOCKGATE_LOG_LEVEL: 'error',
    WORKFLOWS_CUSTOM_PYTHON_EXECUTION_MODE: 'e2b',
    E2B_API_KEY: apiKey,
    E2B_API_URL: `http://127.0.0.1:${apiPort}`,
    E2B_SANDBOX_URL: `http://127.0.0.1:${sandboxPort}`,
    BLOCKGATE_E2B_CREATES_PER_SECOND: '100',
    BLOCKGATE_E2B_CREATE_RETRIES: '1',
    BLOCKGATE_DEPLOYMENT_ID: `chaos-${process.pid}`,
    BLOCKGATE_MIN_WARM_WORKERS: '0',
  })
  for (const workspace of ['steady-a', 'steady-b']) expect((await run(workspace)).status).toBe(200)

  // Ordinary runs keep coming; one run sleeps in its sandbox when the stand-in dies.
  const results: Awaited<ReturnType<typeof run>>[] = []
  let stopped = false
  const load = ['steady-a', 'steady-b'].map(async (workspace) => {
    while (!stopped) {
      results.push(await run(workspace))
      await Bun.sleep(50)
    }
  })
  const inFlight = run(
    'sleeper',
    'import time\ndef run(self):\n    time.sleep(3)\n    return {}\n',
    {},
  )
  await Bun.sleep(1500)
  standin.kill('SIGKILL')
  await standin.exited
  const hit = await inFlight
  await Bun.sleep(1000)
  expect((await fetch(`${server.url}/healthz`)).status).toBe(200)
  standin = await startStandin()
  const backAt = performance.now()
  // Once it is back, every workspace is served again (its old sandboxes are gone: new ones).
  for (const workspace of ['steady-a', 'steady-b', 'sleeper']) {
    const again = await run(workspace)
    expect(again.status).toBe(200)
    expect(again.answer.outputs).toEqual({ sum: 3 })
  }
  await Bun.sleep(500)
  stopped = true
  await Promise.all(load)

  // The run the outage hit: a typed error naming the failure, not a hang or a bare 500.
  expect([500, 502, 503, 504]).toContain(hit.status)
  expect(hit.answer.error.type).not.toBe('InternalError')
  for (const result of results.filter((r) => r.status !== 200)) {
    expect([500, 502, 503, 504]).toContain(result.status)
    expect(['RemoteBackendFailed', 'Overloaded', 'WorkerCrashed', 'BlockTimeout']).toContain(
      result.answer.error.type,
    )
  }
  // No run sent after the stand-in came back failed.
  expect(results.filter((r) => r.status !== 200 && r.sentAt > backAt + 1000)).toEqual([])
}, 120_000)
