// Faults under load, against a real server process: the zygote, a worker mid-run and an idle
// worker are killed with SIGKILL while ordinary runs keep coming. The runs a fault hits get a
// clean typed error; every other run succeeds; the pool heals; nothing is left behind.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decodeCbor, encodeCbor } from '../../serializers/cbor.ts'
import { decodeKinds } from '../../serializers/index.ts'
import { NDArray } from '../../serializers/ndarray/index.ts'
import { SUM_BLOCK } from '../support/http.ts'
import {
  descendants,
  footprint,
  type Footprint,
  startServer,
  type ServerProcess,
} from '../support/server-process.ts'

let server: ServerProcess
let scratch: string

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'blockgate-chaos-'))
  server = await startServer({
    TMPDIR: scratch,
    BLOCKGATE_LOG_LEVEL: 'error',
    BLOCKGATE_MAX_WORKERS: '4',
    BLOCKGATE_MIN_WARM_WORKERS: '2',
    BLOCKGATE_TENANT_MAX_WORKERS: '2',
  })
}, 90_000)

afterAll(async () => {
  await server?.stop()
  rmSync(scratch, { recursive: true, force: true })
})

async function run(code: string, extra: Record<string, unknown> = {}) {
  const response = await fetch(`${server.url}/v1/run`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ code: { run_function_code: code }, ...extra }),
  })
  return { status: response.status, answer: (await response.json()) as any }
}

/** Ordinary runs in two workspaces, two at a time, until stopped; each answer is checked. */
function ordinaryLoad() {
  const results: { status: number; ok: boolean; sentAt: number; error?: string }[] = []
  let stopped = false
  const loops = ['steady-a', 'steady-b'].map(async (workspace) => {
    for (let i = 0; !stopped; i++) {
      const sentAt = performance.now()
      const { status, answer } = await run(SUM_BLOCK, { inputs: { a: i, b: 1 }, workspace })
      results.push({
        status,
        ok: status === 200 && answer.outputs?.sum === i + 1,
        sentAt,
        error: answer.error?.type,
      })
      await Bun.sleep(10)
    }
  })
  return {
    async stop() {
      stopped = true
      await Promise.all(loops)
      return results
    },
  }
}

/** A block that names its own process (its comm, visible from the host) and then sleeps. */
const NAMED_SLEEPER = (name: string, seconds: number) =>
  `import ctypes, time\ndef run(self):\n    ctypes.CDLL(None).prctl(15, b"${name}", 0, 0, 0)\n    time.sleep(${seconds})\n    return {"slept": ${seconds}}\n`

function processNamed(name: string): number | undefined {
  return descendants(server.pid).find((p) => {
    try {
      return readFileSync(`/proc/${p.pid}/comm`, 'utf8').trim() === name
    } catch {
      return false
    }
  })?.pid
}

async function waitFor<T>(find: () => T | undefined, withinMs = 5000): Promise<T> {
  const deadline = performance.now() + withinMs
  for (;;) {
    const found = find()
    if (found !== undefined) return found
    if (performance.now() > deadline) throw new Error('not found in time')
    await Bun.sleep(20)
  }
}

/** The sandbox's processes: holders and workers are forks of the zygote, so the zygote is the one whose parent is not. */
function zygotePid(): number {
  const under = descendants(server.pid)
  const cmdline = (pid: number) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8')
    } catch {
      return ''
    }
  }
  const zygote = under.find(
    (p) => cmdline(p.pid).includes('runtime.zygote') && !cmdline(p.ppid).includes('runtime.zygote'),
  )
  if (!zygote) throw new Error('no zygote under the server')
  return zygote.pid
}

async function healed(before: Footprint): Promise<void> {
  // Every workspace is served again, and the server's footprint is back where it was.
  for (const workspace of ['steady-a', 'steady-b', 'after-the-fault']) {
    const { status, answer } = await run(SUM_BLOCK, { inputs: { a: 2, b: 3 }, workspace })
    expect(status).toBe(200)
    expect(answer.outputs).toEqual({ sum: 5 })
  }
  const deadline = performance.now() + 8000
  let now = footprint(server.pid)
  while (
    performance.now() < deadline &&
    (now.processes > before.processes + 4 ||
      now.fds > before.fds + 8 ||
      now.shmEntries > before.shmEntries + 2)
  ) {
    await Bun.sleep(100)
    now = footprint(server.pid)
  }
  expect(now.processes).toBeLessThanOrEqual(before.processes + 4)
  expect(now.fds).toBeLessThanOrEqual(before.fds + 8)
  expect(now.shmEntries).toBeLessThanOrEqual(before.shmEntries + 2)
}

