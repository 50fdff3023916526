// The span tree of real runs, captured by an in-memory exporter on an injected provider:
// names, parent/child, attributes and error status for a warm run, a cold run, a user
// error and a timeout, on local workers and on E2B sandboxes (through the stand-in).
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'bun:test'
import { context, propagation, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import {
  InMemorySpanExporter,
  ParentBasedSampler,
  SimpleSpanProcessor,
  TraceIdRatioBasedSampler,
  TracerProvider,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace'
import { createApp } from '../../src/app.ts'
import { checkedApp } from '../support/contract.ts'
import { E2BPool } from '../../src/backends/e2b/pool.ts'
import { loadConfig } from '../../src/config.ts'
import { createBackends } from '../../src/backends/index.ts'
import { ATTR, runtimePhaseAttribute, SPAN } from '../../src/telemetry/names.ts'
import { standinE2BConfig } from '../support/e2b-config.ts'
import { startStandin, type Standin } from '../standin/e2b/index.ts'
import { readAnswer, runRequest, SUM_BLOCK } from '../support/http.ts'
import { runFrame, serveApp, SocketClient } from '../support/webexec-socket.ts'
import { startRedis } from '../support/redis-server.ts'
import { SharedState } from '../../src/shared/redis.ts'

const exporter = new InMemorySpanExporter()
const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] })
const contextManager = new AsyncLocalStorageContextManager()

const config = loadConfig({ BLOCKGATE_MIN_WARM_WORKERS: '0', BLOCKGATE_MAX_WORKERS: '2' })
let standin: Standin
let backends: ReturnType<typeof createBackends>
let app: ReturnType<typeof createApp>

beforeAll(async () => {
  context.setGlobalContextManager(contextManager.enable())
  trace.setGlobalTracerProvider(provider)
  propagation.setGlobalPropagator(new W3CTraceContextPropagator())
  standin = await startStandin()
  const e2b = new E2BPool(
    standinE2BConfig(standin, { BLOCKGATE_E2B_MAX_SANDBOXES: '4', BLOCKGATE_E2B_MAX_QUEUE: '8' }),
    { maxFrameBytes: 64 << 20, queueTimeoutMs: 20_000 },
  )
  backends = { ...createBackends(config), e2b }
  app = checkedApp(createApp({ config, backends }))
  await Promise.all(Object.values(backends).map((b) => b.start()))
}, 60_000)

afterAll(async () => {
  await Promise.all(Object.values(backends ?? {}).map((b) => b.stop()))
  await standin?.stop()
  // Later test files run untraced, as a server without an endpoint does.
  trace.disable()
  propagation.disable()
  context.disable()
})

beforeEach(() => exporter.reset())

async function run(body: Record<string, unknown>, headers: Record<string, string> = {}) {
  const response = await app.request(
    '/v1/run',
    runRequest({ workspace: 'traced', ...body }, 'cbor', headers),
  )
  return { status: response.status, answer: await readAnswer(response) }
}

/** The finished spans of the one trace the last request made, by name. */
function traceOfLastRequest() {
  const spans = exporter.getFinishedSpans()
  const server = spans.filter((s) => s.kind === SpanKind.SERVER).at(-1)
  if (!server) throw new Error(`no server span among ${spans.map((s) => s.name).join(', ')}`)
  const traceId = server.spanContext().traceId
  const mine = spans.filter((s) => s.spanContext().traceId === traceId)
  const byName = (name: string) => mine.filter((s) => s.name === name)
  const one = (name: string) => {
    const found = byName(name)
    if (found.length !== 1)
      throw new Error(
        `expected one ${name} span, found ${found.length} among ${mine.map((s) => s.name).join(', ')}`,
      )
    return found[0]!
  }
  const parentOf = (span: ReadableSpan) =>
    mine.find((s) => s.spanContext().spanId === span.parentSpanContext?.spanId)
  return { server, spans: mine, names: mine.map((s) => s.name), byName, one, parentOf }
}

const block = (run_function_code: string) => ({ code: { run_function_code } })

