// Who may run code: API keys bound to workspaces, quotas per key, the audit trail, keys kept
// out of logs, traces and error bodies, and the loopback-only default without keys.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { context, propagation, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace'
import { createHash } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { networkInterfaces, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createApp } from '../../src/app.ts'
import { checkedApp } from '../support/contract.ts'
import { AuditLog } from '../../src/auth/audit.ts'
import { ConfigError, loadConfig, PROJECT_ROOT } from '../../src/config.ts'
import { createBackends } from '../../src/backends/index.ts'
import type { LocalPool } from '../../src/backends/local/pool.ts'
import { readAnswer, runRequest, SUM_BLOCK } from '../support/http.ts'
import { followLog } from '../support/server-process.ts'

const KEY_A = 'bg_key-for-acme-0123456789abcdef'
const KEY_B = 'bg_key-for-beta-fedcba9876543210'
const KEY_SLOW = 'bg_key-with-tight-limits-000000'
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex')
const keyFile = {
  keys: [
    { id: 'acme-ci', sha256: sha256(KEY_A), workspaces: ['acme', 'acme-staging'] },
    { id: 'beta-app', sha256: sha256(KEY_B), workspaces: ['beta'] },
    {
      id: 'tight',
      sha256: sha256(KEY_SLOW),
      workspaces: ['tight'],
      limits: {
        requests_per_second: 2,
        burst: 2,
        concurrent_runs: 1,
        max_timeout_ms: 400,
        max_body_bytes: 2048,
      },
    },
  ],
}
const dir = mkdtempSync(join(tmpdir(), 'blockgate-keys-'))
const keysPath = join(dir, 'keys.json')
writeFileSync(keysPath, JSON.stringify(keyFile))

const config = loadConfig({
  BLOCKGATE_API_KEYS_FILE: keysPath,
  BLOCKGATE_MIN_WARM_WORKERS: '1',
  BLOCKGATE_MAX_WORKERS: '4',
})
const backends = createBackends(config)
const audited: object[] = []
const audit = new AuditLog((entry) => audited.push(entry))
const app = checkedApp(createApp({ config, backends, audit }))
const pool = backends.local as LocalPool

const exporter = new InMemorySpanExporter()
const logged: string[] = []
const writeStderr = process.stderr.write.bind(process.stderr)

beforeAll(async () => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  trace.setGlobalTracerProvider(
    new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] }),
  )
  // Everything written to the log is kept, to look for keys in it.
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
    logged.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString())
    return writeStderr(chunk, ...rest)
  }) as typeof process.stderr.write
  await pool.start()
}, 60_000)

afterAll(async () => {
  process.stderr.write = writeStderr
  trace.disable()
  propagation.disable()
  context.disable()
  await pool.stop()
})

// A token per worker process (pids repeat: each worker has a PID namespace of its own).
const PROCESS_BLOCK =
  'import builtins, uuid\ndef run(self):\n    return {"process": builtins.__dict__.setdefault("_probe_token", uuid.uuid4().hex)}\n'

async function run(
  key: string | null,
  body: Record<string, unknown> = {},
  headers: Record<string, string> = {},
  on = app,
) {
  const auth: Record<string, string> = key === null ? {} : { authorization: `Bearer ${key}` }
  const response = await on.request(
    '/v1/run',
    runRequest(
      { code: { run_function_code: SUM_BLOCK }, inputs: { a: 1, b: 2 }, ...body },
      'json',
      { ...auth, ...headers },
    ),
  )
  return {
    status: response.status,
    headers: response.headers,
    text: await response.clone().text(),
    answer: await readAnswer(response),
  }
}

