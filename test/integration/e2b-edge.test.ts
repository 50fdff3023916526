// E2B's edge as it really is (issue 16, rows 4, 7 and 8): the answers it gives itself (403,
// 409, 429) and what the backend does with each; routing by Host on the production route
// (`https://<port>-<id>.<domain>`, no sandbox URL override), over TLS; and the headers it
// forwards to the sandbox. Against the offline stand-in, driven by the real SDK.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Sandbox } from 'e2b'
import type { RunJob } from '../../src/backends/backend.ts'
import { outputsOf, runJob } from '../support/run-job.ts'
import { METADATA } from '../../src/backends/e2b/lifecycle.ts'
import { E2BPool } from '../../src/backends/e2b/pool.ts'
import { EdgeBusy, retryAfterMs, SandboxGone, SandboxRefused } from '../../src/backends/e2b/edge.ts'
import { HttpRuntime } from '../../src/backends/e2b/runtime-http.ts'
import type { E2BConfig } from '../../src/config.ts'
import { defaultTemplateId, RUNTIME_PORT } from '../../src/runtime-template.ts'
import { applyFaultPatch, noFaults } from '../standin/e2b/faults.ts'
import { forwardToSocket } from '../standin/e2b/forward.ts'
import { startStandin, type EdgeAnswer, type Standin } from '../standin/e2b/index.ts'
import { SUM_BLOCK } from '../support/http.ts'
import { standinE2BConfig } from '../support/e2b-config.ts'
import { startServer } from '../support/server-process.ts'

let standin: Standin

beforeAll(async () => {
  standin = await startStandin({ hostEdge: true })
}, 60_000)
afterAll(async () => {
  await standin?.stop()
})

const poolOptions = { maxFrameBytes: 64 << 20, queueTimeoutMs: 20_000 }

async function withPool<T>(
  overrides: Partial<E2BConfig>,
  body: (pool: E2BPool) => Promise<T>,
): Promise<T> {
  const config = standinE2BConfig(
    standin,
    { BLOCKGATE_E2B_MAX_SANDBOXES: '4', BLOCKGATE_E2B_MAX_QUEUE: '8' },
    overrides,
  )
  const pool = new E2BPool(config, poolOptions)
  await pool.start()
  try {
    return await body(pool)
  } finally {
    await pool.stop()
  }
}

const job = (inputs: Record<string, unknown>, timeoutMs = 10_000): RunJob =>
  runJob(SUM_BLOCK, { inputs, workspace: 'edge', timeoutMs })

const sum = (outcome: { outputs: unknown }): unknown => outputsOf(outcome).sum

const alive = (id: string) => standin.alive().some((s) => s.sandboxId === id)
const kills = () => standin.calls.of('DELETE /sandboxes/:id')

/** Runs `body` with the edge answering `answers` for a warm pool's one sandbox; the switch is cleared after. */
async function withEdgeAnswers(
  answers: (sandboxId: string) => EdgeAnswer[],
  body: (pool: E2BPool, sandboxId: string) => Promise<void>,
): Promise<void> {
  await withPool({}, async (pool) => {
    expect(sum(await pool.run(job({ a: 1, b: 1 })))).toBe(2)
    const [warm] = pool.sandboxes()
    standin.faults.edgeAnswers = answers(warm!.id)
    try {
      await body(pool, warm!.id)
    } finally {
      standin.faults.edgeAnswers = []
    }
  })
}

