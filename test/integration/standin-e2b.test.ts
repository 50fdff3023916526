// The offline E2B stand-in (test/standin/e2b), driven by the real `e2b` and
// `@e2b/code-interpreter` SDKs exactly as blockgate's E2B backend drives E2B.
import { Sandbox as CodeSandbox } from '@e2b/code-interpreter'
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  AuthenticationError,
  FileNotFoundError,
  NotFoundError,
  RateLimitError,
  Sandbox,
  SandboxError,
  SandboxNotFoundError,
  ServiceBusyError,
  TimeoutError,
} from 'e2b'
import { defaultTemplateId, RUNTIME_PORT } from '../../src/runtime-template.ts'
import { encodeFrame, FrameReader } from '../../src/backends/framing.ts'
import { Contract, loadSpecs } from '../standin/e2b/contract.ts'
import { noFaults } from '../standin/e2b/faults.ts'
import { startStandin, type Standin } from '../standin/e2b/index.ts'
import { keepAliveSeconds, requestedTimeout } from '../standin/e2b/plan.ts'
import { processTree } from '../standin/e2b/process-tree.ts'

let standin: Standin
let connection: { apiKey: string; apiUrl: string; sandboxUrl: string }

beforeAll(async () => {
  standin = await startStandin()
  connection = { apiKey: standin.apiKey, apiUrl: standin.apiUrl, sandboxUrl: standin.sandboxUrl }
})
afterAll(() => standin?.stop())
afterEach(() => {
  Object.assign(standin.faults, noFaults())
})

/** Every sandbox a test made is killed at its end, so tests never see each other's. */
const made: Sandbox[] = []
afterEach(async () => {
  await Promise.all(made.splice(0).map((sandbox) => sandbox.kill().catch(() => {})))
})

async function create(
  template = 'base',
  options: Parameters<typeof Sandbox.create>[1] = {},
): Promise<Sandbox> {
  const sandbox = await Sandbox.create(template, { ...connection, ...options })
  made.push(sandbox)
  return sandbox
}

async function listAll(query: NonNullable<Parameters<typeof Sandbox.list>[0]>['query'] = {}) {
  return (await Sandbox.list({ ...connection, query }).nextItems()).map((info) => info.sandboxId)
}

const processState = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]
}
const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

async function expectRejects<T extends Error>(
  promise: Promise<unknown>,
  errorClass: new (...args: never[]) => T,
): Promise<T> {
  const error = await promise.then(
    () => null,
    (error: unknown) => error,
  )
  expect(error).toBeInstanceOf(errorClass)
  return error as T
}

/** A raw request to a sandbox port through the edge, as the SDK addresses it. */
function edge(
  sandboxId: string,
  port: number,
  path: string,
  init: RequestInit & { headers?: Record<string, string> } = {},
) {
  return fetch(`${standin.sandboxUrl}${path}`, {
    ...init,
    headers: { 'E2b-Sandbox-Id': sandboxId, 'E2b-Sandbox-Port': String(port), ...init.headers },
  })
}

