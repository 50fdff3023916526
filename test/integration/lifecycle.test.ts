// How the server is really run and stopped: signals to its whole process group (a terminal's
// Ctrl-C, systemd's KillMode=control-group) drain in-flight runs like SIGTERM to its pid;
// nothing is left behind by a stop, and what a SIGKILLed instance left is removed by the
// next start; /readyz tells tenants' names to no one without a key.
import { afterAll, describe, expect, test } from 'bun:test'
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SUM_BLOCK } from '../support/http.ts'
import { descendants, startServer, type ServerProcess } from '../support/server-process.ts'

const SLEEP = 'import time\ndef run(self, s):\n    time.sleep(s)\n    return {"slept": s}\n'
const scratch = mkdtempSync(join(tmpdir(), 'blockgate-lifecycle-'))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

function post(server: ServerProcess, body: unknown, key?: string) {
  return fetch(`${server.url}/v1/run`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(key ? { authorization: `Bearer ${key}` } : {}),
    },
    body: JSON.stringify(body),
  })
}

/** The directories and cgroups a server with this pid keeps while it runs. */
function ownedBy(pid: number): string[] {
  const found: string[] = []
  for (const parent of [
    scratch,
    '/dev/shm',
    '/sys/fs/cgroup/memory',
    '/sys/fs/cgroup/pids',
    '/sys/fs/cgroup/cpu',
    '/sys/fs/cgroup',
  ]) {
    try {
      for (const name of readdirSync(parent))
        if (name.startsWith(`blockgate-${pid}`)) found.push(join(parent, name))
    } catch {
      // no such parent on this machine
    }
  }
  return found
}

async function gone(pids: number[], withinMs = 5000): Promise<boolean> {
  const deadline = performance.now() + withinMs
  while (performance.now() < deadline) {
    if (pids.every((pid) => !existsSync(`/proc/${pid}`))) return true
    await Bun.sleep(50)
  }
  return false
}

describe('stopped by a signal to its process group', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    test(`${signal} to the group: the run in flight finishes, the server exits 0 and leaves nothing`, async () => {
      const server = await startServer({
        TMPDIR: scratch,
        BLOCKGATE_MIN_WARM_WORKERS: '1',
        BLOCKGATE_MAX_WORKERS: '2',
      })
      const sandbox = descendants(server.pid).map((p) => p.pid)
      expect(ownedBy(server.pid).length).toBeGreaterThan(0)
      const inflight = post(server, { code: { run_function_code: SLEEP }, inputs: { s: 2 } })
      await Bun.sleep(700)
      server.signalGroup(signal)
      const response = await inflight
      expect(response.status).toBe(200)
      expect(((await response.json()) as { outputs: unknown }).outputs).toEqual({ slept: 2 })
      expect(await server.exited).toBe(0)
      expect(await gone(sandbox)).toBe(true)
      expect(ownedBy(server.pid)).toEqual([])
    }, 60_000)
  }
})

test("SIGTERM to every process of the service (systemd's KillMode=control-group): the run in flight finishes", async () => {
  const server = await startServer({
    TMPDIR: scratch,
    BLOCKGATE_MIN_WARM_WORKERS: '1',
    BLOCKGATE_MAX_WORKERS: '2',
  })
  const inflight = post(server, { code: { run_function_code: SLEEP }, inputs: { s: 2 } })
  await Bun.sleep(700)
  const service = [server.pid, ...descendants(server.pid).map((p) => p.pid)]
  for (const pid of service) {
    try {
      process.kill(pid, 'SIGTERM')
    } catch {
      // gone meanwhile
    }
  }
  const response = await inflight
  expect(response.status).toBe(200)
  expect(await server.exited).toBe(0)
  expect(await gone(service)).toBe(true)
  expect(ownedBy(server.pid)).toEqual([])
}, 60_000)

test('what a SIGKILLed instance left is removed by the next start, and nothing of a running one', async () => {
  const killed = await startServer({
    TMPDIR: scratch,
    BLOCKGATE_MIN_WARM_WORKERS: '1',
    BLOCKGATE_MAX_WORKERS: '2',
  })
  const running = await startServer({
    TMPDIR: scratch,
    BLOCKGATE_MIN_WARM_WORKERS: '1',
    BLOCKGATE_MAX_WORKERS: '2',
  })
  try {
    const sandbox = descendants(killed.pid).map((p) => p.pid)
    process.kill(killed.pid, 'SIGKILL')
    await killed.exited
    expect(await gone(sandbox)).toBe(true) // the sandbox dies with the server
    const left = ownedBy(killed.pid)
    expect(left.length).toBeGreaterThan(0) // its socket directory and shared memory stayed
    const next = await startServer({
      TMPDIR: scratch,
      BLOCKGATE_MIN_WARM_WORKERS: '1',
      BLOCKGATE_MAX_WORKERS: '2',
    })
    try {
      expect(ownedBy(killed.pid)).toEqual([])
      expect(ownedBy(running.pid).length).toBeGreaterThan(0) // a live instance keeps its own
      expect(
        (await post(running, { code: { run_function_code: SUM_BLOCK }, inputs: { a: 1, b: 2 } }))
          .status,
      ).toBe(200)
    } finally {
      await next.stop()
    }
  } finally {
    await running.stop()
  }
}, 90_000)

describe('/readyz', () => {
  const KEY = 'bg_lifecycle-readyz-key-0123456789'
  const sha256 = (text: string) => createHash('sha256').update(text).digest('hex')

  test('without a key it says ready or not per backend, and names no workspace; a key sees only its own', async () => {
    const server = await startServer({
      TMPDIR: scratch,
      BLOCKGATE_MIN_WARM_WORKERS: '1',
      BLOCKGATE_MAX_WORKERS: '3',
      BLOCKGATE_API_KEYS: JSON.stringify({
        keys: [
          { id: 'one', sha256: sha256(KEY), workspaces: ['tenant-one'] },
          { id: 'two', sha256: sha256(`${KEY}-2`), workspaces: ['tenant-two-secret-name'] },
        ],
      }),
    })
    try {
      for (const key of [KEY, `${KEY}-2`])
        expect(
          (
            await post(
              server,
              { code: { run_function_code: SUM_BLOCK }, inputs: { a: 1, b: 2 } },
              key,
            )
          ).status,
        ).toBe(200)
      const anonymous = await (await fetch(`${server.url}/readyz`)).json()
      expect(anonymous).toEqual({
        ready: true,
        default_backend: 'local',
        backends: { local: { ready: true } },
        shared: { mode: 'off' }, // without a key: only whether state is shared, no instance names
      })
      const wrong = await (
        await fetch(`${server.url}/readyz`, { headers: { authorization: 'Bearer bg_not-a-key' } })
      ).json()
      expect(wrong).toEqual(anonymous)
      const own = (await (
        await fetch(`${server.url}/readyz`, { headers: { authorization: `Bearer ${KEY}` } })
      ).json()) as any
      expect(own.backends.local.by_workspace).toEqual({ 'tenant-one': 1 })
      expect(own.backends.local.workers).toBeGreaterThanOrEqual(2)
      expect(JSON.stringify(own)).not.toContain('tenant-two')
    } finally {
      await server.stop()
    }
  }, 60_000)
})
