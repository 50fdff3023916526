// A reference point for the local cold start: a fresh interpreter per worker (spawn Python,
// import the CV stack, load the block, run it), the cost the zygote's fork avoids. No
// sandbox and no HTTP: it is measured at the runtime's own protocol, cold and warm alike.
import { startProcessWorker } from '../src/backends/local/worker.ts'
import { runBlock } from '../src/backends/runtime-session.ts'
import { loadConfig } from '../src/config.ts'
import { frameLimitFor } from '../src/backends/index.ts'
import type { BenchContext } from './context.ts'
import { runJob } from './payloads.ts'
import { rowOf, timeMs, type Row } from './stats.ts'

export async function freshInterpreter(ctx: BenchContext): Promise<Row[]> {
  const config = loadConfig({ ...process.env, WORKFLOWS_CUSTOM_PYTHON_EXECUTION_MODE: 'local' })
  const options = { ...config.local, maxFrameBytes: frameLimitFor(config) }
  const noop = ctx.payloads.blocks.find((payload) => payload.id === 'no-op')!
  const job = runJob(noop, 'bench')
  const firstResult = async () => {
    const worker = await startProcessWorker(options)
    await runBlock(worker, job, performance.now() + 60_000)
    return worker
  }
  const base = { backend: 'local-fresh', target: 'local', payload: 'no-op' }
  const perRound = ctx.count(1, 3)

  ctx.progress(
    `local-fresh: cold starts (spawn + import + load + run), ${ctx.rounds} rounds of ${perRound}`,
  )
  ;(await firstResult()).kill() // warm-up: the page cache then holds the CV stack
  const cold: number[][] = []
  for (let r = 0; r < ctx.rounds; r++) {
    const samples: number[] = []
    for (let i = 0; i < perRound; i++) {
      const startedAt = performance.now()
      const worker = await firstResult()
      samples.push(performance.now() - startedAt)
      worker.kill() // stopping it is left out of the figure
      await worker.exited
    }
    cold.push(samples)
  }

  ctx.progress(`local-fresh: warm runs on one worker`)
  const worker = await firstResult()
  try {
    const warmCount = ctx.count(100, 400)
    await runBlock(worker, job, performance.now() + 60_000)
    const warm: number[][] = []
    for (let r = 0; r < ctx.rounds; r++) {
      const samples: number[] = []
      for (let i = 0; i < warmCount; i++)
        samples.push(await timeMs(() => runBlock(worker, job, performance.now() + 60_000)))
      warm.push(samples)
    }
    return [
      rowOf(
        {
          ...base,
          scenario: 'cold-start',
          name: 'local-fresh: cold start, a fresh interpreter per worker, time to first result (no sandbox, no HTTP)',
        },
        cold,
      ),
      rowOf(
        {
          ...base,
          scenario: 'warm-start',
          name: 'local-fresh: warm run on that worker (no sandbox, no HTTP)',
        },
        warm,
      ),
    ]
  } finally {
    worker.kill()
    await worker.exited
  }
}