describe('control plane', () => {
  test('create with metadata: listed by its metadata, not by other metadata; the body arrives as sent', async () => {
    const sandbox = await create('base', { metadata: { workspace: 'acme corp', role: 'a&b=c' } })
    expect(await listAll({ metadata: { workspace: 'acme corp' } })).toEqual([sandbox.sandboxId])
    expect(await listAll({ metadata: { workspace: 'acme corp', role: 'a&b=c' } })).toEqual([
      sandbox.sandboxId,
    ])
    expect(await listAll({ metadata: { workspace: 'other' } })).toEqual([])
    expect(await listAll({ metadata: { workspace: 'acme corp', role: 'x' } })).toEqual([])

    const body = standin.calls.creates.at(-1) as Record<string, unknown>
    expect(body.templateID).toBe('base')
    expect(body.metadata).toEqual({ workspace: 'acme corp', role: 'a&b=c' })
    expect(body.envVars).toBeUndefined()
    expect(standin.calls.of('POST /v2/sandboxes')).toBeGreaterThan(0)
    expect(standin.calls.of('GET /v2/sandboxes')).toBeGreaterThanOrEqual(4)
  })

  test('list shows exactly what is alive, in pages joined by the next token', async () => {
    const sandboxes = await Promise.all([create(), create(), create()])
    const ids = sandboxes.map((sandbox) => sandbox.sandboxId)
    expect(new Set(await listAll())).toEqual(
      new Set(standin.alive().map((sandbox) => sandbox.sandboxId)),
    )

    const paginator = Sandbox.list({ ...connection, limit: 2 })
    const seen: string[] = []
    while (paginator.hasNext)
      seen.push(...(await paginator.nextItems()).map((info) => info.sandboxId))
    expect(seen.length).toBe(3)
    expect(new Set(seen)).toEqual(new Set(ids))
  })

  test('getInfo, connect and setTimeout move the end time; connect only ever extends it', async () => {
    const sandbox = await create('base', { timeoutMs: 60_000 })
    const info = await Sandbox.getInfo(sandbox.sandboxId, connection)
    expect(info).toMatchObject({
      sandboxId: sandbox.sandboxId,
      templateId: 'base',
      state: 'running',
      envdVersion: '0.5.7',
    })

    await sandbox.setTimeout(600_000)
    const extended = (await sandbox.getInfo()).endAt.getTime()
    expect(extended - Date.now()).toBeGreaterThan(590_000)

    const again = await Sandbox.connect(sandbox.sandboxId, { ...connection, timeoutMs: 10_000 })
    expect(again.sandboxId).toBe(sandbox.sandboxId)
    expect((await again.getInfo()).endAt.getTime()).toBe(extended)
    expect(await again.isRunning()).toBe(true)

    await sandbox.setTimeout(5_000) // setTimeout may shorten it
    expect((await sandbox.getInfo()).endAt.getTime() - Date.now()).toBeLessThan(6_000)
  })

  test('a sandbox expires at its timeout: killed, its processes gone, gone from the list', async () => {
    const sandbox = await create('base', { timeoutMs: 1_000 })
    const pids = standin.alive().find((s) => s.sandboxId === sandbox.sandboxId)!.pids
    expect(pids.length).toBeGreaterThan(0)
    expect(await listAll()).toContain(sandbox.sandboxId)
    await Bun.sleep(1_300)
    expect(await listAll()).not.toContain(sandbox.sandboxId)
    expect(pids.filter(isAlive)).toEqual([])
    expect(await sandbox.isRunning()).toBe(false) // the edge answers 502 for it
  })

  test('kill: gone at once; a second kill reports it was not found', async () => {
    const sandbox = await create()
    expect(await sandbox.kill()).toBe(true)
    expect(await listAll()).not.toContain(sandbox.sandboxId)
    expect(await Sandbox.kill(sandbox.sandboxId, connection)).toBe(false)
    await expectRejects(Sandbox.getInfo(sandbox.sandboxId, connection), SandboxNotFoundError)
  })

  test('pause freezes every process and lists it as paused; connect resumes it with its state', async () => {
    const sandbox = await CodeSandbox.create({ ...connection })
    made.push(sandbox)
    await sandbox.runCode('counter = 41')
    const pids = standin.alive().find((s) => s.sandboxId === sandbox.sandboxId)!.pids

    expect(await sandbox.pause()).toBe(true)
    expect(await sandbox.pause()).toBe(false) // already paused: 409
    expect(pids.map(processState).every((state) => state === 'T')).toBe(true)
    expect(await listAll({ state: ['paused'] })).toEqual([sandbox.sandboxId])
    expect(await listAll({ state: ['running'] })).not.toContain(sandbox.sandboxId)
    expect(await sandbox.isRunning()).toBe(false)

    await CodeSandbox.connect(sandbox.sandboxId, connection)
    expect(pids.map(processState).some((state) => state === 'T')).toBe(false)
    expect(await listAll({ state: ['running'] })).toContain(sandbox.sandboxId)
    expect((await sandbox.runCode('counter + 1')).text).toBe('42')
  })

  test('a wrong API key is an AuthenticationError', async () => {
    const wrong = { ...connection, apiKey: 'e2b_wrong' }
    await expectRejects(Sandbox.create('base', wrong), AuthenticationError)
    await expectRejects(Sandbox.list(wrong).nextItems(), AuthenticationError)
    const response = await fetch(`${standin.apiUrl}/v2/sandboxes`)
    expect(response.status).toBe(401)
    expect(await response.json()).toEqual({ code: 401, message: expect.any(String) })
  })

  test('an unknown template is refused with 404', async () => {
    const error = await expectRejects(Sandbox.create('no-such-template', connection), SandboxError)
    expect(error.message).toContain('404')
  })
})

