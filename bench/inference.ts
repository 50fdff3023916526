// Roboflow Inference's custom Python block step through blockgate (issue 18): the same
// workflow (one custom block that takes a 640×480 image) through Inference's own
// ExecutionEngine in local mode (in-process: the floor), and in remote mode over each of its
// transports, HTTP (POST /webexec) and websocket (GET /webexec/ws), to a blockgate in this
// process. For each remote mode, blockgate's server-side share of a run is measured at the
// server: HTTP, the request's handling (body read, gunzip, JSON, run, answer); websocket, from
// the request's first frame to its answer's. Its own part is that minus the block's own code
// (`timings_ms.user_code`, which holds the JPEG decode when the block reads the pixels), as
// the README defines server-side overhead. The client's steps (inputs serialized, the
// exchange, the result read) are timed in the driver (bench/inference_driver.py). Needs the
// inference-core venv that `npm run test:inference` installs; skipped with a line saying so
// without it.
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import type { ServerWebSocket } from 'bun'
import { createApp } from '../src/app.ts'
import { createBackends } from '../src/backends/index.ts'
import { loadConfig } from '../src/config.ts'
import { type SocketSession, websocketHandler } from '../src/http/websocket.ts'
import { readMsgpack } from '../src/interop/webexec/ws/msgpack-read.ts'
import type { BenchContext } from './context.ts'
import { median, rowOf, type Row } from './stats.ts'

const venv = join(
  process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'),
  'blockgate',
  'inference-venv',
)
const python = join(venv, 'bin', 'python')
const KEY = 'bench-inference'
const SECRET = 'bench-inference-secret'
type Mode = 'local' | 'http' | 'websocket'

interface DriverResult {
  runs_ms: number[]
  steps_ms: Record<string, number>[]
}

export async function inferenceStep(ctx: BenchContext): Promise<Row[]> {
  if (!existsSync(python))
    throw new Error(
      `the inference-core venv is not at ${venv}: run \`npm run test:inference\` once to install it (7 GB)`,
    )
  const server = await startServer()
  try {
    const runs = ctx.count(20, 40)
    const rounds: Record<Mode, number[][]> = { local: [], http: [], websocket: [] }
    const serverShare: Record<'http' | 'websocket', number[][]> = { http: [], websocket: [] }
    const ownShare: Record<'http' | 'websocket', number[][]> = { http: [], websocket: [] }
    const steps: Record<'http' | 'websocket', Record<string, number[]>> = {
      http: {},
      websocket: {},
    }
    for (let round = 0; round < ctx.rounds; round++) {
      // Modes interleave, so drift on this shared machine hits all three alike.
      for (const mode of ['local', 'http', 'websocket'] as const) {
        ctx.progress(`inference: round ${round + 1}/${ctx.rounds}, ${mode}, ${runs} runs`)
        server.shares.length = 0
        const result = await drive(mode, runs, server.endpoint)
        rounds[mode].push(result.runs_ms)
        if (mode === 'local') continue
        // The last `runs` requests are the measured runs (warm-ups and validation come first).
        const measured = (await Promise.all(server.shares)).slice(-runs)
        serverShare[mode].push(measured.map((share) => share.totalMs))
        ownShare[mode].push(measured.map((share) => share.totalMs - share.userCodeMs))
        for (const sample of result.steps_ms)
          for (const [step, value] of Object.entries(sample)) {
            steps[mode][step] ??= []
            steps[mode][step].push(value)
          }
      }
    }
    const base = {
      scenario: 'inference',
      target: 'local',
      payload: '640x480-image',
      concurrency: 1,
    }
    const local = rowOf(
      {
        ...base,
        backend: 'inference-local',
        name: 'Inference local mode: the workflow run in-process (its default; no isolation)',
      },
      rounds.local,
    )
    const rows: Row[] = [local]
    for (const mode of ['http', 'websocket'] as const) {
      const clientSteps = Object.fromEntries(
        Object.entries(steps[mode]).map(([step, values]) => [
          `client_${step}_p50_ms`,
          +median(values).toPrecision(3),
        ]),
      )
      const run = rowOf(
        {
          ...base,
          backend: `inference-${mode}`,
          name: `Inference → blockgate over ${mode === 'http' ? 'HTTP (POST /webexec)' : 'websocket (GET /webexec/ws)'}: the workflow run`,
          extra: clientSteps,
        },
        rounds[mode],
      )
      run.extra.over_local_p50_ms = +(run.p50_ms - local.p50_ms).toPrecision(3)
      const share = rowOf(
        {
          ...base,
          backend: `inference-${mode}-server`,
          name: `blockgate's server-side share of one ${mode === 'http' ? 'HTTP' : 'websocket'} run (request in to answer out)`,
        },
        serverShare[mode],
      )
      const own = rowOf(
        {
          ...base,
          backend: `inference-${mode}-server-own`,
          name: `the same, less the block's own code (its JPEG decode included): blockgate's own part`,
        },
        ownShare[mode],
      )
      rows.push(run, share, own)
    }
    return rows
  } finally {
    await server.stop()
  }
}

