// Hostile code against the real sandboxed pool: every case must end in a clear error for
// its own run, and the service must go on serving everyone else.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createApp } from '../../src/app.ts'
import { checkedApp } from '../support/contract.ts'
import { loadConfig } from '../../src/config.ts'
import type { LocalPool } from '../../src/backends/local/pool.ts'
import { createBackends } from '../../src/backends/index.ts'
import { readAnswer, runRequest, SUM_BLOCK } from '../support/http.ts'
import { sandboxProcesses, settledProcesses } from '../support/processes.ts'

const CANARY = `blockgate-canary-${crypto.randomUUID()}`
process.env.BLOCKGATE_TEST_CANARY = CANARY // in the server's environment: must not reach a block

const config = loadConfig({
  BLOCKGATE_MIN_WARM_WORKERS: '2',
  BLOCKGATE_MAX_WORKERS: '4',
  BLOCKGATE_MEMORY_LIMIT_BYTES: String(1024 * 1024 * 1024),
  BLOCKGATE_PROCESS_LIMIT: '32',
})
const backends = createBackends(config)
const pool = backends.local as LocalPool
const app = checkedApp(createApp({ config, backends }))

beforeAll(async () => {
  await pool.start()
}, 60_000)
afterAll(async () => {
  await pool.stop()
})

async function run(source: string, extra: Record<string, unknown> = {}) {
  const response = await app.request(
    '/v1/run',
    runRequest({ code: { run_function_code: source }, ...extra }, 'json'),
  )
  return { status: response.status, answer: await readAnswer(response) }
}

async function stillServes(workspace = 'default') {
  const { status, answer } = await run(SUM_BLOCK, { inputs: { a: 1, b: 2 }, workspace })
  expect(status).toBe(200)
  expect(answer.outputs).toEqual({ sum: 3 })
}

/** A value unique to the process that runs the block (kept in the process's builtins). */
const PROCESS_MARKER =
  'import builtins, uuid\ndef run(self):\n    return {"process": builtins.__dict__.setdefault("_blockgate_test_marker", str(uuid.uuid4()))}\n'