describe('fault switches', () => {
  test('rateLimitCreates: 429 with Retry-After, a RateLimitError once the SDK stops retrying', async () => {
    standin.faults.rateLimitCreates = 1
    standin.faults.retryAfterSeconds = 7
    const response = await fetch(`${standin.apiUrl}/v2/sandboxes`, {
      method: 'POST',
      headers: { 'X-API-KEY': standin.apiKey, 'Content-Type': 'application/json' },
      body: JSON.stringify({ templateID: 'base' }),
    })
    expect(response.status).toBe(429)
    expect(response.headers.get('Retry-After')).toBe('7')

    standin.faults.rateLimitCreates = 1
    await expectRejects(Sandbox.create('base', { ...connection, retries: 0 }), RateLimitError)
    expect(standin.faults.rateLimitCreates).toBe(0)
  })

  test('rateLimitCreates: the SDK waits Retry-After and retries', async () => {
    standin.faults.rateLimitCreates = 1
    standin.faults.retryAfterSeconds = 1
    const started = performance.now()
    await create()
    expect(performance.now() - started).toBeGreaterThanOrEqual(1_000)
  })

  test('serviceUnavailableCreates: 503, a ServiceBusyError', async () => {
    standin.faults.serviceUnavailableCreates = 2
    await expectRejects(Sandbox.create('base', connection), ServiceBusyError)
    await expectRejects(Sandbox.create('base', connection), ServiceBusyError)
    await create() // the switch counted down
  })

  test('unauthorized: every call 401, even with the right key; the admin route still answers', async () => {
    const admin = (body: unknown) =>
      fetch(`${standin.apiUrl}/_standin/faults`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      })
    expect((await admin({ unauthorized: true })).status).toBe(200)
    expect(standin.faults.unauthorized).toBe(true)
    await expectRejects(Sandbox.list(connection).nextItems(), AuthenticationError)
    await expectRejects(Sandbox.create('base', connection), AuthenticationError)
    expect((await admin({ unauthorized: false })).status).toBe(200)
    await Sandbox.list(connection).nextItems()

    const refused = await admin({ unauthorized: 'yes', bogus: 1 })
    expect(refused.status).toBe(400)
    expect(((await refused.json()) as { message: string }).message).toContain('bogus')
    expect(await (await fetch(`${standin.apiUrl}/_standin/faults`)).json()).toMatchObject({
      unauthorized: false,
    })
  })

  test('notFoundIds: a live sandbox answers as if it vanished, on the API and at the edge', async () => {
    const sandbox = await create()
    standin.faults.notFoundIds = [sandbox.sandboxId]
    await expectRejects(sandbox.getInfo(), SandboxNotFoundError)
    await expectRejects(sandbox.setTimeout(10_000), NotFoundError)
    await expectRejects(Sandbox.connect(sandbox.sandboxId, connection), SandboxNotFoundError)
    expect(await Sandbox.kill(sandbox.sandboxId, connection)).toBe(false)
    expect(await sandbox.isRunning()).toBe(false)
    await expectRejects(sandbox.files.read('anything'), TimeoutError)
    expect(standin.alive().map((s) => s.sandboxId)).toContain(sandbox.sandboxId) // still there underneath
    standin.faults.notFoundIds = []
    expect(await sandbox.isRunning()).toBe(true)
  })

  test('slowCreateMs: each create takes at least that long', async () => {
    standin.faults.slowCreateMs = 400
    const started = performance.now()
    await create()
    expect(performance.now() - started).toBeGreaterThanOrEqual(400)
  })

  test('maxConcurrent: creates beyond the cap are a RateLimitError, paused ones do not count', async () => {
    const first = await create()
    standin.faults.maxConcurrent = standin.alive().length
    await expectRejects(Sandbox.create('base', connection), RateLimitError)
    await first.pause()
    await create()
  })
})