export function drive(mode: Mode, runs: number, endpoint: string): Promise<DriverResult> {
  return new Promise((resolve, reject) => {
    // Spawned asynchronously: this process serves blockgate to it meanwhile.
    const child = Bun.spawn(
      [python, join(import.meta.dir, 'inference_driver.py'), mode, '5', String(runs)],
      {
        stdout: 'pipe',
        stderr: 'pipe',
        env: {
          ...process.env,
          MODAL_TOKEN_ID: KEY,
          MODAL_TOKEN_SECRET: SECRET,
          MODAL_WEB_ENDPOINT_URL: endpoint,
          MODAL_ALLOW_ANONYMOUS_EXECUTION: 'True',
        },
      },
    )
    Promise.all([
      new Response(child.stdout).text(),
      new Response(child.stderr).text(),
      child.exited,
    ])
      .then(([out, err, status]) => {
        const line = out.trim().split('\n').at(-1) ?? ''
        if (status !== 0 || !line.startsWith('{'))
          reject(
            new Error(
              `inference driver (${mode}) failed: ${err.trim().split('\n').slice(-3).join(' | ')}`,
            ),
          )
        else resolve(JSON.parse(line) as DriverResult)
      })
      .catch(reject)
  })
}

/** blockgate in this process, with the one key Inference sends, timing each request's handling. */
export async function startServer() {
  const config = loadConfig({
    ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('E2B_'))),
    WORKFLOWS_CUSTOM_PYTHON_EXECUTION_MODE: 'local',
    BLOCKGATE_LOG_LEVEL: 'warn',
    BLOCKGATE_MIN_WARM_WORKERS: '1',
    BLOCKGATE_MAX_WORKERS: '2',
    BLOCKGATE_API_KEYS: JSON.stringify({
      keys: [
        {
          id: KEY,
          sha256: createHash('sha256').update(SECRET).digest('hex'),
          workspaces: ['anonymous'],
          limits: { requests_per_second: 100_000, concurrent_runs: 100 },
        },
      ],
    }),
  })
  const backends = createBackends(config)
  await Promise.all(Object.values(backends).map((backend) => backend.start()))
  const app = createApp({ config, backends })
  /** Per request: its time at the server, and the block's own part of it (from the answer). */
  const shares: Promise<{ totalMs: number; userCodeMs: number }>[] = []
  const userCodeOf = (answer: unknown) =>
    (answer as { blockgate?: { timings_ms?: { user_code?: number } } }).blockgate?.timings_ms
      ?.user_code ?? 0
  // Websocket: from a request's first frame to the first frame sent back (its answer is one
  // frame here); handshakes and heartbeats are not requests.
  const startedAt = new WeakMap<object, number>()
  const isControl = (frame: string | Uint8Array) =>
    typeof frame !== 'string' && frame.byteLength < 32 && frame[1] === 0xa5 // {"_kind": …}
  const server = Bun.serve<SocketSession>({
    hostname: '127.0.0.1',
    port: 0,
    maxRequestBodySize: config.limits.maxBodyBytes + 1024 * 1024,
    async fetch(request, bunServer) {
      const started = performance.now()
      const response = await app.fetch(request, bunServer)
      const totalMs = performance.now() - started
      if (request.method === 'POST')
        shares.push(
          response
            .clone()
            .json()
            .then((answer) => ({ totalMs, userCodeMs: userCodeOf(answer) })),
        )
      return response
    },
    websocket: {
      ...websocketHandler,
      open(socket: ServerWebSocket<SocketSession>) {
        const send = socket.send.bind(socket)
        socket.send = (frame, compress) => {
          const since = startedAt.get(socket)
          const status = send(frame, compress)
          if (since !== undefined) {
            const totalMs = performance.now() - since
            startedAt.delete(socket)
            const answer = readMsgpack(new Uint8Array(frame as ArrayBufferLike))
            shares.push(Promise.resolve({ totalMs, userCodeMs: userCodeOf(answer) }))
          }
          return status
        }
        websocketHandler.open?.(socket)
      },
      message(socket, frame) {
        if (!startedAt.has(socket) && !isControl(frame)) startedAt.set(socket, performance.now())
        void websocketHandler.message?.(socket, frame)
      },
    },
  })
  return {
    endpoint: `http://127.0.0.1:${server.port}/webexec`,
    shares,
    async stop() {
      server.stop(true)
      await Promise.all(Object.values(backends).map((backend) => backend.stop()))
    },
  }
}
