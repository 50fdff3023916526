// One tenant cannot hurt another. Each attack runs in one workspace (its own API key) against
// a real server process, while another key keeps running ordinary blocks: every one of those
// runs must succeed, /healthz must answer within 100 ms throughout (asked from a process of
// its own), and afterwards the server's memory, fds, processes and shared-memory files must
// be back where they were.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createHash } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { createConnection, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { encodeCbor, Tag } from '../../serializers/cbor.ts'
import { PROJECT_ROOT } from '../../src/config.ts'
import { readAnswer, SUM_BLOCK } from '../support/http.ts'
import {
  CLOCK_TICKS_PER_SECOND,
  descendants,
  footprint,
  type Footprint,
  startServer,
  type ServerProcess,
} from '../support/server-process.ts'

const MALLORY = 'bg_tenant-test-mallory-0123456789'
const ALICE = 'bg_tenant-test-alice-9876543210ab'
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex')
const MEMORY_LIMIT = 1024 * 1024 * 1024
const HEALTHZ_WITHIN_MS = 100

let server: ServerProcess
let scratch: string

beforeAll(async () => {
  // The server's temporary files (its worker socket) go here, so the test can find them.
  scratch = mkdtempSync(join(tmpdir(), 'blockgate-tenants-'))
  server = await startServer({
    TMPDIR: scratch,
    BLOCKGATE_LOG_LEVEL: 'warn',
    BLOCKGATE_MAX_WORKERS: '4',
    BLOCKGATE_MIN_WARM_WORKERS: '2',
    BLOCKGATE_MEMORY_LIMIT_BYTES: String(MEMORY_LIMIT),
    BLOCKGATE_PROCESS_LIMIT: '32',
    BLOCKGATE_API_KEYS: JSON.stringify({
      keys: [
        { id: 'mallory', sha256: sha256(MALLORY), workspaces: ['mallory', 'mallory-2'] },
        { id: 'alice', sha256: sha256(ALICE), workspaces: ['alice'] },
      ],
    }),
  })
  // Both tenants warm, so the baselines below hold a worker of each.
  expect((await run(ALICE, SUM_BLOCK, { inputs: { a: 1, b: 2 } })).status).toBe(200)
  expect((await run(MALLORY, SUM_BLOCK, { inputs: { a: 1, b: 2 } })).status).toBe(200)
}, 90_000)

afterAll(async () => {
  await server?.stop()
  rmSync(scratch, { recursive: true, force: true })
})