describe('hostile blocks', () => {
  test('an infinite loop is a 504 within its timeout, and its worker is replaced', async () => {
    const before = (await run(PROCESS_MARKER, { workspace: 'loop' })).answer.outputs.process
    const startedAt = performance.now()
    const { status, answer } = await run('def run(self):\n    while True:\n        pass\n', {
      timeout_ms: 700,
      workspace: 'loop',
    })
    expect(status).toBe(504)
    expect(answer.error.type).toBe('BlockTimeout')
    expect(performance.now() - startedAt).toBeLessThan(3000)
    const after = (await run(PROCESS_MARKER, { workspace: 'loop' })).answer.outputs.process
    expect(after).not.toBe(before)
    await stillServes('loop')
  })

  test('a memory bomb gets a clear MemoryError', async () => {
    const { status, answer } = await run(
      'def run(self):\n    hog = bytearray(8 * 1024 ** 3)\n    return {}\n',
    )
    expect(status).toBe(422)
    expect(answer.error.message).toStartWith('MemoryError')
    expect(answer.error.line).toBe(2)
    await stillServes()
  })

  test('a fork bomb is contained, and leaves nothing behind', async () => {
    const before = sandboxProcesses()
    const { status } = await run(
      'import os\ndef run(self):\n    while True:\n        try:\n            os.fork()\n        except OSError:\n            pass\n',
      { timeout_ms: 1500, workspace: 'forker' },
    )
    expect([422, 500, 504]).toContain(status)
    await stillServes()
    await stillServes('forker')
    // Up to 32 bomb processes were alive; killing the worker took its whole PID namespace.
    expect(await settledProcesses(before + 4)).toBeLessThanOrEqual(before + 4)
  })

  test('no network connection, loopback included', async () => {
    const { status, answer } = await run(
      'import socket\ndef run(self, port):\n    results = {}\n    for name, attempt in [("server", lambda: socket.create_connection(("127.0.0.1", port), timeout=1)), ("dns", lambda: socket.getaddrinfo("example.com", 80)), ("listen", lambda: socket.socket().bind(("127.0.0.1", 0)))]:\n        try:\n            attempt()\n            results[name] = "connected"\n        except Exception as e:\n            results[name] = type(e).__name__\n    return results\n',
      { inputs: { port: 8000 } },
    )
    expect(status).toBe(200)
    for (const outcome of Object.values(answer.outputs)) expect(outcome).not.toBe('connected')
  })

  test("the server's environment and secrets are out of reach", async () => {
    const { answer } = await run(
      `import os, glob\ndef run(self):\n    found = [k for k, v in os.environ.items() if "${CANARY}" in v]\n    for path in glob.glob("/proc/*/environ"):\n        try:\n            if b"${CANARY}" in open(path, "rb").read():\n                found.append(path)\n        except OSError:\n            pass\n    readable = [p for p in ["/etc/shadow", "/root/.bash_history", "/etc/passwd", "${process.cwd()}/package.json"] if os.path.exists(p)]\n    return {"found": found, "readable": readable, "uid": os.getuid(), "env": sorted(os.environ)}\n`,
    )
    expect(answer.outputs.found).toEqual([])
    expect(answer.outputs.readable).toEqual([])
    expect(answer.outputs.uid).not.toBe(0)
    expect(answer.outputs.env.join(' ')).not.toMatch(/KEY|TOKEN|SECRET|E2B/)
  })

  test('50 MB of output is capped and the server is fine', async () => {
    const { status, answer } = await run(
      'import os, sys\ndef run(self):\n    for _ in range(50):\n        print("x" * (1024 * 1024))\n    os.write(2, b"y" * (50 * 1024 * 1024))\n    return {"done": True}\n',
    )
    expect(status).toBe(200)
    expect(answer.stdout.length).toBeLessThan(1_100_000)
    expect(answer.stdout).toContain('[blockgate: output truncated')
    await stillServes()
  })

  test('os._exit is a 500 naming the exit, and the next run succeeds', async () => {
    const { status, answer } = await run('import os\ndef run(self):\n    os._exit(3)\n')
    expect(status).toBe(500)
    expect(answer.error.type).toBe('WorkerCrashed')
    expect(answer.error.message).toContain('exited with code 3')
    await stillServes()
  })

  test('a segfault through ctypes is a 500 naming SIGSEGV, and the next run succeeds', async () => {
    const { status, answer } = await run('import ctypes\ndef run(self):\n    ctypes.string_at(0)\n')
    expect(status).toBe(500)
    expect(answer.error.message).toContain('SIGSEGV')
    await stillServes()
  })
})

describe('tenancy', () => {
  test('two workspaces never share a process', async () => {
    const seen = new Map<string, string>()
    for (let round = 0; round < 3; round++) {
      for (const workspace of ['tenant-a', 'tenant-b', 'tenant-c']) {
        const { answer } = await run(PROCESS_MARKER, { workspace })
        const owner = seen.get(answer.outputs.process)
        expect(owner ?? workspace).toBe(workspace)
        seen.set(answer.outputs.process, workspace)
      }
    }
    for (const worker of pool.workers())
      expect(worker.workspace === null || typeof worker.workspace === 'string').toBe(true)
  })

  test('one workspace poisoning modules and builtins is invisible to another', async () => {
    await run(
      'import builtins, numpy\ndef run(self):\n    numpy.pi = 3\n    builtins.len = lambda x: -1\n    return {}\n',
      { workspace: 'poisoner' },
    )
    const { answer } = await run(
      'import numpy\ndef run(self):\n    return {"pi": numpy.pi, "len": len([1, 2])}\n',
      { workspace: 'victim' },
    )
    expect(answer.outputs).toEqual({ pi: Math.PI, len: 2 })
  })
})