/** A create sent as raw HTTP, as the SDK sends it, for what the SDK does not show (headers, ids). */
function rawCreate(
  body: Record<string, unknown>,
  apiUrl = standin.apiUrl,
  apiKey = standin.apiKey,
) {
  return fetch(`${apiUrl}/v2/sandboxes`, {
    method: 'POST',
    headers: { 'X-API-KEY': apiKey, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  })
}

describe("E2B's defaults and plans", () => {
  test("a create that names no timeout gets v2's 300 s; sandbox ids are in E2B's form", async () => {
    const response = await rawCreate({ templateID: 'base' })
    expect(response.status).toBe(201)
    const { sandboxID } = (await response.json()) as { sandboxID: string }
    try {
      expect(sandboxID).toMatch(/^i[a-z0-9]{20}$/) // "i" and 20 lowercase letters or digits
      const info = await Sandbox.getInfo(sandboxID, connection)
      expect(info.endAt.getTime() - info.startedAt.getTime()).toBe(300_000)
    } finally {
      await Sandbox.kill(sandboxID, connection)
    }
  })

  test("hobby (the default) caps a life at 1 h: a longer create or connect is E2B's 400, setTimeout is cut to it", async () => {
    expect(standin.faults.plan).toBe('hobby')
    const refused = await expectRejects(create('base', { timeoutMs: 3_601_000 }), SandboxError)
    expect(refused.message).toBe('400: Timeout cannot be greater than 1 hours')
    const zero = await rawCreate({ templateID: 'base', timeout: 0 })
    expect(zero.status).toBe(400)
    expect(((await zero.json()) as { message: string }).message).toBe(
      'Timeout must be greater than 0',
    )

    const sandbox = await create('base', { timeoutMs: 60_000 })
    await sandbox.setTimeout(7_200_000) // taken, but cut to the hour from its start
    const info = await sandbox.getInfo()
    expect(info.endAt.getTime() - info.startedAt.getTime()).toBeWithin(3_599_000, 3_600_001)
    const tooLong = await expectRejects(
      Sandbox.connect(sandbox.sandboxId, { ...connection, timeoutMs: 7_200_000 }),
      SandboxError,
    )
    expect(tooLong.message).toBe('400: Timeout cannot be greater than 1 hours')
  })

  test('pro caps a life at 24 h; the plan is a start option and a switch', async () => {
    standin.faults.plan = 'pro'
    const sandbox = await create('base', { timeoutMs: 7_200_000 })
    const info = await sandbox.getInfo()
    expect(info.endAt.getTime() - info.startedAt.getTime()).toBe(7_200_000)
    const refused = await expectRejects(create('base', { timeoutMs: 86_401_000 }), SandboxError)
    expect(refused.message).toBe('400: Timeout cannot be greater than 24 hours')

    const own = await startStandin({ plan: 'pro' })
    expect(own.faults.plan).toBe('pro')
    await own.stop()
    await expect(startStandin({ faults: { plan: 'enterprise' as never } })).rejects.toThrow(
      'plan: must be one of hobby, pro',
    )
  })

  test("plan.ts: a keep-alive is cut to the life left, and refused once it is spent (E2B's KeepAliveFor)", () => {
    const started = new Date(0)
    expect(keepAliveSeconds(600, started, 3600, 1_000_000)).toBe(600)
    expect(keepAliveSeconds(7200, started, 3600, 1_000_000)).toBe(2600) // 1000 s lived
    expect(keepAliveSeconds(-5, started, 3600, 1_000_000)).toBe(0)
    expect(() => keepAliveSeconds(60, started, 3600, 3_601_000)).toThrow(
      'Max instance length exceeded',
    )
    expect(requestedTimeout(undefined, 'hobby')).toBe(300)
    expect(() => requestedTimeout(1.5, 'pro')).toThrow('not an int32')
  })

  test('slowKillMs: a kill lands that much later; until then the sandbox holds its slot, and a create past the cap is a 429 without Retry-After', async () => {
    const first = await create()
    standin.faults.maxConcurrent = standin.alive().length
    standin.faults.slowKillMs = 800
    const started = performance.now()
    const killing = Sandbox.kill(first.sandboxId, connection)
    await Bun.sleep(100)
    expect(standin.alive().map((s) => s.sandboxId)).toContain(first.sandboxId)
    const refused = await rawCreate({ templateID: 'base' })
    expect(refused.status).toBe(429)
    expect(refused.headers.get('Retry-After')).toBeNull()
    expect(((await refused.json()) as { message: string }).message).toContain(
      'you have reached the maximum number of concurrent E2B sandboxes',
    )
    expect(await killing).toBe(true)
    expect(performance.now() - started).toBeGreaterThanOrEqual(800)
    expect(standin.alive().map((s) => s.sandboxId)).not.toContain(first.sandboxId)
    await create() // the slot is free once the kill has landed
  })
})

describe("the contract: E2B's published spec", () => {
  test('calls and answers outside the spec are recorded, and stop() then throws; known ones are only counted', async () => {
    const own = await startStandin()
    const options = { apiKey: own.apiKey, apiUrl: own.apiUrl, sandboxUrl: own.sandboxUrl }
    const sandbox = await Sandbox.create('base', options)
    expect(own.contract.known.get('spec-behind-sdk: v2 create')).toBe(1)
    expect(own.contract.divergences).toEqual([])

    const headers = { 'X-API-KEY': own.apiKey, 'Content-Type': 'application/json' }
    await fetch(`${own.apiUrl}/sandboxes/${sandbox.sandboxId}/timeout`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ timeout: 'soon' }),
    })
    await fetch(`${own.apiUrl}/sandboxes/${sandbox.sandboxId}/metrics`, { headers }) // 501 here
    await fetch(`${own.apiUrl}/no/such/route`, { headers })
    await fetch(`${own.sandboxUrl}/files?path=a.txt`, {
      method: 'PUT',
      headers: {
        'E2b-Sandbox-Id': sandbox.sandboxId,
        'E2b-Sandbox-Port': '49983',
        'X-Access-Token': sandbox['envdAccessToken']!,
      },
    })
    expect(own.contract.divergences).toEqual([
      {
        api: 'control-plane',
        method: 'POST',
        path: `/sandboxes/${sandbox.sandboxId}/timeout`,
        route: 'POST /sandboxes/{sandboxID}/timeout',
        side: 'request',
        status: null,
        message: '/requestBody/timeout must be integer',
      },
      expect.objectContaining({
        route: 'GET /sandboxes/{sandboxID}/metrics',
        side: 'response',
        status: 501,
        message: expect.stringContaining('status 501 is not documented'),
      }),
      expect.objectContaining({ path: '/no/such/route', route: null, side: 'route' }),
      expect.objectContaining({ api: 'envd', method: 'PUT', path: '/files', side: 'route' }),
    ])
    expect(own.contract.known.get('service-beyond-spec: 400 on setTimeout')).toBe(1)
    const seen = (await (await fetch(`${own.apiUrl}/_standin/contract`)).json()) as {
      divergences: unknown[]
      known: Record<string, number>
    }
    expect(seen.divergences.length).toBe(4)
    expect(seen.known['spec-behind-sdk: v2 create']).toBe(1)
    await expect(own.stop()).rejects.toThrow('4 divergence(s)')
    expect(own.alive()).toEqual([]) // stopped all the same
  })
})