describe('API keys bound to workspaces', () => {
  test('no key, a wrong key and a malformed header are all the same 401, naming no part', async () => {
    const answers = [
      await run(null),
      await run('bg_not-a-key'),
      await run(null, {}, { authorization: `Basic ${KEY_A}` }),
    ]
    for (const { status, headers, answer } of answers) {
      expect(status).toBe(401)
      expect(headers.get('www-authenticate')).toStartWith('Bearer')
      expect(answer.error).toEqual({
        type: 'Unauthorized',
        message: 'missing or invalid API key (Authorization: Bearer)',
      })
    }
  })

  test('each key runs in its own workspaces; naming another is a 403; no workspace means the key’s first', async () => {
    expect((await run(KEY_A, { workspace: 'acme' })).status).toBe(200)
    expect((await run(KEY_A, { workspace: 'acme-staging' })).status).toBe(200)
    const cross = await run(KEY_A, { workspace: 'beta' })
    expect(cross.status).toBe(403)
    expect(cross.answer.error.type).toBe('Forbidden')
    expect((await run(KEY_B, { workspace: 'acme' })).status).toBe(403)
    audited.length = 0
    expect((await run(KEY_B)).status).toBe(200)
    await Bun.sleep(10) // the audit line is written on the next turn
    expect(audited.at(-1)).toMatchObject({
      workspace: 'beta',
      key_id: 'beta-app',
      outcome: 'ok',
      backend: 'local',
      route: '/v1/run',
    })
  })

  test('two keys never share a worker', async () => {
    const processes = { acme: new Set<string>(), beta: new Set<string>() }
    for (let i = 0; i < 3; i++) {
      processes.acme.add(
        (await run(KEY_A, { code: { run_function_code: PROCESS_BLOCK }, inputs: {} })).answer
          .outputs.process,
      )
      processes.beta.add(
        (await run(KEY_B, { code: { run_function_code: PROCESS_BLOCK }, inputs: {} })).answer
          .outputs.process,
      )
    }
    expect(processes.acme.size).toBeGreaterThan(0)
    for (const token of processes.acme) expect(processes.beta.has(token)).toBe(false)
    for (const worker of pool.workers())
      expect([null, 'acme', 'acme-staging', 'beta', 'tight']).toContain(worker.workspace)
  })
})

