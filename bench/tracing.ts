// What tracing costs: the same warm no-op runs at concurrency 8 against the local pool,
// with tracing off (no SDK: the API's no-ops) and on (the OTel SDK started from the standard
// variables as a server would, batch export over OTLP/HTTP to a live receiver in another
// process): at blockgate's default sampling, and with every run traced. Rounds interleave so
// drift on this shared machine hits all three alike. Targets: default sampling costs ≤ 5% of
// off's throughput; every run traced ≤ 10% (issue 20, checked with the others in targets.ts).
import { context, metrics, propagation, trace } from '@opentelemetry/api'
import { resolve } from 'node:path'
import { loadConfig } from '../src/config.ts'
import { startTelemetry } from '../src/telemetry/setup.ts'
import type { BenchContext } from './context.ts'
import { runLoad, type LoadRound } from './load.ts'
import { runBody } from './payloads.ts'
import { median, rowOf, type Row } from './stats.ts'

export async function tracingOverhead(ctx: BenchContext): Promise<Row[]> {
  const server = await ctx.localServer()
  const noop = runBody(ctx.payloads.blocks.find((payload) => payload.id === 'no-op')!, 'tracing')
  const requests = ctx.count(600, 2000)
  const sink = Bun.spawn({
    cmd: [process.execPath, resolve(import.meta.dir, 'otlp-sink.ts')],
    stdout: 'pipe',
    stderr: 'inherit',
  })
  const lines = sink.stdout.getReader()
  const sinkUrl = new TextDecoder().decode((await lines.read()).value).trim()
  const off: LoadRound[] = []
  const on: LoadRound[] = []
  const sampled: LoadRound[] = []
  try {
    await runLoad(server.url, noop, 200, 8) // warm-up: both workers forked, the block loaded
    for (let round = 0; round < ctx.rounds; round++) {
      ctx.progress(
        `tracing: round ${round + 1} of ${ctx.rounds}, ${requests} no-op runs off, at default sampling, then every run traced`,
      )
      off.push(await runLoad(server.url, noop, requests, 8))
      sampled.push(await withTracing(sinkUrl, {}, () => runLoad(server.url, noop, requests, 8)))
      on.push(await withTracing(sinkUrl, EVERY_RUN, () => runLoad(server.url, noop, requests, 8)))
    }
  } finally {
    sink.kill('SIGTERM')
  }
  const received = JSON.parse(
    new TextDecoder().decode((await lines.read()).value).trim() || '{}',
  ) as { requests?: number; bytes?: number }
  const throughput = (rounds: LoadRound[]) =>
    median(rounds.map((r) => r.latencies_ms.length / r.seconds))
  const cost = (rounds: LoadRound[]) =>
    +((1 - throughput(rounds) / throughput(off)) * 100).toFixed(1)
  const NAMES = {
    off: 'tracing off',
    on: 'tracing on, every run traced (OTEL_TRACES_SAMPLER=parentbased_always_on; batch export over OTLP/HTTP to a live receiver)',
    sampled:
      "tracing on, blockgate's default: 10% of root traces kept (batch export over OTLP/HTTP to a live receiver)",
  }
  const row = (
    tracing: keyof typeof NAMES,
    rounds: LoadRound[],
    extra: Record<string, number | string>,
  ) =>
    rowOf(
      {
        scenario: 'tracing',
        name: `local-zygote: no-op block over HTTP, concurrency 8, ${NAMES[tracing]}`,
        backend: 'local-zygote',
        target: 'local',
        payload: 'no-op',
        form: `tracing-${tracing}`,
        concurrency: 8,
        extra,
      },
      rounds.map((r) => r.latencies_ms),
      rounds.map((r) => r.seconds),
    )
  return [
    row('off', off, {}),
    row('on', on, { throughput_cost_percent: cost(on), target: '≤ 10%' }),
    row('sampled', sampled, {
      throughput_cost_percent: cost(sampled),
      target: '≤ 5%',
      otlp_requests_both_traced_modes: received.requests ?? 0,
      otlp_bytes_both_traced_modes: received.bytes ?? 0,
    }),
  ]
}

/** The standard sampler variable, set as an operator who wants every run traced would. */
const EVERY_RUN = { OTEL_TRACES_SAMPLER: 'parentbased_always_on' }

/** Runs `fn` with the OTel SDK started as a server with OTEL_EXPORTER_OTLP_ENDPOINT would, then removes it. */
async function withTracing<T>(
  endpoint: string,
  env: Record<string, string>,
  fn: () => Promise<T>,
): Promise<T> {
  // The SDK reads the standard variables itself, as in a server started with them.
  const variables: Record<string, string> = { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, ...env }
  Object.assign(process.env, variables)
  const telemetry = startTelemetry(loadConfig(process.env).telemetry)
  try {
    return await fn()
  } finally {
    await telemetry.shutdown()
    for (const api of [trace, context, propagation, metrics]) api.disable()
    for (const name of Object.keys(variables)) delete process.env[name]
  }
}
