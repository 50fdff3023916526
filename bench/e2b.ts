// The e2b backend, cold against warm, in one run:
// - template mode: a sandbox from blockgate's template (its runtime server already up),
// - code-interpreter mode: E2B's stock template with the runtime uploaded,
// - the seed's flow: create → upload → execute → kill, one sandbox per run.
// Against the offline stand-in (each sandbox a real runtime in bubblewrap, so a cold start
// costs an interpreter start here, not a microVM snapshot resume), and against E2B itself
// when E2B_API_KEY is set. Control-plane calls and sandbox round trips per warm run are
// counted, not assumed.
import type { RunJob } from '../src/backends/backend.ts'
import { Lifecycle } from '../src/backends/e2b/lifecycle.ts'
import { E2BPool } from '../src/backends/e2b/pool.ts'
import { InterpreterRuntime } from '../src/backends/e2b/runtime-interpreter.ts'
import { CODE_INTERPRETER_TEMPLATE, defaultTemplateId } from '../src/backends/e2b/template.ts'
import type { Sandbox as InterpreterSandbox } from '@e2b/code-interpreter'
import { loadConfig, type E2BConfig } from '../src/config.ts'
import { blockOf } from '../src/run/block.ts'
import { startStandin } from '../test/standin/e2b/index.ts'

const SUM = 'def run(self, a, b):\n    return {"sum": a + b}\n'

export interface E2BRow {
  name: string
  p50_ms: number
  p95_ms: number
  p99_ms: number
  samples: number
}

function stats(name: string, times: number[]): E2BRow {
  const sorted = [...times].sort((a, b) => a - b)
  const at = (p: number) => +sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!.toFixed(3)
  return { name, p50_ms: at(0.5), p95_ms: at(0.95), p99_ms: at(0.99), samples: times.length }
}

function job(workspace: string): RunJob {
  return {
    block: blockOf({ run_function_code: SUM, run_function_name: 'run', init_function_code: null, init_function_name: 'init', imports: [] }),
    inputs: { a: 1, b: 2 },
    workspace,
    timeoutMs: 30_000,
    outputFormat: 'cbor',
    context: { step_name: null, step_selector: null, block_type: 'custom_python_block', workflow_execution_id: 'bench' },
  }
}

async function timed(run: () => Promise<unknown>): Promise<number> {
  const startedAt = performance.now()
  await run()
  return performance.now() - startedAt
}

interface Target {
  label: string
  base: Omit<E2BConfig, 'mode' | 'templateId'> & { templateId?: string }
  /** Control-plane calls and sandbox requests as the far side counted them, when it can. */
  counters?: { control(): number; data(): number }
}

/** Cold and warm runs in one mode; control-plane calls per warm run from both sides. */
async function measureMode(target: Target, mode: E2BConfig['mode'], samples: { cold: number; warm: number }) {
  const templateId = mode === 'template' ? (target.base.templateId ?? defaultTemplateId()) : CODE_INTERPRETER_TEMPLATE
  const config: E2BConfig = { ...target.base, mode, templateId, maxSandboxes: samples.cold + 2, idleMs: 300_000, lifetimeMs: 600_000 }
  const pool = new E2BPool(config, { maxFrameBytes: 64 << 20, maxQueue: 16, queueTimeoutMs: 120_000 })
  await pool.start()
  try {
    console.error(`e2b ${mode} (${target.label}): ${samples.cold} cold runs…`)
    const cold: number[] = []
    for (let i = 0; i < samples.cold; i++) cold.push(await timed(() => pool.run(job(`cold-${i}`))))
    console.error(`e2b ${mode} (${target.label}): ${samples.warm} warm runs…`)
    await pool.run(job('warm'))
    const callsBefore = Object.values(pool.lifecycle.calls).reduce((a, b) => a + b, 0)
    const controlBefore = target.counters?.control() ?? 0
    const dataBefore = target.counters?.data() ?? 0
    const warm: number[] = []
    for (let i = 0; i < samples.warm; i++) warm.push(await timed(() => pool.run(job('warm'))))
    const callsAfter = Object.values(pool.lifecycle.calls).reduce((a, b) => a + b, 0)
    return {
      cold: stats(`e2b ${mode}: cold run (create + first execute), ${target.label}`, cold),
      warm: stats(`e2b ${mode}: warm run, ${target.label}`, warm),
      lifecycleCallsPerWarmRun: (callsAfter - callsBefore) / samples.warm,
      controlCallsPerWarmRun: target.counters ? (target.counters.control() - controlBefore) / samples.warm : null,
      sandboxRequestsPerWarmRun: target.counters ? (target.counters.data() - dataBefore) / samples.warm : null,
    }
  } finally {
    await pool.stop()
  }
}