async function run(
  key: string,
  code: string,
  extra: Record<string, unknown> = {},
  { cbor = false, body }: { cbor?: boolean; body?: Uint8Array } = {},
) {
  const payload = { code: { run_function_code: code }, ...extra }
  const response = await fetch(`${server.url}/v1/run`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${key}`,
      'content-type': cbor || body ? 'application/cbor' : 'application/json',
    },
    body: body ?? (cbor ? encodeCbor(payload) : JSON.stringify(payload)),
  })
  return { status: response.status, answer: await readAnswer(response) }
}

/** Alice's ordinary runs, one after another, until stopped: each must come back right. */
function keepAliceRunning() {
  const results: { status: number; ok: boolean; ms: number; detail: string }[] = []
  let stopped = false
  const done = (async () => {
    for (let i = 0; !stopped; i++) {
      const startedAt = performance.now()
      const { status, answer } = await run(ALICE, SUM_BLOCK, { inputs: { a: i, b: 0.5 } })
      const ok = status === 200 && answer.outputs?.sum === i + 0.5
      results.push({
        status,
        ok,
        ms: performance.now() - startedAt,
        detail: ok ? '' : JSON.stringify(answer).slice(0, 300),
      })
      await Bun.sleep(20)
    }
  })()
  return {
    async stop() {
      stopped = true
      await done
      return results
    },
  }
}

function probeHealthz() {
  const probe = Bun.spawn({
    cmd: [
      process.execPath,
      resolve(PROJECT_ROOT, 'test/support/healthz-probe.ts'),
      server.url,
      '20',
    ],
    stdout: 'pipe',
    stderr: 'ignore',
  })
  return {
    async stop(): Promise<{ count: number; failures: number; maxMs: number; p50Ms: number }> {
      probe.kill('SIGTERM')
      return JSON.parse(await new Response(probe.stdout).text())
    },
  }
}

/** The server's footprint sampled every 25 ms while `body` runs: the peaks. */
async function sampled<T>(body: () => Promise<T>): Promise<{ result: T; peak: Footprint }> {
  const peak = footprint(server.pid)
  let sampling = true
  const sampler = (async () => {
    while (sampling) {
      const now = footprint(server.pid)
      for (const key of Object.keys(peak) as (keyof Footprint)[])
        peak[key] = Math.max(peak[key], now[key])
      await Bun.sleep(25)
    }
  })()
  try {
    return { result: await body(), peak }
  } finally {
    sampling = false
    await sampler
  }
}

/** Waits until the server's footprint is back within `slack` of `baseline` (or the time is up); returns the last one. */
async function settled(baseline: Footprint, withinMs = 8000): Promise<Footprint> {
  let now = footprint(server.pid)
  const deadline = performance.now() + withinMs
  while (performance.now() < deadline && !backWhereItWas(baseline, now)) {
    await Bun.sleep(100)
    now = footprint(server.pid)
  }
  return now
}

const MiB = 1024 * 1024
function backWhereItWas(before: Footprint, after: Footprint): boolean {
  return (
    after.rssBytes <= before.rssBytes + 150 * MiB &&
    after.fds <= before.fds + 8 &&
    after.processes <= before.processes + 4 && // the pool may hold a refilled spare more than before
    after.shmEntries <= before.shmEntries + 2
  )
}

/** CPU the server's processes use over `ms`, in cores. */
async function cpuCoresUsed(ms = 1000): Promise<number> {
  const before = footprint(server.pid).cpuTicks
  await Bun.sleep(ms)
  return (footprint(server.pid).cpuTicks - before) / CLOCK_TICKS_PER_SECOND / (ms / 1000)
}

/**
 * Runs `attack` while Alice runs ordinary blocks and /healthz is probed; checks that Alice
 * was never hurt and the server is back where it was. Returns the attack's result and the peaks.
 */
async function underAttack<T>(attack: () => Promise<T>): Promise<{
  result: T
  peak: Footprint
  before: Footprint
  after: Footprint
  aliceMaxMs: number
}> {
  const before = await settled(footprint(server.pid), 0)
  const probe = probeHealthz()
  await Bun.sleep(100)
  const alice = keepAliceRunning()
  const { result, peak } = await sampled(attack)
  await Bun.sleep(200)
  const aliceRuns = await alice.stop()
  const health = await probe.stop()
  const after = await settled(before)
  expect(aliceRuns.filter((r) => !r.ok)).toEqual([])
  expect(aliceRuns.length).toBeGreaterThan(0)
  expect(health.failures).toBe(0)
  expect(health.maxMs).toBeLessThan(HEALTHZ_WITHIN_MS)
  expect(backWhereItWas(before, after) ? 'back' : { before, after }).toBe('back')
  return { result, peak, before, after, aliceMaxMs: Math.max(...aliceRuns.map((r) => r.ms)) }
}

/** Python that writes `frame_head` (CBOR, built by the block) as a reply frame on its own socket to the proxy. */
const FORGE_REPLY = `import os, struct, time, cbor2
def forge(head):
    payload = struct.pack(">I", len(head)) + head
    frame = struct.pack(">I", len(payload)) + payload
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                os.write(int(fd), frame)
        except OSError:
            pass
    time.sleep(0.5)
`

describe('one tenant cannot hurt another', () => {
  test('forged reply frames full of region references make the server allocate nothing out of bounds', async () => {
    const code = `${FORGE_REPLY}
def run(self):
    forge(cbor2.dumps({"ok": True, "outputs": [cbor2.CBORTag(61444, [0, 64 << 20]) for _ in range(64)]}))
    return {}
`
    const { result, peak, before } = await underAttack(() => run(MALLORY, code))
    expect(result.status).not.toBe(200) // the forged frame broke the protocol: the worker is gone
    // 64 references to the 64 MiB region would be 4 GiB: the server allocates at most the output cap.
    expect(peak.rssBytes - before.rssBytes).toBeLessThan(200 * MiB)
  }, 60_000)

  test('a huge bignum in a request body is a quick 400, and freezes nothing', async () => {
    const body = encodeCbor({
      code: { run_function_code: SUM_BLOCK },
      inputs: { a: new Tag(new Uint8Array(256 * 1024).fill(0xff), 2), b: 1 },
    })
    const { result } = await underAttack(async () => {
      const startedAt = performance.now()
      const answer = await run(MALLORY, SUM_BLOCK, {}, { body })
      return { ...answer, ms: performance.now() - startedAt }
    })
    expect(result.status).toBe(400)
    expect(result.ms).toBeLessThan(1000)
  }, 60_000)

  test('a huge bignum in a forged worker frame freezes nothing', async () => {
    const code = `${FORGE_REPLY}
def run(self):
    forge(cbor2.dumps({"ok": True, "outputs": {"n": cbor2.CBORTag(2, b"\\xff" * 65536)}}))
    return {}
`
    await underAttack(() => run(MALLORY, code))
  }, 60_000)

  test("one key's long runs do not take every worker", async () => {
    const sleep = 'import time\ndef run(self, s):\n    time.sleep(s)\n    return {"slept": s}\n'
    const { result, aliceMaxMs } = await underAttack(async () => {
      const runs = Array.from({ length: 4 }, () => run(MALLORY, sleep, { inputs: { s: 2 } }))
      return Promise.all(runs)
    })
    expect(aliceMaxMs).toBeLessThan(1000) // never queued behind Mallory's runs
    expect(result.filter((r) => r.status === 200).length).toBeGreaterThanOrEqual(2)
  }, 60_000)

  test('what a block starts ends with its run: no process left burning CPU', async () => {
    const code = `import os, time
def run(self):
    for _ in range(4):
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                while True:
                    pass
            os._exit(0)
    time.sleep(0.05)
    return {"started": 4}
`
    await underAttack(async () => {
      for (let i = 0; i < 3; i++) expect((await run(MALLORY, code)).status).toBe(200)
    })
    expect(await cpuCoresUsed()).toBeLessThan(0.3)
  }, 60_000)

  test("a worker's memory limit holds for all its processes together", async () => {
    // Twelve children of 300 MiB each, all at once: 3.5 GiB, under every per-process limit
    // (a worker's address space starts near 500 MiB), over the worker's.
    const code = `import os, time
def run(self):
    children = []
    for _ in range(12):
        pid = os.fork()
        if pid == 0:
            hog = bytearray(300 * 1024 * 1024)
            for i in range(0, len(hog), 4096):
                hog[i] = 1
            time.sleep(1)
            os._exit(0)
        children.append(pid)
    codes = [os.waitpid(pid, 0)[1] for pid in children]
    return {"codes": codes}
`
    const { peak, before } = await underAttack(() => run(MALLORY, code, { timeout_ms: 20_000 }))
    expect(peak.descendantMemoryBytes - before.descendantMemoryBytes).toBeLessThan(
      MEMORY_LIMIT + 200 * MiB,
    )
  }, 60_000)

  test('connections that never say hello cannot fill the server with file descriptors', async () => {
    const socketPath = readdirSync(scratch)
      .map((dir) => join(scratch, dir, 'workers.sock'))
      .find((path) => {
        try {
          readFileSync(path)
        } catch (error) {
          return (error as NodeJS.ErrnoException).code !== 'ENOENT'
        }
        return false
      })
    expect(socketPath).toBeDefined()
    // A block cannot even reach the socket any more.
    const probe = await run(
      MALLORY,
      'import socket\ndef run(self):\n    s = socket.socket(socket.AF_UNIX)\n    try:\n        s.connect("/run/blockgate/workers.sock")\n        return {"reached": True}\n    except OSError as e:\n        return {"reached": type(e).__name__}\n',
    )
    expect(probe.answer.outputs.reached).not.toBe(true)
    const sockets: Socket[] = []
    const { peak, before } = await underAttack(async () => {
      for (let i = 0; i < 300; i++) {
        const socket = createConnection(socketPath!)
        socket.on('error', () => {})
        sockets.push(socket)
      }
      await Bun.sleep(500)
    })
    expect(peak.fds - before.fds).toBeLessThan(60)
    for (const socket of sockets) socket.destroy()
  }, 60_000)

  test("a block cannot see or touch other processes through /proc (the zygote's oom_score_adj)", async () => {
    const zygote = descendants(server.pid).find((p) =>
      readFileSync(`/proc/${p.pid}/cmdline`, 'utf8').includes('runtime.zygote'),
    )
    expect(zygote).toBeDefined()
    const code = `import os
def run(self):
    seen = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    written = []
    for pid in seen:
        try:
            with open(f"/proc/{pid}/oom_score_adj", "w") as f:
                f.write("1000")
            written.append(pid)
        except OSError:
            pass
    return {"seen": seen, "written": written}
`
    const { result } = await underAttack(() => run(MALLORY, code))
    expect(result.answer.outputs.seen).toEqual([1])
    expect(result.answer.outputs.written).toEqual([])
    expect(readFileSync(`/proc/${zygote!.pid}/oom_score_adj`, 'utf8').trim()).toBe('0')
  }, 60_000)

  test('no channel between workspaces: abstract sockets, terminals, /proc, stderr', async () => {
    const secret = `tenant-secret-${crypto.randomUUID()}`
    const plant = `import builtins, os, socket
def run(self):
    server = socket.socket(socket.AF_UNIX)
    server.bind("\\0blockgate-tenant-channel")
    server.listen(8)
    master, slave = os.openpty()
    builtins._kept = (server, master, slave)
    os.write(1, b"${secret}\\n")
    os.write(2, b"${secret}\\n")
    return {"pts": os.listdir("/dev/pts")}
`
    const look = `import os, socket
def run(self):
    found = {"pts": sorted(os.listdir("/dev/pts")), "pids": sorted(p for p in os.listdir("/proc") if p.isdigit())}
    client = socket.socket(socket.AF_UNIX)
    try:
        client.connect("\\0blockgate-tenant-channel")
        found["channel"] = "connected"
    except OSError as e:
        found["channel"] = type(e).__name__
    return found
`
    await underAttack(async () => {
      const planted = await run(MALLORY, plant, { workspace: 'mallory' })
      expect(planted.status).toBe(200)
      // Another workspace of the same key, and another key: neither reaches what was planted.
      for (const [key, workspace] of [
        [MALLORY, 'mallory-2'],
        [ALICE, 'alice'],
      ] as const) {
        const { answer } = await run(key, look, { workspace })
        expect(answer.outputs.channel).not.toBe('connected')
        expect(answer.outputs.pts).toEqual(['ptmx'])
        expect(answer.outputs.pids).toEqual(['1'])
      }
    })
    const ready = await (await fetch(`${server.url}/readyz`)).text()
    expect(ready).not.toContain(secret)
    expect(server.log()).not.toContain(secret)
  }, 60_000)
})