describe("the contract: E2B's code-interpreter server", () => {
  /** A call to a sandbox's code interpreter, answered by `answer` through the contract's check. */
  async function throughContract(body: unknown, answer: Response) {
    const contract = new Contract(await loadSpecs())
    const serve = contract.edge(async (_request: Request) => answer)
    const response = await serve(
      new Request('http://127.0.0.1/execute', {
        method: 'POST',
        headers: {
          'E2b-Sandbox-Id': 'i0123456789abcdefghij',
          'E2b-Sandbox-Port': '49999',
          'Content-Type': 'application/json',
        },
        body: JSON.stringify(body),
      }),
    )
    const text = await response.text() // the stream is checked as it is read
    return { contract, text }
  }
  const lines = (...values: unknown[]) => values.map((v) => `${JSON.stringify(v)}\n`).join('')

  test("runCode's calls and the stand-in's streamed answers follow the server's document and models", async () => {
    const own = await startStandin()
    const sandbox = await CodeSandbox.create({
      apiKey: own.apiKey,
      apiUrl: own.apiUrl,
      sandboxUrl: own.sandboxUrl,
    })
    const run = await sandbox.runCode('import sys\nprint("a")\nprint("b", file=sys.stderr)\n1/0')
    expect(run.error?.name).toBe('ZeroDivisionError')
    expect((await sandbox.runCode('40 + 2')).text).toBe('42')
    expect(own.contract.divergences).toEqual([])
    await own.stop() // throws on any divergence
  })

  test('a streamed line outside the models, or a stream with no end, is a divergence', async () => {
    const good = lines(
      { type: 'stdout', text: 'hi\n', timestamp: '2026-11-28T10:00:00.123456Z' },
      { type: 'result', text: '2', is_main_result: true, extra: {} },
      { type: 'error', name: 'E', value: 'v', traceback: '' },
      { type: 'keepalive' },
      { type: 'number_of_executions', execution_count: 3 },
      { type: 'end_of_execution' },
    )
    const fine = await throughContract({ code: 'x' }, new Response(good))
    expect(fine.text).toBe(good) // passed through unchanged
    expect(fine.contract.divergences).toEqual([])

    const bad = await throughContract(
      { code: 'x' },
      new Response(
        `${lines({ type: 'stdout', text: 1 }, { type: 'stdout', text: 'x', pid: 7 }, { type: 'progress' })}not json\n`,
      ),
    )
    expect(bad.contract.divergences.map((d) => [d.api, d.route, d.side, d.message])).toEqual([
      [
        'code-interpreter',
        'POST /execute',
        'stream',
        expect.stringContaining('/text must be string'),
      ],
      [
        'code-interpreter',
        'POST /execute',
        'stream',
        expect.stringContaining('must NOT have additional properties (pid)'),
      ],
      [
        'code-interpreter',
        'POST /execute',
        'stream',
        'line {"type":"progress"}: / value of tag "type" must be in oneOf',
      ],
      ['code-interpreter', 'POST /execute', 'stream', 'a line that is not JSON: not json'],
      [
        'code-interpreter',
        'POST /execute',
        'stream',
        'the stream ends without {"type": "end_of_execution"}',
      ],
    ])
  })

  test("a request outside ExecutionRequest, and the server's own error answers, are checked", async () => {
    const refused = await throughContract(
      { code: 1, env_vars: { A: 2 } },
      Response.json(
        { detail: [{ loc: ['body', 'code'], msg: 'bad', type: 'string_type' }] },
        { status: 422 },
      ),
    )
    expect(refused.contract.divergences.map((d) => [d.side, d.message])).toEqual([
      ['request', '/requestBody/code must be string'],
      ['request', '/requestBody/env_vars/A must be string'],
      ['request', '/requestBody/env_vars must be null'],
      ['request', '/requestBody/env_vars must match a schema in anyOf'],
    ])

    const both = await throughContract(
      { code: 'x', context_id: 'c', language: 'python' },
      new Response('Only one of context_id or language can be provided', {
        status: 400,
        headers: { 'Content-Type': 'text/plain; charset=utf-8' }, // Starlette's PlainTextResponse
      }),
    )
    expect(both.contract.divergences).toEqual([])
    expect(both.contract.known.get('code-beyond-document: 400 on execute')).toBe(1)

    const unlike = await throughContract(
      { code: 'x' },
      Response.json({ message: 'nope' }, { status: 400 }), // not what the server answers
    )
    expect(unlike.contract.divergences).toEqual([
      expect.objectContaining({
        side: 'response',
        status: 400,
        message: expect.stringContaining('status 400 is not documented'),
      }),
    ])
  })
})

