// `npm run test:inference`: the real Roboflow Inference client against a running blockgate.
// Installs the pinned `inference-core` into a venv outside the repository (once; ~2.5 min and
// ~7 GB, torch included), starts blockgate on a free port on 127.0.0.1 with webexec keys, and
// runs test/inference/test_inference.py with Inference's own remote-execution settings
// pointing at it. `-- --record` also saves what the client sent, and what blockgate answered,
// as test/fixtures/webexec/*.json: test/integration/webexec.test.ts replays them in `npm test`.
import { createHash } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { createApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { createBackends } from '../../src/backends/index.ts'

const INFERENCE = 'inference-core==1.8.3'
const PYTEST = 'pytest==9.2.0'
const root = resolve(import.meta.dir, '../..')
const venv = join(
  process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'),
  'blockgate',
  'inference-venv',
)
const python = join(venv, 'bin', 'python')
const fixtures = join(root, 'test/fixtures/webexec')
const record = process.argv.includes('--record')
// What Inference sends as Modal-Key/Modal-Secret: an API key's id and the key. blockgate is
// configured with only this key, for the workspace Inference names when it has no Roboflow key.
const KEY = 'inference-proof-key'
const SECRET = 'inference-proof-secret'

function sh(cmd: string[]): number {
  console.log(`$ ${cmd.join(' ')}`)
  return spawnSync(cmd[0]!, cmd.slice(1), { stdio: 'inherit' }).status ?? 1
}

function installedVersion(): string | null {
  if (!existsSync(python)) return null
  const result = spawnSync(
    python,
    ['-c', 'import importlib.metadata as m; print(m.version("inference-core"))'],
    { encoding: 'utf8' },
  )
  return result.status === 0 ? result.stdout.trim() : null
}

const seconds = (since: number) => `${((performance.now() - since) / 1000).toFixed(1)} s`

// 1. The venv, kept between runs.
if (installedVersion() !== INFERENCE.split('==')[1]) {
  const startedAt = performance.now()
  rmSync(venv, { recursive: true, force: true })
  mkdirSync(resolve(venv, '..'), { recursive: true })
  if (
    sh(['python3', '-m', 'venv', venv]) !== 0 ||
    sh([python, '-m', 'pip', 'install', '-q', '--upgrade', 'pip']) !== 0 ||
    sh([python, '-m', 'pip', 'install', '-q', INFERENCE, PYTEST]) !== 0
  ) {
    console.error(`could not install ${INFERENCE} into ${venv}`)
    process.exit(1)
  }
  console.log(`installed ${INFERENCE} into ${venv} in ${seconds(startedAt)}`)
} else {
  console.log(`using ${INFERENCE} from ${venv}`)
}

// 2. blockgate, in this process, on a free port.
const apiKeys = {
  keys: [
    {
      id: KEY,
      sha256: createHash('sha256').update(SECRET).digest('hex'),
      workspaces: ['anonymous'],
    },
  ],
}
const config = loadConfig({
  ...process.env,
  BLOCKGATE_API_KEYS: JSON.stringify(apiKeys),
  BLOCKGATE_MIN_WARM_WORKERS: '1',
})
const backends = createBackends(config)
await Promise.all(Object.values(backends).map((backend) => backend.start()))
let app = createApp({ config, backends })
let restarted = false

interface Exchange {
  request: { workspace_id: string | null; headers: Record<string, string | null>; body: unknown }
  response: { status: number; body: unknown }
}
const exchanges: Exchange[] = []

const server = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  maxRequestBodySize: config.limits.maxBodyBytes + 1024 * 1024,
  async fetch(request) {
    const bytes = new Uint8Array(await request.arrayBuffer())
    const gzipped = request.headers.get('content-encoding') === 'gzip'
    const body = JSON.parse(
      (gzipped ? gunzipSync(bytes) : Buffer.from(bytes)).toString('utf8'),
    ) as { workflow_context?: { step_name?: string } }
    // A blockgate restart, for the one test that needs it: the first request of the step
    // `after_restart` meets a new app (same workers, no code remembered), so Inference's
    // hash-only request is answered UnknownCodeHash and the client must send the code again.
    if (body.workflow_context?.step_name === 'after_restart' && !restarted) {
      restarted = true
      app = createApp({ config, backends })
    }
    const response = await app.fetch(
      new Request(request.url, { method: request.method, headers: request.headers, body: bytes }),
    )
    const text = await response.text()
    exchanges.push({
      request: {
        workspace_id: new URL(request.url).searchParams.get('workspace_id'),
        headers: Object.fromEntries(
          ['content-type', 'content-encoding', 'modal-key'].map((name) => [
            name,
            request.headers.get(name),
          ]),
        ),
        body,
      },
      response: { status: response.status, body: JSON.parse(text) },
    })
    return new Response(text, { status: response.status, headers: response.headers })
  },
})
const endpoint = `http://127.0.0.1:${server.port}/webexec`
console.log(`blockgate listening; MODAL_WEB_ENDPOINT_URL=${endpoint}`)

// 3. Inference's own execution engine, told to run custom Python blocks remotely: here.
const startedAt = performance.now()
// Spawned asynchronously: this process serves blockgate to it meanwhile.
const pytest = Bun.spawn(
  [
    python,
    '-m',
    'pytest',
    '-v',
    '-p',
    'no:cacheprovider',
    '-W',
    'ignore',
    '-rP',
    join(root, 'test/inference/test_inference.py'),
  ],
  {
    stdio: ['inherit', 'inherit', 'inherit'],
    cwd: join(root, 'test/inference'),
    env: {
      ...process.env,
      WORKFLOWS_CUSTOM_PYTHON_EXECUTION_MODE: 'modal',
      MODAL_TOKEN_ID: KEY,
      MODAL_TOKEN_SECRET: SECRET,
      MODAL_WEB_ENDPOINT_URL: endpoint,
      // Without a Roboflow API key Inference calls the workspace "anonymous" and refuses
      // remote execution for it unless told otherwise.
      MODAL_ALLOW_ANONYMOUS_EXECUTION: 'True',
    },
  },
)
const status = await pytest.exited
console.log(`Inference workflows through blockgate: ${seconds(startedAt)}`)

server.stop(true)
await Promise.all(Object.values(backends).map((backend) => backend.stop()))

if (record && status === 0) {
  mkdirSync(fixtures, { recursive: true })
  for (const old of readdirSync(fixtures)) if (old.endsWith('.json')) rmSync(join(fixtures, old))
  exchanges.forEach((exchange, i) => {
    const body = exchange.request.body as {
      run_function_name?: string
      workflow_context?: { step_name?: string }
    }
    const name = body.workflow_context?.step_name ?? body.run_function_name ?? 'request'
    // Timings and ids differ per run; the contract is the rest.
    const {
      blockgate: _,
      execution_time_seconds: __,
      ...answer
    } = exchange.response.body as Record<string, unknown>
    const file = join(fixtures, `${String(i + 1).padStart(2, '0')}-${name}.json`)
    writeFileSync(
      file,
      `${JSON.stringify({ ...exchange, response: { ...exchange.response, body: answer } }, null, 2)}\n`,
    )
  })
  console.log(`recorded ${exchanges.length} requests into ${fixtures}`)
}
process.exit(status)
