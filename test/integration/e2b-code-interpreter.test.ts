// Code-interpreter mode on E2B's stock template as it is (issue 16, row 1). The stand-in's
// code-interpreter-v1 kernel runs on a copy of the stock environment (template/setup.sh builds
// it from template/code-interpreter/stock-requirements.txt: numpy, opencv-python, … and no
// supervision, shapely or cbor2), inside a sandbox with no network, and blockgate creates its
// sandboxes with internet denied, as it does on E2B by default. So every create must install
// what the template lacks from the wheelhouse, offline: `pip install` from PyPI cannot work.
import { Sandbox as CodeSandbox } from '@e2b/code-interpreter'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import type { RunJob } from '../../src/backends/backend.ts'
import { outputsOf, runJob } from '../support/run-job.ts'
import { EdgeBusy } from '../../src/backends/e2b/edge.ts'
import { E2BPool } from '../../src/backends/e2b/pool.ts'
import { blockPackages, InterpreterRuntime } from '../../src/backends/e2b/runtime-interpreter.ts'
import { startStandin, type Standin } from '../standin/e2b/index.ts'
import { standinE2BConfig } from '../support/e2b-config.ts'

const ROOT = resolve(import.meta.dir, '../..')

let standin: Standin
let connection: { apiKey: string; apiUrl: string; sandboxUrl: string }

beforeAll(async () => {
  standin = await startStandin()
  connection = { apiKey: standin.apiKey, apiUrl: standin.apiUrl, sandboxUrl: standin.sandboxUrl }
}, 60_000)
afterAll(async () => {
  await standin?.stop()
})

/** `name==version` pins of a requirements file, by lower-case name. */
function pins(path: string): Record<string, string> {
  const found: Record<string, string> = {}
  for (const line of readFileSync(resolve(ROOT, path), 'utf8').split('\n')) {
    const match = line.match(/^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)/)
    if (match?.[1] && match[2]) found[match[1].toLowerCase()] = match[2]
  }
  return found
}

const own = pins('template/requirements.txt')
const stock = pins('template/code-interpreter/stock-requirements.txt')
/** The stock environment's own msgpack (a dependency of its packages, not pinned by name). */
const stockMsgpack = spawnSync(
  resolve(ROOT, '.venv-code-interpreter/bin/python'),
  ['-c', 'import importlib.metadata as m; print(m.version("msgpack"))'],
  { encoding: 'utf8' },
).stdout.trim()
const wheelhouse = pins('template/code-interpreter/wheelhouse.txt')

/** A block that reports what it sees: the standard imports are in its scope. */
const VERSIONS_BLOCK = `def run(self):
    import platform
    import cbor2
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cv2": cv2.__version__,
        "supervision": sv.__version__,
        "shapely": shapely.__version__,
        "cbor2": cbor2.__version__ if hasattr(cbor2, "__version__") else "?",
        "requests": requests.__version__,
        "area": shapely.geometry.box(0, 0, 2, 3).area,
        "detections": len(sv.Detections(xyxy=np.array([[0.0, 0.0, 4.0, 4.0]]))),
    }
`

const job = (run_function_code: string, timeoutMs = 30_000): RunJob =>
  runJob(run_function_code, { timeoutMs })