describe('data plane', () => {
  test('an unknown sandbox answers 502 at the edge, which the SDK reads as gone', async () => {
    const response = await edge('nosuchsandbox', 49983, '/health')
    expect(response.status).toBe(502)
    const ghost = await Sandbox.connect('x', connection).catch((error: unknown) => error)
    expect(ghost).toBeInstanceOf(SandboxNotFoundError)
  })

  test('envd: the access token is required on the envd port (not for /health)', async () => {
    const sandbox = await create()
    expect(sandbox['envdAccessToken']).toBeString()
    await sandbox.files.write('note.txt', 'hello')
    expect((await edge(sandbox.sandboxId, 49983, '/files?path=note.txt')).status).toBe(401)
    expect(
      (
        await edge(sandbox.sandboxId, 49983, '/files?path=note.txt', {
          headers: { 'X-Access-Token': 'wrong' },
        })
      ).status,
    ).toBe(401)
    const allowed = await edge(sandbox.sandboxId, 49983, '/files?path=note.txt', {
      headers: { 'X-Access-Token': sandbox['envdAccessToken']! },
    })
    expect(await allowed.text()).toBe('hello')
    expect((await edge(sandbox.sandboxId, 49983, '/health')).status).toBe(204)
  })

  test('files: write and read round-trip bytes that are not UTF-8, in single and array form', async () => {
    const sandbox = await create()
    const bytes = new Uint8Array([0xff, 0xfe, 0x00, 0x80, 0xc3, 0x28, 0x0a])
    const info = await sandbox.files.write('/home/user/data/raw.bin', bytes.buffer)
    expect(info).toMatchObject({ name: 'raw.bin', path: '/home/user/data/raw.bin' })
    expect(await sandbox.files.read('data/raw.bin', { format: 'bytes' })).toEqual(bytes)

    const written = await sandbox.files.write([
      { path: 'a.txt', data: 'alpha' },
      { path: '/home/user/b/b.bin', data: new Blob([new Uint8Array([1, 2, 3])]) },
    ])
    expect(written.map((entry) => entry.path)).toEqual(['/home/user/a.txt', '/home/user/b/b.bin'])
    expect(await sandbox.files.read('a.txt')).toBe('alpha')
    expect(await sandbox.files.read('/home/user/b/b.bin', { format: 'bytes' })).toEqual(
      new Uint8Array([1, 2, 3]),
    )
    expect(
      await sandbox.files.read('empty', { format: 'bytes' }).catch((e: unknown) => e),
    ).toBeInstanceOf(FileNotFoundError)
    await expectRejects(sandbox.files.write('/etc/passwd', 'x'), SandboxError)
  })

  test('other envd routes answer 501', async () => {
    const sandbox = await create()
    await expectRejects(sandbox.commands.run('echo hi'), SandboxError)
  })
})