describe("the edge's own answers: what the backend does with each (row 4)", () => {
  test('429 (too many connections, no Retry-After): waited out with backoff; the run succeeds on the same sandbox, which is not killed', async () => {
    await withEdgeAnswers(
      (id) => [{ status: 429, times: 3, sandboxId: id, reason: 'connections' }],
      async (pool, id) => {
        const killsBefore = kills()
        const outcome = await pool.run(job({ a: 2, b: 3 }))
        expect(sum(outcome)).toBe(5)
        expect(outcome.coldStart).toBe(false)
        expect(standin.faults.edgeAnswers).toEqual([]) // all three were answered
        expect(pool.sandboxes().map((s) => s.id)).toEqual([id])
        expect(alive(id)).toBe(true)
        expect(kills()).toBe(killsBefore)
      },
    )
  }, 30_000)

  test("429 with Retry-After (the load balancer's per-IP limit): the wait it asks for is honoured", async () => {
    await withEdgeAnswers(
      (id) => [{ status: 429, times: 1, sandboxId: id, reason: 'ip-throttle', retryAfter: 1 }],
      async (pool, id) => {
        const started = performance.now()
        expect(sum(await pool.run(job({ a: 4, b: 4 })))).toBe(8)
        expect(performance.now() - started).toBeGreaterThanOrEqual(950)
        expect(pool.sandboxes().map((s) => s.id)).toEqual([id])
        expect(alive(id)).toBe(true)
      },
    )
  }, 30_000)

  test('409 (a sandbox still changing state): tried again shortly; the run succeeds on the same sandbox', async () => {
    await withEdgeAnswers(
      (id) => [{ status: 409, times: 2, sandboxId: id }],
      async (pool, id) => {
        const killsBefore = kills()
        expect(sum(await pool.run(job({ a: 5, b: 6 })))).toBe(11)
        expect(pool.sandboxes().map((s) => s.id)).toEqual([id])
        expect(alive(id)).toBe(true)
        expect(kills()).toBe(killsBefore)
      },
    )
  }, 30_000)

  test('429 past the run’s budget: a 503 Overloaded with Retry-After, and the sandbox stays warm for the next run', async () => {
    await withEdgeAnswers(
      (id) => [{ status: 429, times: 10_000, sandboxId: id }],
      async (pool, id) => {
        const started = performance.now()
        const error = await pool.run(job({ a: 1, b: 2 }, 2000)).catch((e) => e)
        expect(error).toBeInstanceOf(EdgeBusy)
        expect(error.status).toBe(503)
        expect(error.type).toBe('Overloaded')
        expect(Number(error.headers['Retry-After'])).toBeGreaterThanOrEqual(1)
        expect(error.message).toContain('HTTP 429')
        expect(performance.now() - started).toBeLessThan(2000) // it gave up before the deadline
        standin.faults.edgeAnswers = []
        const next = await pool.run(job({ a: 2, b: 2 }))
        expect(sum(next)).toBe(4)
        expect(next.coldStart).toBe(false)
        expect(pool.sandboxes().map((s) => s.id)).toEqual([id])
      },
    )
  }, 30_000)

  test('403 (our traffic token refused): the sandbox is retired and the run succeeds on a new one', async () => {
    await withEdgeAnswers(
      (id) => [{ status: 403, times: 10_000, sandboxId: id }],
      async (pool, id) => {
        expect(sum(await pool.run(job({ a: 7, b: 8 })))).toBe(15)
        const ids = pool.sandboxes().map((s) => s.id)
        expect(ids).toHaveLength(1)
        expect(ids).not.toContain(id)
        for (let i = 0; i < 100 && alive(id); i++) await Bun.sleep(50)
        expect(alive(id)).toBe(false)
      },
    )
  }, 30_000)

  test('a real wrong token: the edge answers 403 and the runtime throws SandboxRefused, a SandboxGone', async () => {
    const sandbox = await Sandbox.create(defaultTemplateId(), {
      apiKey: standin.apiKey,
      apiUrl: standin.apiUrl,
      sandboxUrl: standin.sandboxUrl,
      network: { allowPublicTraffic: false },
    })
    try {
      const runtime = new HttpRuntime(
        {
          url: standin.sandboxUrl,
          headers: {
            'E2b-Sandbox-Id': sandbox.sandboxId,
            'E2b-Sandbox-Port': String(RUNTIME_PORT),
            'e2b-traffic-access-token': `${sandbox.trafficAccessToken}x`,
          },
        },
        1 << 20,
      )
      const error = (await runtime.request({ op: 'ping' }, 5000).catch((e: Error) => e)) as Error
      expect(error).toBeInstanceOf(SandboxRefused)
      expect(error).toBeInstanceOf(SandboxGone)
      expect(error.message).toContain('HTTP 403')
      expect(error.message).toContain(
        "Provided token in header 'e2b-traffic-access-token' is invalid",
      )
    } finally {
      await sandbox.kill()
    }
  }, 30_000)

  test('Retry-After is read as seconds or as a date', () => {
    expect(retryAfterMs('2')).toBe(2000)
    expect(retryAfterMs(null)).toBeNull()
    expect(retryAfterMs('soon')).toBeNull()
    const inThree = retryAfterMs(new Date(Date.now() + 3000).toUTCString())!
    expect(inThree).toBeGreaterThan(1000)
    expect(inThree).toBeLessThanOrEqual(3000)
  })
})