describe("code-interpreter mode on E2B's stock template, with no internet", () => {
  test("the stand-in's code-interpreter-v1 is the stock environment, with no network", async () => {
    const sandbox = await CodeSandbox.create({ ...connection })
    try {
      const execution = await sandbox.runCode(
        [
          'import importlib.util, json, socket, sys, numpy, cv2, requests',
          'print(json.dumps({',
          '  "python": "%d.%d" % sys.version_info[:2],',
          '  "absent": [m for m in ("supervision", "shapely", "cbor2", "runtime", "serializers")',
          '             if importlib.util.find_spec(m) is None],',
          '  "numpy": numpy.__version__, "requests": requests.__version__,',
          '  "interfaces": [name for _, name in socket.if_nameindex()],',
          '}))',
        ].join('\n'),
      )
      expect(execution.error).toBeUndefined()
      const seen = JSON.parse(execution.logs.stdout.join(''))
      expect(seen).toEqual({
        python: '3.13',
        absent: ['supervision', 'shapely', 'cbor2', 'runtime', 'serializers'],
        numpy: stock.numpy,
        requests: stock.requests,
        interfaces: ['lo'], // nothing to reach PyPI through
      })
    } finally {
      await sandbox.kill()
    }
  }, 60_000)

  test('a create installs what the template lacks from the wheelhouse, offline; blocks see the template’s own numpy, opencv and requests', async () => {
    const config = standinE2BConfig(
      standin,
      { BLOCKGATE_E2B_MODE: 'code-interpreter', BLOCKGATE_E2B_MAX_SANDBOXES: '2' },
      {},
    )
    expect(config.templateId).toBe('code-interpreter-v1')
    expect(config.allowInternet).toBe(false) // the default
    const pool = new E2BPool(config, { maxFrameBytes: 64 << 20, queueTimeoutMs: 60_000 })
    await pool.start()
    try {
      const first = await pool.run(job(VERSIONS_BLOCK))
      expect(first.coldStart).toBe(true)
      const create = standin.calls.creates.at(-1) as Record<string, unknown>
      expect(create.templateID).toBe('code-interpreter-v1')
      expect(create.allow_internet_access).toBe(false)
      const seen = outputsOf(first)
      expect(seen).toMatchObject({
        numpy: stock.numpy, // the template's, not blockgate's pin
        cv2: stock['opencv-python']?.split('.').slice(0, 3).join('.'),
        requests: stock.requests,
        supervision: own.supervision, // blockgate's pins, from the wheelhouse
        shapely: own.shapely,
        area: 6,
        detections: 1,
      })
      expect(seen.numpy).not.toBe(own.numpy)
      // Warm: nothing is uploaded or installed again.
      const second = await pool.run(job(VERSIONS_BLOCK))
      expect(second.coldStart).toBe(false)
      expect(outputsOf(second)).toEqual(seen)

      // What /readyz tells: the versions the sandbox reported after prepare().
      const reported = blockPackages('code-interpreter')
      expect(reported).toEqual({
        mode: 'code-interpreter',
        source: 'sandbox',
        python: seen.python as string,
        packages: {
          cbor2: own.cbor2 as string,
          msgpack: stockMsgpack, // the template has it: not installed, a block gets its own
          numpy: stock.numpy as string,
          'opencv-python': stock['opencv-python'] as string,
          requests: stock.requests as string,
          shapely: own.shapely as string,
          supervision: own.supervision as string,
        },
        installed: ['supervision', 'shapely', 'cbor2'],
      })
    } finally {
      await pool.stop()
    }
  }, 120_000)

  test('the wheelhouse pins blockgate’s own versions of what it installs; template mode sees the pins', () => {
    for (const name of ['supervision', 'shapely', 'cbor2']) expect(wheelhouse[name]).toBe(own[name])
    for (const name of ['numpy', 'opencv-python-headless', 'requests'])
      expect(wheelhouse[name]).toBeUndefined() // the template has them: a block gets its own
    const template = blockPackages('template')
    expect(template.source).toBe('pinned')
    expect(template.packages).toEqual({
      cbor2: own.cbor2 as string,
      msgpack: own.msgpack as string,
      numpy: own.numpy as string,
      'opencv-python-headless': own['opencv-python-headless'] as string,
      requests: own.requests as string,
      shapely: own.shapely as string,
      supervision: own.supervision as string,
    })
  })

  test('prepare() on a fresh stock sandbox: upload and install, measured', async () => {
    const sandbox = await CodeSandbox.create({ ...connection })
    try {
      const runtime = new InterpreterRuntime(sandbox, 64 << 20)
      await runtime.prepare(60_000)
      const timings = runtime.timings
      expect(timings).not.toBeNull()
      expect(timings?.wheelBytes).toBeGreaterThan(0)
      expect(runtime.packages?.installed).toEqual(['supervision', 'shapely', 'cbor2'])
      console.log(
        `prepare() on the stand-in: ${JSON.stringify(
          Object.fromEntries(
            Object.entries(timings ?? {}).map(([key, value]) => [key, Math.round(value)]),
          ),
        )}`,
      )
    } finally {
      await sandbox.kill()
    }
  }, 120_000)
})