describe('code interpreter', () => {
  test('runCode keeps state, captures stdout and stderr, returns the last expression, reports errors', async () => {
    const sandbox = await CodeSandbox.create({ ...connection })
    made.push(sandbox)
    const first = await sandbox.runCode(
      'import sys\nx = 1+1\nprint("out", x)\nprint("err", file=sys.stderr)',
    )
    expect(first.logs).toEqual({ stdout: ['out 2\n'], stderr: ['err\n'] })
    expect(first.error).toBeUndefined()
    expect((await sandbox.runCode('x')).text).toBe('2')

    const failed = await sandbox.runCode('def f():\n    return 1/0\nf()')
    expect(failed.error?.name).toBe('ZeroDivisionError')
    expect(failed.error?.value).toBe('division by zero')
    expect(failed.error?.traceback).toContain('return 1/0')

    const env = await sandbox.runCode(
      'import os, pathlib\n(os.getcwd(), os.environ.get("GREETING"))',
      { envs: { GREETING: 'hi' } },
    )
    expect(env.text).toBe("('/home/user', 'hi')")
  })

  test("files written through envd are in the kernel's /home/user, and back", async () => {
    const sandbox = await CodeSandbox.create({ ...connection })
    made.push(sandbox)
    await sandbox.files.write('in.bin', new Uint8Array([0xff, 0x00]).buffer)
    const seen = await sandbox.runCode('open("/home/user/in.bin", "rb").read()')
    expect(seen.text).toBe("b'\\xff\\x00'")
    await sandbox.runCode('open("out.txt", "w").write("from the kernel")')
    expect(await sandbox.files.read('/home/user/out.txt')).toBe('from the kernel')
  })

  test('a kernel that dies reports it, and the next runCode gets a fresh kernel', async () => {
    const sandbox = await CodeSandbox.create({ ...connection })
    made.push(sandbox)
    await sandbox.runCode('kept = 1')
    const died = await sandbox.runCode('import os\nos._exit(3)')
    expect(died.error?.name).toBe('KernelDied')
    const fresh = await sandbox.runCode('"kept" in globals()')
    expect(fresh.text).toBe('False')
  })

  test('a sandbox killed mid-execution drops the stream: a TimeoutError, as with E2B', async () => {
    const sandbox = await CodeSandbox.create({ ...connection })
    const running = sandbox
      .runCode('import time\nprint("started", flush=True)\ntime.sleep(30)')
      .catch((error: unknown) => error)
    await Bun.sleep(200)
    await sandbox.kill()
    expect(await running).toBeInstanceOf(TimeoutError)
  })

  test('the kernel is sandboxed: no network, the host invisible', async () => {
    const sandbox = await CodeSandbox.create({ ...connection })
    made.push(sandbox)
    const probe = await sandbox.runCode(
      'import os, socket\ntry:\n    socket.create_connection(("127.0.0.1", 1), timeout=1); net = "open"\nexcept OSError as e:\n    net = type(e).__name__\n(net, os.path.exists("/work"), os.path.exists("/etc/passwd"))',
    )
    expect(probe.error).toBeUndefined()
    expect(probe.text).not.toContain("'open'")
    expect(probe.text).toEndWith('False, False)')
  })
})