describe('local workers', () => {
  test('a cold run: spawn under acquire, init, execute with the runtime phases, encode, release', async () => {
    const { status } = await run({
      ...block(SUM_BLOCK),
      inputs: { a: 1, b: 2 },
      workspace: 'cold-local',
    })
    expect(status).toBe(200)
    const t = traceOfLastRequest()
    expect(t.server.name).toBe('POST /v1/run')
    expect(t.server.attributes['http.response.status_code']).toBe(200)
    expect(t.server.attributes['http.route']).toBe('/v1/run')
    for (const name of [
      SPAN.decode,
      SPAN.acquire,
      SPAN.init,
      SPAN.execute,
      SPAN.encode,
      SPAN.release,
    ])
      expect(t.parentOf(t.one(name))).toBe(t.server)
    const acquire = t.one(SPAN.acquire)
    expect(acquire.attributes).toMatchObject({
      [ATTR.coldStart]: true,
      [ATTR.backend]: 'local',
      [ATTR.workspace]: 'cold-local',
    })
    expect(t.parentOf(t.one(SPAN.workerSpawn))).toBe(acquire)
    expect(t.parentOf(t.one('runtime.load'))).toBe(t.one(SPAN.init))
    const execute = t.one(SPAN.execute)
    for (const phase of ['runtime.decode', 'runtime.execute', 'runtime.encode']) {
      const span = t.one(phase)
      expect(t.parentOf(span)).toBe(execute)
      // Placed inside the execute span by the runtime's own clock.
      expect(toMs(span.startTime)).toBeGreaterThanOrEqual(toMs(execute.startTime) - 1)
      expect(toMs(span.endTime)).toBeLessThanOrEqual(toMs(execute.endTime) + 1)
    }
    expect(t.one(SPAN.decode).attributes[ATTR.inputBytes]).toBeGreaterThan(0)
    expect(t.one(SPAN.encode).attributes[ATTR.outputBytes]).toBeGreaterThan(0)
    expect(t.server.attributes[ATTR.blockHash]).toHaveLength(64)
    expect(t.server.attributes[ATTR.workspace]).toBe('cold-local')
  })

  test('a warm run: no spawn, no init, faas.coldstart false', async () => {
    await run({ ...block(SUM_BLOCK), inputs: { a: 1, b: 2 }, workspace: 'warm-local' })
    exporter.reset()
    await run({ ...block(SUM_BLOCK), inputs: { a: 3, b: 4 }, workspace: 'warm-local' })
    const t = traceOfLastRequest()
    expect(t.one(SPAN.acquire).attributes[ATTR.coldStart]).toBe(false)
    expect(t.byName(SPAN.workerSpawn)).toEqual([])
    expect(t.byName(SPAN.init)).toEqual([])
    expect(t.one(SPAN.release).attributes[ATTR.runtimeId]).toBe(
      t.one(SPAN.acquire).attributes[ATTR.runtimeId]!,
    )
  })

  test("a user error: the execute span fails with the block's error type; the 422 server span does not", async () => {
    const { status } = await run(block('def run(self):\n    raise ValueError("no")\n'))
    expect(status).toBe(422)
    const t = traceOfLastRequest()
    const execute = t.one(SPAN.execute)
    expect(execute.status.code).toBe(SpanStatusCode.ERROR)
    expect(execute.attributes['error.type']).toBe('BlockRuntimeError')
    expect(execute.events.some((e) => e.name === 'exception')).toBe(true)
    expect(t.server.status.code).toBe(SpanStatusCode.UNSET)
    expect(t.server.attributes['error.type']).toBe('BlockRuntimeError')
    expect(t.byName(SPAN.release)).toHaveLength(1) // the worker answered: it is kept
  })

  test('a timeout: execute fails, the worker is killed with the reason, the server span is a 504 error', async () => {
    const { status } = await run({
      ...block('def run(self):\n    while True:\n        pass\n'),
      timeout_ms: 300,
    })
    expect(status).toBe(504)
    const t = traceOfLastRequest()
    expect(t.one(SPAN.execute).status.code).toBe(SpanStatusCode.ERROR)
    expect(t.one(SPAN.kill).attributes[ATTR.exitReason]).toBe('timeout')
    expect(t.server.status.code).toBe(SpanStatusCode.ERROR)
    expect(t.server.attributes['error.type']).toBe('BlockTimeout')
  })

  test("an incoming traceparent makes the run part of the caller's trace", async () => {
    const traceId = '0af7651916cd43dd8448eb211c80319c'
    const parentId = 'b7ad6b7169203331'
    await run(block(SUM_BLOCK), { traceparent: `00-${traceId}-${parentId}-01` })
    const t = traceOfLastRequest()
    expect(t.server.spanContext().traceId).toBe(traceId)
    expect(t.server.parentSpanContext?.spanId).toBe(parentId)
    expect(t.spans.length).toBeGreaterThan(5)
  })
})