describe("the stand-in's edge answers as E2B's does", () => {
  const edge = (id: string, port: number, path = '/health') =>
    fetch(`${standin.sandboxUrl}${path}`, {
      headers: { 'E2b-Sandbox-Id': id, 'E2b-Sandbox-Port': String(port) },
    })

  test('edgeAnswers: each status with the body of infra’s templates, counted down, for one sandbox or all', async () => {
    const id = 'iabcdefghij0123456789'
    standin.faults.edgeAnswers = [
      { status: 403, times: 1, sandboxId: id },
      { status: 403, times: 1, sandboxId: id, reason: 'resume-denied' },
      { status: 409, times: 1 },
      { status: 429, times: 1, port: 8000 },
      { status: 429, times: 1, reason: 'ip-throttle', retryAfter: 2 },
    ]
    try {
      const answers = []
      for (let i = 0; i < 5; i++) answers.push(await edge(id, 8000))
      expect(answers.map((r) => r.status)).toEqual([403, 403, 409, 429, 429])
      expect(answers.slice(0, 4).map((r) => r.headers.get('content-type'))).toEqual(
        Array(4).fill('application/json; charset=utf-8'),
      )
      expect(answers.slice(0, 4).every((r) => !r.headers.has('retry-after'))).toBe(true)
      expect(await answers[0]!.json()).toEqual({
        sandboxId: id,
        message:
          "Sandbox is secured with traffic access token. Provided token in header 'e2b-traffic-access-token' is invalid",
        code: 403,
      })
      expect(((await answers[1]!.json()) as { message: string }).message).toContain(
        "can't be resumed with the credentials provided",
      )
      expect(await answers[2]!.json()).toEqual({
        sandboxId: id,
        message: 'The sandbox is still transitioning. Try again in a moment.',
        code: 409,
      })
      expect(await answers[3]!.json()).toMatchObject({
        sandboxId: id,
        code: 429,
        connectionLimit: 1000,
      })
      expect(answers[4]!.headers.get('retry-after')).toBe('2')
      expect(await answers[4]!.text()).toContain('429 Too Many Requests')
      expect(standin.faults.edgeAnswers).toEqual([])
      // Used up: the edge is itself again (this sandbox does not exist).
      expect((await edge(id, 8000)).status).toBe(502)
    } finally {
      standin.faults.edgeAnswers = []
    }
  })

  test('the switch is checked like every other', () => {
    const faults = noFaults()
    expect(() => applyFaultPatch(faults, { edgeAnswers: [{ status: 500, times: 1 }] })).toThrow(
      'edgeAnswers: [0].status must be 403, 409 or 429',
    )
    expect(() =>
      applyFaultPatch(faults, { edgeAnswers: [{ status: 409, times: 1, reason: 'connections' }] }),
    ).toThrow('is a 429, not a 409')
    applyFaultPatch(faults, { edgeAnswers: [{ status: 429, times: 2, retryAfter: 1 }] })
    expect(faults.edgeAnswers).toHaveLength(1)
  })

  test('routing as infra’s GetTargetFromRequest: the Host on a sandbox host, headers on an IP; 400s as Go writes them', async () => {
    const sandbox = await Sandbox.create(defaultTemplateId(), {
      apiKey: standin.apiKey,
      apiUrl: standin.apiUrl,
      sandboxUrl: standin.sandboxUrl,
    })
    const ca = readFileSync(standin.caFile!, 'utf8')
    const https = (host: string, headers: Record<string, string> = {}) =>
      fetch(`https://${host}.${standin.domain}/health`, { headers, tls: { ca } })
    try {
      const byHost = await https(`${RUNTIME_PORT}-${sandbox.sandboxId}`, {
        // Ignored on a per-sandbox host, as on E2B's.
        'E2b-Sandbox-Id': 'inothere0000000000000',
        'E2b-Sandbox-Port': '1',
      })
      expect(byHost.status).toBe(200)
      expect(await byHost.json()).toMatchObject({ ok: true })
      expect((await https(`${RUNTIME_PORT}-inothere0000000000000`)).status).toBe(502)
      const badPort = await https(`port-${sandbox.sandboxId}`)
      expect(badPort.status).toBe(400)
      expect(await badPort.text()).toBe('Invalid sandbox port\n')
      const badHost = await https('nohyphen')
      expect(badHost.status).toBe(400)
      expect(await badHost.text()).toBe('Invalid host\n')
      const badId = await https(`${RUNTIME_PORT}-not_an_id`)
      expect(badId.status).toBe(400)
      expect(await badId.text()).toBe('Invalid sandbox ID\n')
      // The API on api.<domain>, as the SDK's default apiUrl reaches it.
      const listed = await fetch(`https://api.${standin.domain}/v2/sandboxes`, {
        headers: { 'X-API-KEY': standin.apiKey },
        tls: { ca },
      })
      expect(listed.status).toBe(200)
      // Headers on an IP host; one missing is a 400.
      expect((await edge(sandbox.sandboxId, RUNTIME_PORT)).status).toBe(200)
      const missing = await fetch(`${standin.sandboxUrl}/health`, {
        headers: { 'E2b-Sandbox-Id': sandbox.sandboxId },
      })
      expect(missing.status).toBe(400)
      expect(await missing.text()).toBe('missing header\n')
      // The certificate is checked: untrusted without the stand-in's CA.
      const untrusted = await fetch(
        `https://${RUNTIME_PORT}-${sandbox.sandboxId}.${standin.domain}/health`,
      ).catch((e: Error) => e)
      expect(untrusted).toBeInstanceOf(Error)
    } finally {
      await sandbox.kill()
    }
  }, 30_000)

  test('the traffic and envd tokens reach the sandbox’s server, as E2B’s edge forwards them (row 8)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'edge-forward-'))
    const socket = join(dir, 'echo.sock')
    const echo = Bun.serve({
      unix: socket,
      fetch: (request) => Response.json(Object.fromEntries(request.headers)),
    })
    try {
      const forwarded = await forwardToSocket(
        new Request('https://8000-iabc.e2b.localhost/frame', {
          headers: {
            'e2b-traffic-access-token': 'traffic-token',
            'X-Access-Token': 'envd-token',
            'X-Forwarded-For': '10.0.0.1',
            Connection: 'keep-alive',
          },
        }),
        socket,
      )
      const seen = (await forwarded.json()) as Record<string, string>
      expect(seen['e2b-traffic-access-token']).toBe('traffic-token')
      expect(seen['x-access-token']).toBe('envd-token')
      expect(seen['x-forwarded-for']).toBeUndefined() // Go's Rewrite drops it
    } finally {
      await echo.stop(true)
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('the production route: no sandbox URL, the SDK builds each host (row 7)', () => {
  const MODES = [
    { mode: 'template', route: 'https://8000-<id>.<domain>' },
    {
      mode: 'code-interpreter',
      route: 'https://49983-<id>.<domain> and https://49999-<id>.<domain>',
    },
  ] as const
  test.each(MODES)(
    '$mode mode: a server with only E2B_DOMAIN (and the CA it trusts) runs blocks through $route',
    async ({ mode }) => {
      // What the test relies on for name resolution: Bun answers *.localhost with loopback itself.
      const [resolved] = await Bun.dns.lookup(`8000-iprobe.${standin.domain!.split(':')[0]}`)
      expect(resolved?.address).toBe('127.0.0.1')
      const before = { ...standin.calls.routedBy }
      const deployment = `host-route-${mode}-${process.pid}`
      const ownSandboxes = () =>
        standin.alive().filter((s) => s.metadata[METADATA.deployment] === deployment)
      const server = await startServer({
        BLOCKGATE_LOG_LEVEL: 'error',
        WORKFLOWS_CUSTOM_PYTHON_EXECUTION_MODE: 'e2b',
        E2B_API_KEY: standin.apiKey,
        E2B_DOMAIN: standin.domain!,
        // Unset (an empty value is unset for blockgate and for the SDK): the SDK's defaults,
        // https://api.<domain> and https://<port>-<id>.<domain>, are what runs.
        E2B_API_URL: '',
        E2B_SANDBOX_URL: '',
        NODE_EXTRA_CA_CERTS: standin.caFile!,
        BLOCKGATE_E2B_MODE: mode,
        BLOCKGATE_E2B_CREATES_PER_SECOND: '100',
        BLOCKGATE_DEPLOYMENT_ID: deployment,
        BLOCKGATE_MIN_WARM_WORKERS: '0',
      })
      try {
        for (const [a, b] of [
          [1, 2],
          [3, 4],
        ]) {
          const response = await fetch(`${server.url}/v1/run`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({
              code: { run_function_code: SUM_BLOCK },
              inputs: { a, b },
              workspace: 'hosts',
            }),
          })
          const answer = (await response.json()) as { outputs: { sum: number } }
          expect(response.status).toBe(200)
          expect(answer.outputs.sum).toBe(a! + b!)
        }
        // Every request to the sandbox was routed by its Host; none carried routing headers.
        expect(standin.calls.routedBy.host - before.host).toBeGreaterThanOrEqual(2)
        expect(standin.calls.routedBy.headers - before.headers).toBe(0)
        expect(ownSandboxes()).toHaveLength(1) // one sandbox, reused warm
      } finally {
        await server.stop()
      }
      // It killed its sandbox on the way out, through https://api.<domain>.
      expect(ownSandboxes()).toEqual([])
    },
    60_000,
  )
})
