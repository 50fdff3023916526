// End to end over real OTLP/HTTP: blockgate runs as its own process with only the standard
// OTEL_* variables set, exports to a receiver this test starts on loopback, and what
// arrived is decoded from protobuf and checked: the run's trace joined to the caller's,
// the resource, the metrics, and a flush on SIGTERM.
import { afterAll, beforeAll, expect, test } from 'bun:test'
import protobuf from 'protobufjs'
import { resolve } from 'node:path'
import type { Subprocess } from 'bun'
import { PROJECT_ROOT } from '../../src/config.ts'
import { SPAN } from '../../src/telemetry/names.ts'
import { encodeCbor } from '../../serializers/cbor.ts'
import { SUM_BLOCK } from '../support/http.ts'
import { followLog } from '../support/server-process.ts'

// The part of the OTLP protobuf schema this test reads (field numbers as in opentelemetry-proto).
const schema = protobuf.parse(`
syntax = "proto3";
message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
message ExportMetricsServiceRequest { repeated ResourceMetrics resource_metrics = 1; }
message ResourceMetrics { Resource resource = 1; repeated ScopeMetrics scope_metrics = 2; }
message ScopeMetrics { Scope scope = 1; repeated Metric metrics = 2; }
message Metric { string name = 1; string unit = 3; }
message Resource { repeated KeyValue attributes = 1; }
message ScopeSpans { Scope scope = 1; repeated Span spans = 2; }
message Scope { string name = 1; }
message Span {
  bytes trace_id = 1; bytes span_id = 2; bytes parent_span_id = 4; string name = 5; int32 kind = 6;
  fixed64 start_time_unix_nano = 7; fixed64 end_time_unix_nano = 8; repeated KeyValue attributes = 9; Status status = 15;
}
message Status { string message = 2; int32 code = 3; }
message KeyValue { string key = 1; AnyValue value = 2; }
message AnyValue { oneof value { string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4; } }
`).root
const TraceRequest = schema.lookupType('ExportTraceServiceRequest')
const MetricsRequest = schema.lookupType('ExportMetricsServiceRequest')

interface ReceivedSpan {
  traceId: string
  spanId: string
  parentSpanId: string
  name: string
  attributes: Record<string, unknown>
  resource: Record<string, unknown>
}

const spans: ReceivedSpan[] = []
const metricNames = new Set<string>()
const contentTypes = new Set<string>()
let receiver: ReturnType<typeof Bun.serve>
let server: Subprocess<'ignore', 'pipe', 'pipe'>
let url: string

const hex = (bytes: Uint8Array | undefined) => Buffer.from(bytes ?? []).toString('hex')
const attributesOf = (list: { key: string; value?: Record<string, unknown> }[] = []) =>
  Object.fromEntries(
    list.map(({ key, value }) => [key, value ? Object.values(value)[0] : undefined]),
  )

beforeAll(async () => {
  receiver = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(request) {
      const path = new URL(request.url).pathname
      contentTypes.add(request.headers.get('content-type') ?? '')
      const body = new Uint8Array(await request.arrayBuffer())
      if (path === '/v1/traces') {
        const decoded = TraceRequest.toObject(TraceRequest.decode(body), { longs: String }) as any
        for (const resourceSpans of decoded.resourceSpans ?? []) {
          const resource = attributesOf(resourceSpans.resource?.attributes)
          for (const scope of resourceSpans.scopeSpans ?? []) {
            for (const span of scope.spans ?? []) {
              spans.push({
                traceId: hex(span.traceId),
                spanId: hex(span.spanId),
                parentSpanId: hex(span.parentSpanId),
                name: span.name,
                attributes: attributesOf(span.attributes),
                resource,
              })
            }
          }
        }
      } else if (path === '/v1/metrics') {
        const decoded = MetricsRequest.toObject(MetricsRequest.decode(body)) as any
        for (const resourceMetrics of decoded.resourceMetrics ?? [])
          for (const scope of resourceMetrics.scopeMetrics ?? [])
            for (const metric of scope.metrics ?? []) metricNames.add(metric.name)
      }
      return new Response(new Uint8Array(0), {
        headers: { 'content-type': 'application/x-protobuf' },
      })
    },
  })
  server = Bun.spawn({
    cmd: [process.execPath, resolve(PROJECT_ROOT, 'src/server.ts')],
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      PORT: '0',
      BLOCKGATE_MIN_WARM_WORKERS: '1',
      BLOCKGATE_MAX_WORKERS: '2',
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.port}`,
      OTEL_BSP_SCHEDULE_DELAY: '100',
      OTEL_METRIC_EXPORT_INTERVAL: '300',
    },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const log = followLog(server.stderr)
  url = await log.url(server.exited)
  for (let i = 0; i < 300; i++) {
    const ready = await fetch(`${url}/readyz`).then(
      (r) => r.ok,
      () => false,
    )
    if (ready) return
    await Bun.sleep(100)
  }
  throw new Error(`blockgate did not become ready: ${log.text()}`)
}, 60_000)

afterAll(() => {
  server?.kill('SIGKILL')
  receiver?.stop(true)
})

test('a run is exported over OTLP/HTTP protobuf as one trace under the caller, flushed on SIGTERM, with metrics', async () => {
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736'
  const callerSpan = '00f067aa0ba902b7'
  const response = await fetch(`${url}/v1/run`, {
    method: 'POST',
    headers: { 'content-type': 'application/cbor', traceparent: `00-${traceId}-${callerSpan}-01` },
    body: encodeCbor({
      code: { run_function_code: SUM_BLOCK },
      inputs: { a: 1, b: 2 },
      workspace: 'otlp',
    }),
  })
  expect(response.status).toBe(200)
  await Bun.sleep(700) // a metric export interval or two
  server.kill('SIGTERM')
  expect(await server.exited).toBe(0)

  expect([...contentTypes]).toEqual(['application/x-protobuf'])
  const run = spans.filter((s) => s.traceId === traceId)
  const names = run.map((s) => s.name)
  for (const name of [
    'POST /v1/run',
    SPAN.decode,
    SPAN.acquire,
    SPAN.init,
    SPAN.execute,
    SPAN.encode,
    SPAN.release,
    'runtime.execute',
  ])
    expect(names).toContain(name)
  const root = run.find((s) => s.name === 'POST /v1/run')!
  expect(root.parentSpanId).toBe(callerSpan)
  expect(root.attributes['http.response.status_code']).toBe('200')
  expect(root.resource['service.name']).toBe('blockgate')
  expect(root.resource['service.version']).toMatch(/^\d+\.\d+\.\d+/)
  expect(String(root.resource['service.instance.id'])).toHaveLength(36)
  expect(run.find((s) => s.name === SPAN.acquire)!.attributes['blockgate.workspace']).toBe('otlp')
  for (const name of [
    'faas.invoke_duration',
    'faas.coldstarts',
    'blockgate.queue.depth',
    'blockgate.runtimes.live',
  ])
    expect([...metricNames]).toContain(name)
}, 30_000)
