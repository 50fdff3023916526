// `npm run test:inference`: the real Roboflow Inference client against a running blockgate,
// over both of its transports (WEBEXEC_TRANSPORT=http, then websocket).
// Installs the pinned `inference-core` into a venv outside the repository (once; ~2.5 min and
// ~7 GB, torch included), starts blockgate on a free port on 127.0.0.1 with webexec keys, and
// runs, with Inference's own remote-execution settings pointing at it:
//   - test/inference/test_inference.py (ours: every kind, errors, and the websocket's cases);
//   - Roboflow's own test_workflow_with_custom_python_block_modal.py, unchanged, at a pinned
//     commit (downloaded once into the cache; skipped with a line saying so when it cannot be).
// The client talks to a small front here that records what it sent and what blockgate answered
// (HTTP requests, and every websocket frame through a relay), and plays blockgate's restart
// for the steps that need one. `-- --record` saves those as test/fixtures/webexec/*.json and
// test/fixtures/webexec-ws/*.json: test/integration/webexec*.test.ts replay them in `npm test`.
import { createHash } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { gunzipSync } from 'node:zlib'
import type { ServerWebSocket } from 'bun'
import { createApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { createBackends } from '../../src/backends/index.ts'
import { OpenSockets, websocketHandler } from '../../src/http/websocket.ts'
import { readMsgpack } from '../../src/interop/webexec/ws/msgpack-read.ts'

const INFERENCE = 'inference-core==1.8.3'
const PYTEST = 'pytest==9.2.0'
// Roboflow's own test of remote execution, as the issue asks: the file at its last change.
const ROBOFLOW_COMMIT = '82f3a69df14569871598aa2d194028854a54c3aa'
const ROBOFLOW_TEST =
  'tests/workflows/integration_tests/execution/test_workflow_with_custom_python_block_modal.py'
const ROBOFLOW_SHA256 = '13e634c3b2039f2aa3ab2684fde2706e9cb662bb189b91eed7e5c8722bd61508'
const root = resolve(import.meta.dir, '../..')
const cache = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'blockgate')
const venv = join(cache, 'inference-venv')
const python = join(venv, 'bin', 'python')
const record = process.argv.includes('--record')
// `-- --transport=websocket` runs one transport, `-- --ours` only our test file; other
// arguments go to pytest (`-k idle`).
const onlyTransport = process.argv.find((arg) => arg.startsWith('--transport='))?.split('=')[1]
const pytestArgs = process.argv
  .slice(2)
  .filter((arg) => !['--record', '--ours'].includes(arg) && !arg.startsWith('--transport='))
// What Inference sends as Modal-Key/Modal-Secret: an API key's id and the key. blockgate is
// configured with only this key, for the workspace Inference names when it has no Roboflow key.
const KEY = 'inference-proof-key'
const SECRET = 'inference-proof-secret'
// Short, so a test sees heartbeats within seconds (the client sends one every third of it).
const IDLE_TIMEOUT_S = 2

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
const sha256 = (bytes: Uint8Array | string) => createHash('sha256').update(bytes).digest('hex')

// 1. The venv, kept between runs.
if (installedVersion() !== INFERENCE.split('==')[1]) {
  const startedAt = performance.now()
  rmSync(venv, { recursive: true, force: true })
  mkdirSync(cache, { recursive: true })
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

// 2. Roboflow's test file, kept in the cache under its repository's layout (it finds its
// repository root from its own path). Checked by hash whichever way it came.
async function roboflowTest(): Promise<string | null> {
  const path = join(cache, `roboflow-inference-${ROBOFLOW_COMMIT.slice(0, 8)}`, ROBOFLOW_TEST)
  if (!existsSync(path)) {
    const url = `https://raw.githubusercontent.com/roboflow/inference/${ROBOFLOW_COMMIT}/${ROBOFLOW_TEST}`
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(15_000) })
      if (!response.ok) throw new Error(`HTTP ${response.status}`)
      mkdirSync(dirname(path), { recursive: true })
      writeFileSync(path, new Uint8Array(await response.arrayBuffer()))
    } catch (error) {
      console.log(
        `SKIPPED Roboflow's ${ROBOFLOW_TEST}: not in ${path} and not downloadable (${(error as Error).message}); put the file at commit ${ROBOFLOW_COMMIT} there to run it`,
      )
      return null
    }
  }
  const found = sha256(readFileSync(path))
  if (found !== ROBOFLOW_SHA256) {
    console.error(
      `${path}: sha256 ${found}, expected ${ROBOFLOW_SHA256} (commit ${ROBOFLOW_COMMIT})`,
    )
    process.exit(1)
  }
  return path
}
const roboflow = process.argv.includes('--ours') ? null : await roboflowTest()