describe("code-interpreter mode: the edge's own answers (row 4), on envd and the code interpreter", () => {
  test('409 and 429 are waited out on the same sandbox; 429 past the budget is a 503 that keeps it; 403 retires it', async () => {
    const config = standinE2BConfig(
      standin,
      { BLOCKGATE_E2B_MODE: 'code-interpreter', BLOCKGATE_E2B_MAX_SANDBOXES: '2' },
      {},
    )
    const pool = new E2BPool(config, { maxFrameBytes: 64 << 20, queueTimeoutMs: 60_000 })
    await pool.start()
    const SUM = 'def run(self, a, b):\n    return {"sum": a + b}\n'
    const sumJob = (a: number, b: number, timeoutMs = 30_000) =>
      runJob(SUM, { inputs: { a, b }, timeoutMs })
    const kills = () => standin.calls.of('DELETE /sandboxes/:id')
    try {
      expect(outputsOf(await pool.run(sumJob(1, 1))).sum).toBe(2)
      const [warm] = pool.sandboxes()
      const id = warm!.id
      const killsBefore = kills()

      // The file upload (envd) and the run (code interpreter) each meet the edge's refusals.
      standin.faults.edgeAnswers = [
        { status: 409, times: 1, sandboxId: id, port: 49983 },
        { status: 429, times: 2, sandboxId: id, port: 49999, reason: 'connections' },
        { status: 429, times: 1, sandboxId: id, port: 49983, reason: 'ip-throttle' },
      ]
      const waited = await pool.run(sumJob(2, 3))
      expect(outputsOf(waited).sum).toBe(5)
      expect(waited.coldStart).toBe(false)
      expect(standin.faults.edgeAnswers).toEqual([]) // every one was answered, and waited out
      expect(pool.sandboxes().map((s) => s.id)).toEqual([id])

      standin.faults.edgeAnswers = [{ status: 429, times: 10_000, sandboxId: id }]
      const started = performance.now()
      const busy = await pool.run(sumJob(1, 2, 2500)).catch((e) => e)
      expect(busy).toBeInstanceOf(EdgeBusy)
      expect(busy.status).toBe(503)
      expect(Number(busy.headers['Retry-After'])).toBeGreaterThanOrEqual(1)
      expect(performance.now() - started).toBeLessThan(2500)
      standin.faults.edgeAnswers = []
      const after = await pool.run(sumJob(2, 2))
      expect(outputsOf(after).sum).toBe(4)
      expect(after.coldStart).toBe(false)
      expect(pool.sandboxes().map((s) => s.id)).toEqual([id])
      expect(kills()).toBe(killsBefore)

      standin.faults.edgeAnswers = [{ status: 403, times: 10_000, sandboxId: id }]
      const moved = await pool.run(sumJob(7, 8))
      expect(outputsOf(moved).sum).toBe(15)
      expect(pool.sandboxes().map((s) => s.id)).not.toContain(id)
      for (let i = 0; i < 100 && standin.alive().some((s) => s.sandboxId === id); i++)
        await Bun.sleep(50)
      expect(standin.alive().some((s) => s.sandboxId === id)).toBe(false)
    } finally {
      standin.faults.edgeAnswers = []
      await pool.stop()
    }
  }, 120_000)
})