test("a warm run: the runtime's phases are attributes of sandbox.execute, not spans of their own", async () => {
  const body = { ...block(SUM_BLOCK), inputs: { a: 1, b: 2 }, workspace: 'warm-phases' }
  expect((await run(body)).status).toBe(200) // loads the block
  expect((await run(body)).status).toBe(200)
  const t = traceOfLastRequest()
  expect(t.names).not.toContain(SPAN.init) // warm: the worker already held the block
  expect(t.names.filter((name) => name.startsWith('runtime.'))).toEqual([])
  const execute = t.one(SPAN.execute)
  for (const phase of ['decode', 'execute', 'encode'])
    expect(execute.attributes[runtimePhaseAttribute(phase)]).toBeGreaterThan(0)
  expect(t.names.length).toBe(6) // the server span, decode, acquire, execute, encode, release
})

describe('sampling', () => {
  test('a sampled run names its trace in the traceresponse header; an unsampled one does not', async () => {
    const response = await app.request(
      '/v1/run',
      runRequest({ workspace: 'traced', ...block(SUM_BLOCK), inputs: { a: 1, b: 2 } }, 'cbor'),
    )
    expect(response.status).toBe(200)
    const server = traceOfLastRequest().one('POST /v1/run')
    expect(response.headers.get('traceresponse')).toBe(
      `00-${server.spanContext().traceId}-${server.spanContext().spanId}-01`,
    )
    trace.disable()
    trace.setGlobalTracerProvider(
      new TracerProvider({
        sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(0) }),
      }),
    )
    try {
      const unsampled = await app.request(
        '/v1/run',
        runRequest({ workspace: 'traced', ...block(SUM_BLOCK), inputs: { a: 1, b: 2 } }, 'cbor'),
      )
      expect(unsampled.headers.get('traceresponse')).toBeNull()
    } finally {
      trace.disable()
      trace.setGlobalTracerProvider(provider)
    }
  })

  test("an unsampled run makes no spans at all; a caller's sampled traceparent is always followed", async () => {
    const keepNone = new TracerProvider({
      sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(0) }),
      spanProcessors: [new SimpleSpanProcessor({ exporter })],
    })
    trace.disable()
    trace.setGlobalTracerProvider(keepNone)
    try {
      expect((await run({ ...block(SUM_BLOCK), inputs: { a: 1, b: 2 } })).status).toBe(200)
      expect(exporter.getFinishedSpans()).toEqual([])
      await run(
        { ...block(SUM_BLOCK), inputs: { a: 1, b: 2 } },
        { traceparent: '00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' },
      )
      const t = traceOfLastRequest()
      expect(t.names).toContain(SPAN.execute)
    } finally {
      trace.disable()
      trace.setGlobalTracerProvider(provider)
    }
  })
})

describe('E2B sandboxes', () => {
  test('a cold run: sandbox.create under acquire, the block loaded with the run, then a warm run without either', async () => {
    const { status } = await run({
      ...block(SUM_BLOCK),
      inputs: { a: 1, b: 2 },
      backend: 'e2b',
      workspace: 'cold-e2b',
    })
    expect(status).toBe(200)
    let t = traceOfLastRequest()
    const acquire = t.one(SPAN.acquire)
    expect(acquire.attributes).toMatchObject({ [ATTR.coldStart]: true, [ATTR.backend]: 'e2b' })
    const create = t.one(SPAN.sandboxCreate)
    expect(t.parentOf(create)).toBe(acquire)
    expect(create.events.map((e) => e.name)).toContain('e2b.create')
    const init = t.one(SPAN.init)
    expect(init.attributes[ATTR.inlineInit]).toBe(true)
    expect(t.parentOf(init)).toBe(t.one(SPAN.execute))

    exporter.reset()
    await run({
      ...block(SUM_BLOCK),
      inputs: { a: 1, b: 2 },
      backend: 'e2b',
      workspace: 'cold-e2b',
    })
    t = traceOfLastRequest()
    expect(t.byName(SPAN.sandboxCreate)).toEqual([])
    expect(t.byName(SPAN.init)).toEqual([])
    expect(t.one(SPAN.acquire).attributes[ATTR.coldStart]).toBe(false)
  }, 30_000)

  test('a create refused once with 503 shows as a retry event, and the run succeeds', async () => {
    standin.faults.serviceUnavailableCreates = 1
    try {
      const { status } = await run({
        ...block(SUM_BLOCK),
        inputs: { a: 1, b: 2 },
        backend: 'e2b',
        workspace: 'retried-e2b',
      })
      expect(status).toBe(200)
    } finally {
      standin.faults.serviceUnavailableCreates = 0
    }
    const create = traceOfLastRequest().one(SPAN.sandboxCreate)
    expect(create.events.map((e) => e.name)).toEqual(['e2b.create', 'e2b.retry', 'e2b.create'])
  }, 30_000)
})