// 3. blockgate, in this process, on a free port.
const config = loadConfig({
  ...process.env,
  BLOCKGATE_API_KEYS: JSON.stringify({
    keys: [{ id: KEY, sha256: sha256(SECRET), workspaces: ['anonymous'] }],
  }),
  BLOCKGATE_MIN_WARM_WORKERS: '1',
  BLOCKGATE_WEBEXEC_WS_IDLE_TIMEOUT_S: String(IDLE_TIMEOUT_S),
})
const backends = createBackends(config)
await Promise.all(Object.values(backends).map((backend) => backend.start()))
let sockets = new OpenSockets()
let app = createApp({ config, backends, sockets })
let restarted = false
/** A restart: a new app, so no code is remembered (the workers stay). */
function restart(): void {
  sockets = new OpenSockets()
  app = createApp({ config, backends, sockets })
}
const blockgate = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  maxRequestBodySize: config.limits.maxBodyBytes + 1024 * 1024,
  fetch: (request, server) => app.fetch(request, server),
  websocket: websocketHandler,
})

// 4. The front the client talks to: records, and plays the restart and the server's close.
interface HttpExchange {
  request: { workspace_id: string | null; headers: Record<string, string | null>; body: unknown }
  response: { status: number; body: unknown }
}
// `relay` frames mark what the front did to blockgate at that point, for the replay to do too.
type Frame =
  | { from: 'client' | 'server'; bytes: string }
  | { from: 'client' | 'server'; close: number }
  | { from: 'relay'; event: 'restart' | 'close-when-idle' }
interface SocketExchange {
  path: string
  frames: Frame[]
}
const exchanges: HttpExchange[] = []
const conversations: SocketExchange[] = []
const stats = { connections: 0, heartbeats: 0, closedByServer: 0, unknownCodeHash: 0 }
let closedMidSession = false
/** Only our own test file's traffic becomes fixtures (Roboflow's runs in subprocesses too). */
let recording: 'http' | 'websocket' | null = null

interface Relay {
  upstream: WebSocket | null
  pending: Uint8Array[]
  /** The client's hello, said again on a new upstream (a restart), whose answer is not relayed. */
  hello: Uint8Array | null
  swallowHello: boolean
  conversation: SocketExchange
  headers: Record<string, string>
  path: string
}

/** A message frame, decoded (whole chunks and large frames are not looked into): null otherwise. */
function peek(frame: Uint8Array): Record<string, unknown> | null {
  if (frame.byteLength > 64 * 1024) return null
  try {
    const message = readMsgpack(frame)
    return message !== null && typeof message === 'object'
      ? (message as Record<string, unknown>)
      : null
  } catch {
    return null // a raw chunk
  }
}

function stepOf(message: Record<string, unknown> | null): string | null {
  const context = message?.workflow_context as { step_name?: unknown } | undefined
  return typeof context?.step_name === 'string' ? context.step_name : null
}