/** The seed's flow: every run creates a code-interpreter sandbox, uploads, executes, kills. */
async function measureSeedFlow(target: Target, samples: number): Promise<E2BRow> {
  const lifecycle = new Lifecycle({ ...target.base, mode: 'code-interpreter', templateId: CODE_INTERPRETER_TEMPLATE })
  console.error(`seed flow (${target.label}): ${samples} runs…`)
  const times: number[] = []
  for (let i = 0; i < samples; i++) {
    times.push(
      await timed(async () => {
        const sandbox = await lifecycle.create(`seed-${i}`, performance.now() + 120_000)
        try {
          const runtime = new InterpreterRuntime(sandbox as InterpreterSandbox, 64 << 20)
          await runtime.prepare(60_000)
          const { block, inputs } = job('seed')
          const reply = await runtime.request({ op: 'run', hash: block.hash, code: block.code, inputs, context: {}, output_format: 'cbor' }, 30_000)
          if (!reply.ok) throw new Error(`seed flow run failed: ${JSON.stringify(reply.error)}`)
        } finally {
          await lifecycle.kill(sandbox.sandboxId)
        }
      }),
    )
  }
  return stats(`seed flow: create → upload → execute → kill per run, ${target.label}`, times)
}

export async function e2bColdAndWarm(quick: boolean) {
  const samples = { cold: quick ? 3 : 8, warm: quick ? 30 : 200 }
  const standin = await startStandin()
  const common = {
    minWarm: 0,
    maxSandboxes: 20,
    createsPerSecond: 100,
    createRetries: 3,
    allowInternet: false,
    deploymentId: `bench-${process.pid}`,
    lifetimeMs: 600_000,
    idleMs: 300_000,
  }
  const targets: Target[] = [
    {
      label: 'offline stand-in',
      base: { ...common, apiKey: standin.apiKey, apiUrl: standin.apiUrl, sandboxUrl: standin.sandboxUrl },
      counters: { control: () => standin.calls.total(), data: () => standin.calls.dataTotal() },
    },
  ]
  const cloud = process.env.E2B_API_KEY ? loadConfig(process.env).e2b : null
  if (cloud) targets.push({ label: 'E2B cloud', base: { ...cloud, deploymentId: common.deploymentId } })

  const rows: E2BRow[] = []
  const summary: Record<string, unknown>[] = []
  try {
    for (const target of targets) {
      for (const mode of ['template', 'code-interpreter'] as const) {
        const result = await measureMode(target, mode, samples)
        rows.push(result.cold, result.warm)
        summary.push({
          target: target.label,
          mode,
          'cold/warm (p50)': +(result.cold.p50_ms / result.warm.p50_ms).toFixed(1),
          'E2B API calls per warm run (blockgate count)': result.lifecycleCallsPerWarmRun,
          'E2B API calls per warm run (far side count)': result.controlCallsPerWarmRun ?? 'n/a',
          'sandbox round trips per warm run': result.sandboxRequestsPerWarmRun ?? 'n/a',
        })
      }
      rows.push(await measureSeedFlow(target, quick ? 2 : 5))
    }
  } finally {
    await standin.stop()
  }
  return { rows, summary, cloud: cloud !== null }
}