const toMs = ([seconds, nanos]: [number, number]) => seconds * 1000 + nanos / 1e6

describe("Inference's websocket transport", () => {
  test('one connection span, one request span per run under it, the run under that; local and E2B alike', async () => {
    const socketApp = createApp({
      config: { ...config, workspaceBackends: { 'ws-e2b': 'e2b' } },
      backends,
    })
    const server = serveApp(() => socketApp)
    try {
      for (const workspace of ['ws-local', 'ws-e2b']) {
        exporter.reset()
        const client = await SocketClient.open(
          `ws://127.0.0.1:${server.port}/webexec/ws?workspace_id=${workspace}`,
        )
        await client.request({ _kind: 'hello', proto: 2, session_id: 's' })
        for (const id of ['first', 'second'])
          expect(
            await client.request(runFrame(SUM_BLOCK, { a: 1, b: 2 }, { requestId: id })),
          ).toMatchObject({ success: true, request_id: id })
        client.close()
        await client.closed
        await Bun.sleep(20)
        const spans = exporter.getFinishedSpans()
        const connection = spans.find((span) => span.name === SPAN.socketConnection)!
        expect(connection.kind).toBe(SpanKind.SERVER)
        expect(connection.attributes[ATTR.workspace]).toBe(workspace)
        expect(connection.attributes[ATTR.closeCode]).toBe(1000)
        const requests = spans.filter((span) => span.name === SPAN.socketRequest)
        expect(requests.map((span) => span.attributes[ATTR.requestId])).toEqual(['first', 'second'])
        for (const request of requests) {
          expect(request.parentSpanContext?.spanId).toBe(connection.spanContext().spanId)
          expect(request.attributes[ATTR.outcome]).toBe('ok')
          const under = (name: string) =>
            spans.filter(
              (span) =>
                span.name === name &&
                span.parentSpanContext?.spanId === request.spanContext().spanId,
            )
          expect(under(SPAN.execute)).toHaveLength(1)
          const [acquire] = under(SPAN.acquire)
          expect(acquire!.attributes[ATTR.backend]).toBe(workspace === 'ws-e2b' ? 'e2b' : 'local')
        }
      }
    } finally {
      server.stop(true)
    }
  }, 60_000)
})

describe('with a Redis shared by the deployment', () => {
  test("the registry's Redis calls are spans inside the run's trace: the create's reservation and registration, a warm run's claim", async () => {
    const redis = await startRedis()
    const shared = new SharedState({
      redisUrl: redis.url,
      deploymentId: `traced-${crypto.randomUUID().slice(0, 8)}`,
      timeoutMs: 500,
      leaseMs: 15_000,
      codeCacheWorkspaceBytes: 1 << 20,
    })
    await shared.start()
    const e2b = new E2BPool(standinE2BConfig(standin, { BLOCKGATE_E2B_MAX_SANDBOXES: '2' }), {
      maxFrameBytes: 64 << 20,
      queueTimeoutMs: 20_000,
      shared,
    })
    await e2b.start()
    const tracedApp = checkedApp(createApp({ config, backends: { ...backends, e2b }, shared }))
    const runOnE2B = async (a: number) => {
      const response = await tracedApp.request(
        '/v1/run',
        runRequest(
          { ...block(SUM_BLOCK), inputs: { a, b: 1 }, backend: 'e2b', workspace: 'redis-traced' },
          'cbor',
        ),
      )
      expect(response.status).toBe(200)
    }
    try {
      await runOnE2B(1)
      const cold = traceOfLastRequest()
      const acquire = cold.one(SPAN.acquire)
      const create = cold.one(SPAN.sandboxCreate)
      expect(cold.parentOf(create)).toBe(acquire)
      for (const op of ['e2b_claim_idle', 'e2b_reserve_create', 'e2b_put']) {
        const span = cold.one(`blockgate.redis.${op}`)
        expect(span.attributes['db.system.name']).toBe('redis')
        expect(span.attributes['db.operation.name']).toBe('EVALSHA')
        expect(cold.parentOf(span)).toBe(create)
      }
      await Bun.sleep(50) // the sandbox's release reaches the registry
      exporter.reset()
      await runOnE2B(2)
      const warm = traceOfLastRequest()
      expect(warm.parentOf(warm.one('blockgate.redis.e2b_claim'))).toBe(warm.one(SPAN.acquire))
      expect(warm.byName(SPAN.sandboxCreate)).toEqual([])
    } finally {
      await e2b.stop()
      shared.stop()
      await redis.stop()
    }
  }, 60_000)
})
