// Baseline 2: the seed's flow, one E2B code-interpreter sandbox per run: create → upload →
// execute with the inputs as base64 JSON → kill, on the same payloads (their JSON/base64
// form, which bench/payloads.py writes beside the CBOR one). The kernel code is
// bench/seed_flow.py; blockgate's runtime is uploaded first for its JSON serializers.
import type { Sandbox as InterpreterSandbox } from '@e2b/code-interpreter'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { Lifecycle } from '../src/backends/e2b/lifecycle.ts'
import { InterpreterRuntime } from '../src/backends/e2b/runtime-interpreter.ts'
import { CODE_INTERPRETER_TEMPLATE } from '../src/runtime-template.ts'
import { loadConfig } from '../src/config.ts'
import type { BenchContext } from './context.ts'
import type { BlockPayload } from './payloads.ts'
import { rowOf, type Row } from './stats.ts'

const SEED_CODE = readFileSync(resolve(import.meta.dir, 'seed_flow.py'), 'utf8')
const base64 = (text: string) => Buffer.from(text).toString('base64')

async function seedRun(
  lifecycle: Lifecycle,
  payload: BlockPayload,
  workspace: string,
): Promise<void> {
  const sandbox = (await lifecycle.create(
    workspace,
    performance.now() + 120_000,
  )) as InterpreterSandbox
  try {
    await new InterpreterRuntime(sandbox, 64 << 20).prepare(120_000)
    const execute = async (code: string) => {
      const execution = await sandbox.runCode(code, {
        timeoutMs: 120_000,
        requestTimeoutMs: 120_000,
      })
      if (execution.error)
        throw new Error(
          `seed flow: the kernel raised ${execution.error.name}: ${execution.error.value}`,
        )
      return execution.logs.stdout.join('')
    }
    await execute(
      `${SEED_CODE}\nseed_load(${JSON.stringify(base64(JSON.stringify({ run_function_code: payload.code })))})`,
    )
    // The seed's client serialised the inputs per run; here their JSON is ready, only base64'd.
    const outputs = JSON.parse(await execute(`seed_run(${JSON.stringify(base64(payload.json))})`))
    if (typeof outputs !== 'object' || outputs === null)
      throw new Error('seed flow: no outputs printed')
  } finally {
    await lifecycle.kill(sandbox.sandboxId)
  }
}

export async function seedFlow(ctx: BenchContext): Promise<Row[]> {
  const target = await ctx.e2bTarget()
  const config = loadConfig({ ...target.env, BLOCKGATE_E2B_MODE: 'code-interpreter' }).e2b!
  const lifecycle = new Lifecycle({
    ...config,
    mode: 'code-interpreter',
    templateId: CODE_INTERPRETER_TEMPLATE,
    ...(target.counters ? { createsPerSecond: 100 } : {}),
  })
  const perRound = ctx.count(1, 2)
  const rounds = ctx.count(2, ctx.rounds) // a run costs a second or more: two rounds in --quick
  const rows: Row[] = []
  let runs = 0
  for (const payload of ctx.payloads.blocks) {
    ctx.progress(
      `seed flow (${target.name}): ${payload.id}, ${rounds} rounds of ${perRound} (a new sandbox each run)`,
    )
    if (runs === 0) await seedRun(lifecycle, payload, `seed-${runs++}`) // warm-up
    const before = {
      blockgate: Object.values(lifecycle.calls).reduce((a, b) => a + b, 0),
      control: target.counters?.control(),
      data: target.counters?.data(),
    }
    const samples: number[][] = []
    for (let r = 0; r < rounds; r++) {
      const round: number[] = []
      for (let i = 0; i < perRound; i++) {
        const startedAt = performance.now()
        await seedRun(lifecycle, payload, `seed-${runs++}`)
        round.push(performance.now() - startedAt)
      }
      samples.push(round)
    }
    const measured = rounds * perRound
    const extra: Record<string, number> = {
      e2b_api_calls_per_run:
        (Object.values(lifecycle.calls).reduce((a, b) => a + b, 0) - before.blockgate) / measured,
    }
    if (target.counters) {
      extra.e2b_api_calls_per_run_far_side =
        (target.counters.control() - before.control!) / measured
      extra.sandbox_round_trips_per_run = (target.counters.data() - before.data!) / measured
    }
    rows.push(
      rowOf(
        {
          scenario: 'cold-start',
          name: `seed flow: create → upload → execute (inputs as base64 JSON) → kill, every run, ${payload.title}`,
          backend: 'seed-flow',
          target: target.name,
          payload: payload.id,
          extra,
        },
        samples,
      ),
    )
  }
  return rows
}