describe('quotas per key', () => {
  test('a burst past the rate gets 429 with Retry-After; other keys are unaffected; it recovers', async () => {
    await Bun.sleep(1100) // a full bucket
    const answers = []
    for (let i = 0; i < 3; i++) answers.push(await run(KEY_SLOW))
    expect(answers.map((a) => a.status)).toEqual([200, 200, 429])
    expect(answers[2]!.answer.error.type).toBe('Overloaded')
    expect(Number(answers[2]!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
    expect((await run(KEY_A)).status).toBe(200)
    await Bun.sleep(600) // 2 per second: one token back
    expect((await run(KEY_SLOW)).status).toBe(200)
  })

  test('runs in flight past the key’s limit get 429', async () => {
    await Bun.sleep(1100)
    const sleepy = {
      code: {
        run_function_code: 'import time\ndef run(self):\n    time.sleep(0.3)\n    return {}\n',
      },
      inputs: {},
    }
    const [first, second] = await Promise.all([
      run(KEY_SLOW, sleepy),
      Bun.sleep(50).then(() => run(KEY_SLOW, sleepy)),
    ])
    expect(first.status).toBe(200)
    expect(second.status).toBe(429)
    expect(second.answer.error.message).toContain('1 runs are already in flight')
  })

  test("the key's timeout cap and body cap apply", async () => {
    await Bun.sleep(1100)
    const loop = await run(KEY_SLOW, {
      code: { run_function_code: 'def run(self):\n    while True:\n        pass\n' },
      inputs: {},
      timeout_ms: 30_000,
    })
    expect(loop.status).toBe(504)
    expect(loop.answer.error.message).toContain('timeout_ms=400')
    const big = await run(KEY_SLOW, { inputs: { a: 'x'.repeat(4096), b: '' } })
    expect(big.status).toBe(413)
    expect(big.answer.error.message).toContain('2048-byte limit of the API key "tight"')
  })
})

describe('keys stay secret', () => {
  test('no key (nor a wrong one) appears in logs, traces or error bodies; the key id does', async () => {
    exporter.reset()
    const logging = createApp({ config, backends }) // its audit trail goes to the real log
    const wrong = 'bg_a-wrong-key-that-must-not-leak'
    const bodies = [
      (await run(KEY_A, {}, {}, logging)).text,
      (await run(KEY_A, { workspace: 'beta' }, {}, logging)).text,
      (await run(wrong, {}, {}, logging)).text,
      (
        await run(
          KEY_A,
          { code: { run_function_code: 'def run(self):\n    raise ValueError("x")\n' } },
          {},
          logging,
        )
      ).text,
    ]
    await Bun.sleep(10)
    const spans = JSON.stringify(
      exporter.getFinishedSpans().map((s) => ({
        name: s.name,
        attributes: s.attributes,
        events: s.events,
        status: s.status,
      })),
    )
    const log = logged.join('')
    for (const secret of [KEY_A, KEY_B, KEY_SLOW, wrong, sha256(KEY_A)]) {
      for (const [where, text] of [
        ['logs', log],
        ['spans', spans],
        ['bodies', bodies.join('\n')],
      ] as const) {
        expect({ where, leaked: text.includes(secret) }).toEqual({ where, leaked: false })
      }
    }
    expect(log).toContain('"key_id":"acme-ci"')
    expect(spans).toContain('acme-ci')
  })
})

describe('the bind default', () => {
  test('with no keys, a non-loopback HOST stops the start unless opted out; with keys it is allowed', () => {
    expect(() => loadConfig({ HOST: '0.0.0.0' })).toThrow(ConfigError)
    expect(() => loadConfig({ HOST: '0.0.0.0' })).toThrow(
      /HOST=0.0.0.0: with no API keys .* set BLOCKGATE_ALLOW_OPEN_BIND=1/,
    )
    expect(loadConfig({ HOST: '0.0.0.0', BLOCKGATE_ALLOW_OPEN_BIND: '1' }).auth.openBind).toBe(true)
    expect(loadConfig({ HOST: '0.0.0.0', BLOCKGATE_API_KEYS_FILE: keysPath }).auth.keys.size).toBe(
      3,
    )
    expect(loadConfig({}).host).toBe('127.0.0.1')
  })

  test('bad key files stop the start with the variable and the problem named', () => {
    const bad = (keys: unknown) => {
      const path = join(dir, `bad-${Math.random()}.json`)
      writeFileSync(path, typeof keys === 'string' ? keys : JSON.stringify(keys))
      return () => loadConfig({ BLOCKGATE_API_KEYS_FILE: path })
    }
    expect(() => loadConfig({ BLOCKGATE_API_KEYS_FILE: join(dir, 'missing.json') })).toThrow(
      /BLOCKGATE_API_KEYS_FILE=".*missing.json": cannot be read \(ENOENT\)/,
    )
    expect(bad('{not json')).toThrow(/BLOCKGATE_API_KEYS_FILE: not JSON/)
    expect(bad({ keys: [{ id: 'x', sha256: 'abc', workspaces: ['w'] }] })).toThrow(
      /keys.0.sha256: must be the hex sha256 digest of the key/,
    )
    expect(bad({ keys: [{ id: 'x', sha256: sha256('k'), workspaces: [] }] })).toThrow(
      /keys.0.workspaces: must name at least one workspace/,
    )
    expect(
      bad({
        keys: [
          { id: 'x', sha256: sha256('k'), workspaces: ['w'] },
          { id: 'x', sha256: sha256('j'), workspaces: ['w'] },
        ],
      }),
    ).toThrow(/the id "x" is used twice/)
    expect(() =>
      loadConfig({
        BLOCKGATE_API_KEYS: JSON.stringify(keyFile),
        BLOCKGATE_API_KEYS_FILE: keysPath,
      }),
    ).toThrow(/set one of them, not both/)
  })

  test('started with no keys, the service answers on loopback and on no other address', async () => {
    const server = Bun.spawn({
      cmd: [process.execPath, resolve(PROJECT_ROOT, 'src/server.ts')],
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/tmp',
        PORT: '0',
        BLOCKGATE_MIN_WARM_WORKERS: '0',
      },
      stdout: 'pipe',
      stderr: 'pipe',
    })
    const log = followLog(server.stderr)
    try {
      const url = await log.url(server.exited)
      const { port } = new URL(url)
      let up = false
      for (let i = 0; i < 200 && !up; i++) {
        up = await fetch(`${url}/healthz`).then(
          (r) => r.ok,
          () => false,
        )
        if (!up) await Bun.sleep(100)
      }
      expect(up).toBe(true)
      const others = Object.values(networkInterfaces())
        .flat()
        .filter((a) => a && !a.internal && a.family === 'IPv4')
        .map((a) => a!.address)
      for (const address of others) {
        const reached = await fetch(`http://${address}:${port}/healthz`, {
          signal: AbortSignal.timeout(2000),
        }).then(
          () => true,
          () => false,
        )
        expect({ address, reached }).toEqual({ address, reached: false })
      }
    } finally {
      server.kill('SIGTERM')
      await server.exited
    }
    expect(log.text()).toContain('no API keys configured: listening on loopback only')
  }, 30_000)
})
