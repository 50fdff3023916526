// Every scenario `bun run bench` runs, in order: the one list to add to. Each returns rows
// of one shape (stats.ts).
import type { BenchContext } from './context.ts'
import { clientRoundTrips } from './clients.ts'
import { coldAtMax } from './cold-at-max.ts'
import { coldAndWarm } from './cold-warm.ts'
import { e2bColdAndWarm } from './e2b.ts'
import { floors } from './floors.ts'
import { freshInterpreter } from './fresh-interpreter.ts'
import { httpThroughput } from './http.ts'
import { inferenceStep } from './inference.ts'
import { inProcessExec } from './in-process.ts'
import { multiInstance } from './multi-instance.ts'
import { seedFlow } from './seed-flow.ts'
import { tracingOverhead } from './tracing.ts'
import { zygoteFork } from './zygote-fork.ts'
import { serializationPython, serializationTs } from './serializers.ts'
import type { Row } from './stats.ts'

export interface Scenario {
  title: string
  run(ctx: BenchContext): Promise<Row[]>
}

export const SCENARIOS: Scenario[] = [
  { title: 'baseline: in-process exec, no isolation (Roboflow local mode)', run: inProcessExec },
  { title: 'local: fresh interpreter per worker, cold and warm', run: freshInterpreter },
  { title: 'local: fork from the sandboxed zygote, at the runtime protocol', run: zygoteFork },
  {
    title: 'local: zygote fork, cold and warm, every payload, over HTTP',
    run: async (ctx) =>
      coldAndWarm(ctx, {
        backend: 'local-zygote',
        target: 'local',
        server: await ctx.localServer(),
        coldPerRound: ctx.count(4, 10),
      }),
  },
  { title: 'local: HTTP throughput at concurrency 1, 8, 64', run: httpThroughput },
  {
    title: 'floors: a bare Bun echo, and Bun forwarding to a Python loop over a Unix socket',
    run: floors,
  },
  {
    title: 'local: cold start for a new workspace with the pool at its max',
    run: coldAtMax,
  },
  { title: 'local: tracing on against tracing off, concurrency 8', run: tracingOverhead },
  {
    title:
      'multi-instance: what Redis adds to a warm run; HAProxy to three instances against one direct',
    run: multiInstance,
  },
  {
    title:
      'Roboflow Inference: a custom block step in local mode, and through blockgate over HTTP and websocket',
    run: inferenceStep,
  },
  {
    title: 'e2b: template mode, cold and warm, every payload, over HTTP',
    run: e2bColdAndWarm('template'),
  },
  {
    title: 'e2b: code-interpreter mode, cold and warm, every payload, over HTTP',
    run: e2bColdAndWarm('code-interpreter'),
  },
  {
    title: "baseline: the seed's flow, one code-interpreter sandbox per run, base64 JSON",
    run: seedFlow,
  },
  {
    title: 'clients: the Python and TypeScript clients against the same request sent by hand',
    run: clientRoundTrips,
  },
  { title: 'serialization: CBOR against JSON/base64, TS', run: serializationTs },
  { title: 'serialization: CBOR against JSON/base64, Python', run: serializationPython },
]