describe('runtime template', () => {
  test('GET /health and a POST /frame round trip on port 8000; the traffic token is enforced; a crash leaves 502', async () => {
    const sandbox = await create(defaultTemplateId(), { network: { allowPublicTraffic: false } })
    const token = sandbox.trafficAccessToken!
    expect(token).toBeString()

    expect((await edge(sandbox.sandboxId, RUNTIME_PORT, '/health')).status).toBe(403)
    const health = await edge(sandbox.sandboxId, RUNTIME_PORT, '/health', {
      headers: { 'e2b-traffic-access-token': token },
    })
    expect(health.status).toBe(200)
    expect(await health.json()).toMatchObject({ ok: true })

    const reply = await edge(sandbox.sandboxId, RUNTIME_PORT, '/frame', {
      method: 'POST',
      headers: {
        'e2b-traffic-access-token': token,
        'Content-Type': 'application/vnd.blockgate.frame',
      },
      body: Buffer.concat(encodeFrame({ op: 'ping' })),
    })
    expect(reply.status).toBe(200)
    const frames = new FrameReader(1 << 20).push(new Uint8Array(await reply.arrayBuffer()))
    expect(frames).toEqual([{ ok: true, version: expect.any(String) }])

    expect(
      (await edge(sandbox.sandboxId, 8080, '/', { headers: { 'e2b-traffic-access-token': token } }))
        .status,
    ).toBe(502)

    // The runtime process dies: the sandbox stays running, its port answers 502.
    const pids = standin.alive().find((s) => s.sandboxId === sandbox.sandboxId)!.pids
    for (const pid of pids.slice(1)) process.kill(pid, 'SIGKILL')
    await Bun.sleep(100)
    expect(
      (
        await edge(sandbox.sandboxId, RUNTIME_PORT, '/health', {
          headers: { 'e2b-traffic-access-token': token },
        })
      ).status,
    ).toBe(502)
    expect((await sandbox.getInfo()).state).toBe('running')
  })

  test('a sandbox with public traffic allowed gets no traffic token', async () => {
    const sandbox = await create(defaultTemplateId())
    expect(sandbox.trafficAccessToken).toBeUndefined()
    expect((await edge(sandbox.sandboxId, RUNTIME_PORT, '/health')).status).toBe(200)
  })
})

describe('lifetime of the stand-in', () => {
  test('stop() kills every sandbox: their processes are gone', async () => {
    const own = await startStandin()
    const options = { apiKey: own.apiKey, apiUrl: own.apiUrl, sandboxUrl: own.sandboxUrl }
    await Promise.all([Sandbox.create('base', options), CodeSandbox.create(options)])
    const paused = await Sandbox.create('base', options)
    await paused.pause()
    const pids = own.alive().flatMap((sandbox) => sandbox.pids)
    expect(pids.length).toBeGreaterThanOrEqual(3)
    await own.stop()
    expect(own.alive()).toEqual([])
    expect(pids.filter(isAlive)).toEqual([])
  })

  test('main.ts prints the SDK variables, serves, and kills its sandboxes on SIGTERM', async () => {
    const proc = Bun.spawn({
      cmd: [process.execPath, 'run', join(import.meta.dir, '../standin/e2b/main.ts')],
      stdout: 'pipe',
      stderr: 'inherit',
    })
    try {
      const lines: string[] = []
      const decoder = new TextDecoder()
      let text = ''
      for await (const chunk of proc.stdout) {
        text += decoder.decode(chunk, { stream: true })
        if (text.split('\n').length > 3) break
      }
      lines.push(...text.trim().split('\n'))
      const vars = Object.fromEntries(lines.map((line) => line.split('=', 2) as [string, string]))
      expect(Object.keys(vars)).toEqual(['E2B_API_URL', 'E2B_SANDBOX_URL', 'E2B_API_KEY'])
      expect(vars.E2B_API_URL).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
      // The SDK's own variables point it at the stand-in, with no connection options at all.
      const saved = { ...process.env }
      Object.assign(process.env, vars)
      let sandbox: Sandbox
      try {
        sandbox = await Sandbox.create('base')
      } finally {
        for (const name of Object.keys(vars)) {
          if (saved[name] === undefined) delete process.env[name]
          else process.env[name] = saved[name]
        }
      }
      expect(await sandbox.isRunning()).toBe(true)
      const sandboxPids = processTree(proc.pid).slice(1)
      expect(sandboxPids.length).toBeGreaterThan(0)
      proc.kill('SIGTERM')
      expect(await proc.exited).toBe(0)
      expect(sandboxPids.filter(isAlive)).toEqual([])
      expect(await fetch(`${vars.E2B_API_URL}/v2/sandboxes`).catch(() => 'closed')).toBe('closed')
    } finally {
      proc.kill('SIGKILL')
    }
  })
})