function connectUpstream(client: ServerWebSocket<Relay>): void {
  const relay = client.data
  const upstream = new WebSocket(`ws://127.0.0.1:${blockgate.port}${relay.path}`, {
    headers: relay.headers,
  } as unknown as string[])
  upstream.binaryType = 'arraybuffer'
  relay.upstream = upstream
  upstream.onopen = () => {
    for (const frame of relay.pending.splice(0)) upstream.send(frame)
  }
  upstream.onmessage = (event) => {
    const bytes = new Uint8Array(event.data as ArrayBuffer)
    if (process.env.RELAY_DEBUG)
      console.log(
        'relay: server frame',
        bytes.byteLength,
        typeof event.data,
        bytes.byteLength < 200 ? Bun.inspect(readMsgpack(bytes)) : '',
      )
    if (relay.swallowHello) {
      relay.swallowHello = false
      return
    }
    if (peek(bytes)?.error_type === 'UnknownCodeHash') stats.unknownCodeHash += 1
    relay.conversation.frames.push({ from: 'server', bytes: Buffer.from(bytes).toString('base64') })
    client.send(bytes)
  }
  upstream.onclose = (event) => {
    if (process.env.RELAY_DEBUG)
      console.log('relay: upstream closed', event.code, relay.upstream === upstream)
    if (relay.upstream !== upstream) return // replaced by a restart: the client stays
    relay.conversation.frames.push({ from: 'server', close: event.code })
    stats.closedByServer += 1
    client.close(event.code === 1005 ? 1000 : event.code)
  }
}