describe('chaos under load', () => {
  test('SIGKILL of a worker mid-run: that run is a 500 WorkerCrashed, every other run succeeds', async () => {
    const before = footprint(server.pid)
    const load = ordinaryLoad()
    const victim = run(NAMED_SLEEPER('victim-run', 5), { workspace: 'victim' })
    process.kill(await waitFor(() => processNamed('victim-run')), 'SIGKILL')
    const hit = await victim
    await Bun.sleep(300)
    const others = await load.stop()
    expect(hit.status).toBe(500)
    expect(hit.answer.error.type).toBe('WorkerCrashed')
    expect(hit.answer.error.message).toContain('SIGKILL')
    expect(others.filter((r) => !r.ok)).toEqual([])
    await healed(before)
  }, 60_000)

  test('SIGKILL of an idle worker: no run fails, and it is replaced', async () => {
    const before = footprint(server.pid)
    // A worker of its own for this workspace, idle once its run is done.
    expect((await run(NAMED_SLEEPER('idle-soon', 0), { workspace: 'idle' })).status).toBe(200)
    const idle = await waitFor(() => processNamed('idle-soon'))
    const load = ordinaryLoad()
    await Bun.sleep(200)
    process.kill(idle, 'SIGKILL')
    await Bun.sleep(500)
    const next = await run(SUM_BLOCK, { inputs: { a: 1, b: 1 }, workspace: 'idle' })
    const others = await load.stop()
    expect(next.status).toBe(200)
    expect(others.filter((r) => !r.ok)).toEqual([])
    await healed(before)
  }, 60_000)

  test("the worker socket's directory removed: the pool starts over with a new one, and runs wait for it", async () => {
    const before = footprint(server.pid)
    const socketDirs = readdirSync(scratch).filter((name) =>
      name.startsWith(`blockgate-${server.pid}-`),
    )
    expect(socketDirs.length).toBe(1)
    const load = ordinaryLoad()
    await Bun.sleep(200)
    const removedAt = performance.now()
    rmSync(join(scratch, socketDirs[0]!), { recursive: true, force: true })
    // New workspaces need new workers: each must be served once the pool has started over.
    const fresh = await Promise.all(
      ['needs-a-fork-1', 'needs-a-fork-2', 'needs-a-fork-3'].map((workspace) =>
        run(SUM_BLOCK, { inputs: { a: 1, b: 2 }, workspace }),
      ),
    )
    await Bun.sleep(500)
    const others = await load.stop()
    expect(fresh.map((r) => r.status)).toEqual([200, 200, 200])
    expect(
      others.filter((r) => !r.ok && r.sentAt > removedAt + 100 && r.error !== 'WorkerCrashed'),
    ).toEqual([])
    expect(
      readdirSync(scratch).filter((name) => name.startsWith(`blockgate-${server.pid}-`)).length,
    ).toBe(1)
    await healed(before)
  }, 60_000)

  test('SIGKILL of the zygote: runs in flight are a 500 WorkerCrashed, later runs wait for the restart and succeed', async () => {
    const before = footprint(server.pid)
    const load = ordinaryLoad()
    const inFlight = run(NAMED_SLEEPER('zygote-victim', 5), { workspace: 'zygote-victim' })
    await waitFor(() => processNamed('zygote-victim'))
    const killedAt = performance.now()
    process.kill(zygotePid(), 'SIGKILL')
    const hit = await inFlight
    // A run for a new workspace needs a fork: it waits for the restarted zygote (a back-off and a fresh start).
    const afterRestart = await run(SUM_BLOCK, {
      inputs: { a: 2, b: 2 },
      workspace: 'after-restart',
    })
    await Bun.sleep(300)
    const others = await load.stop()
    expect(hit.status).toBe(500)
    expect(hit.answer.error.type).toBe('WorkerCrashed')
    expect(afterRestart.status).toBe(200)
    // A run in flight at the kill may crash with it; no run that started after it may fail.
    const failedLater = others.filter((r) => !r.ok && r.sentAt > killedAt + 100)
    expect(failedLater).toEqual([])
    expect(others.filter((r) => r.ok && r.sentAt > killedAt + 100).length).toBeGreaterThan(0)
    await healed(before)
  }, 60_000)
})

describe('/dev/shm full', () => {
  test('large buffers go through the socket instead, both ways, and the answer is right', async () => {
    // A server of its own, in a mount namespace whose /dev/shm holds 1 MiB: too little for
    // the 2 MiB arrays below, in either direction.
    const full = await startServer(
      {
        TMPDIR: scratch,
        BLOCKGATE_LOG_LEVEL: 'error',
        BLOCKGATE_MAX_WORKERS: '2',
        BLOCKGATE_MIN_WARM_WORKERS: '1',
      },
      {
        wrap: [
          'unshare',
          '--mount',
          '--propagation',
          'private',
          '/bin/sh',
          '-c',
          'mount -t tmpfs -o size=1m tmpfs /dev/shm && exec "$@"',
          'sh',
        ],
      },
    )
    try {
      const image = NDArray.fromBytes('uint8', [1024, 2048], new Uint8Array(1024 * 2048).fill(7))
      const body = encodeCbor({
        code: {
          run_function_code:
            'def run(self, image):\n    return {"inverted": 255 - image, "sum": int(image.sum())}\n',
        },
        inputs: { image },
      })
      for (let i = 0; i < 3; i++) {
        const response = await fetch(`${full.url}/v1/run`, {
          method: 'POST',
          headers: { 'content-type': 'application/cbor' },
          body,
        })
        const answer = decodeKinds(
          decodeCbor(new Uint8Array(await response.arrayBuffer())),
          'response',
        ) as any
        expect(response.status).toBe(200)
        expect(answer.outputs.sum).toBe(7 * 1024 * 2048)
        expect(answer.outputs.inverted.shape).toEqual([1024, 2048])
        expect(answer.outputs.inverted.data[1024 * 2048 - 1]).toBe(248)
      }
    } finally {
      await full.stop()
    }
  }, 60_000)
})