const front = Bun.serve<Relay>({
  hostname: '127.0.0.1',
  port: 0,
  maxRequestBodySize: config.limits.maxBodyBytes + 1024 * 1024,
  async fetch(request, server) {
    const url = new URL(request.url)
    if (url.pathname === '/__relay/stats') return Response.json(stats)
    if (url.pathname === '/webexec/ws') {
      const headers = Object.fromEntries(
        ['modal-key', 'modal-secret', 'authorization']
          .map((name) => [name, request.headers.get(name)])
          .filter(([, value]) => value !== null),
      ) as Record<string, string>
      // A refused handshake is blockgate's to answer: ask it first, as a plain request.
      const probe = await app.fetch(new Request(request.url, { headers: { ...headers } }))
      if (probe.status !== 426) return probe
      const conversation = { path: url.pathname + url.search, frames: [] }
      if (recording === 'websocket') conversations.push(conversation)
      stats.connections += 1
      const data: Relay = {
        upstream: null,
        pending: [],
        hello: null,
        swallowHello: false,
        conversation,
        headers,
        path: conversation.path,
      }
      return server.upgrade(request, { data })
        ? undefined
        : new Response('no upgrade', { status: 400 })
    }
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
      restart()
    }
    const response = await app.fetch(
      new Request(request.url, { method: request.method, headers: request.headers, body: bytes }),
      server,
    )
    const text = await response.text()
    if (recording === 'http')
      exchanges.push({
        request: {
          workspace_id: url.searchParams.get('workspace_id'),
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
  websocket: {
    maxPayloadLength: 2 * 1024 * 1024,
    idleTimeout: 0,
    open: (client) => connectUpstream(client),
    message(client, frame) {
      const relay = client.data
      const bytes = typeof frame === 'string' ? new TextEncoder().encode(frame) : frame
      const message = peek(bytes)
      const step = stepOf(message)
      if (message?._kind === 'hello') relay.hello = bytes
      if (message?._kind === 'heartbeat') stats.heartbeats += 1
      // blockgate "restarts" under an open socket: the next hash-only request finds no code.
      if (step === 'after_restart' && !restarted) {
        restarted = true
        relay.conversation.frames.push({ from: 'relay', event: 'restart' })
        restart()
        relay.upstream?.close()
        connectUpstream(client)
        if (relay.hello) {
          relay.pending.push(relay.hello)
          relay.swallowHello = true
        }
      }
      // blockgate closes this connection between two requests (a drain): the client reads
      // `closing` where it waited for its answer, and resends on a new connection.
      if (step === 'server_closes' && !closedMidSession) {
        closedMidSession = true
        // The held frame never reaches blockgate: the replay closes the socket here instead.
        relay.conversation.frames.push({ from: 'relay', event: 'close-when-idle' })
        void sockets.closeAll(5_000)
        return
      }
      relay.conversation.frames.push({
        from: 'client',
        bytes: Buffer.from(bytes).toString('base64'),
      })
      const upstream = relay.upstream
      if (upstream?.readyState === WebSocket.OPEN) upstream.send(bytes)
      else relay.pending.push(bytes)
    },
    close(client, code) {
      client.data.conversation.frames.push({ from: 'client', close: code })
      client.data.upstream?.close()
    },
  },
})
const endpoint = `http://127.0.0.1:${front.port}/webexec`
console.log(`blockgate listening; MODAL_WEB_ENDPOINT_URL=${endpoint}`)

// 5. Inference's own execution engine, told to run custom Python blocks remotely: here.
async function pytest(transport: 'http' | 'websocket', files: string[]): Promise<number> {
  const startedAt = performance.now()
  // Spawned asynchronously: this process serves blockgate to it meanwhile.
  const child = Bun.spawn(
    [
      python,
      ...['-m', 'pytest', '-v', '-p', 'no:cacheprovider', '-W', 'ignore', '-rP'],
      ...pytestArgs,
      ...files,
    ],
    {
      stdio: ['inherit', 'inherit', 'inherit'],
      cwd: join(root, 'test/inference'),
      env: {
        ...process.env,
        WORKFLOWS_CUSTOM_PYTHON_EXECUTION_MODE: 'modal',
        WEBEXEC_TRANSPORT: transport,
        MODAL_TOKEN_ID: KEY,
        MODAL_TOKEN_SECRET: SECRET,
        MODAL_WEB_ENDPOINT_URL: endpoint,
        // Without a Roboflow API key Inference calls the workspace "anonymous" and refuses
        // remote execution for it unless told otherwise.
        MODAL_ALLOW_ANONYMOUS_EXECUTION: 'True',
        BLOCKGATE_RELAY_STATS_URL: `http://127.0.0.1:${front.port}/__relay/stats`,
        BLOCKGATE_WS_IDLE_TIMEOUT_S: String(IDLE_TIMEOUT_S),
      },
    },
  )
  const status = await child.exited
  console.log(`Inference workflows through blockgate over ${transport}: ${seconds(startedAt)}`)
  return status
}

let status = 0
for (const transport of ['http', 'websocket'] as const) {
  if (onlyTransport && transport !== onlyTransport) continue
  restarted = false
  closedMidSession = false
  recording = transport
  status ||= await pytest(transport, [join(root, 'test/inference/test_inference.py')])
  recording = null
  if (roboflow) status ||= await pytest(transport, [roboflow])
}

front.stop(true)
blockgate.stop(true)
await Promise.all(Object.values(backends).map((backend) => backend.stop()))

if (record && status === 0) {
  const httpFixtures = join(root, 'test/fixtures/webexec')
  const socketFixtures = join(root, 'test/fixtures/webexec-ws')
  for (const dir of [httpFixtures, socketFixtures]) {
    mkdirSync(dir, { recursive: true })
    for (const old of readdirSync(dir)) if (old.endsWith('.json')) rmSync(join(dir, old))
  }
  // Only our own test file's exchanges: Roboflow's runs its workflows in subprocesses too.
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
    const file = join(httpFixtures, `${String(i + 1).padStart(2, '0')}-${name}.json`)
    writeFileSync(
      file,
      `${JSON.stringify({ ...exchange, response: { ...exchange.response, body: answer } }, null, 2)}\n`,
    )
  })
  conversations.forEach((conversation, i) => {
    const step =
      conversation.frames
        .map((frame) =>
          'bytes' in frame ? stepOf(peek(Buffer.from(frame.bytes, 'base64'))) : null,
        )
        .find((name) => name !== null) ?? 'idle'
    const file = join(socketFixtures, `${String(i + 1).padStart(2, '0')}-${step}.json`)
    writeFileSync(file, `${JSON.stringify(conversation, null, 1)}\n`)
  })
  console.log(
    `recorded ${exchanges.length} requests into ${httpFixtures} and ${conversations.length} connections into ${socketFixtures}`,
  )
}
process.exit(status)
