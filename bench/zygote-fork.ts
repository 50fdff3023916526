// The local cold start itself, measured as the fresh interpreter is (fresh-interpreter.ts):
// at the runtime's own protocol, no HTTP. A worker forked from the sandboxed zygote (its own
// namespaces, seccomp and rlimits applied), then the block loaded and run. Also the fork
// alone, until the worker is connected and ready.
import { WorkerCgroups } from '../src/backends/local/cgroups.ts'
import { Zygote } from '../src/backends/local/zygote.ts'
import { runBlock } from '../src/backends/runtime-session.ts'
import { loadConfig } from '../src/config.ts'
import { frameLimitFor } from '../src/backends/index.ts'
import type { BenchContext } from './context.ts'
import { runJob } from './payloads.ts'
import { median, rowOf, type Row } from './stats.ts'

export async function zygoteFork(ctx: BenchContext): Promise<Row[]> {
  const config = loadConfig({ ...process.env, WORKFLOWS_CUSTOM_PYTHON_EXECUTION_MODE: 'local' })
  // With a cgroup per worker where the machine allows it, as the pool forks them.
  const { memoryBytes, processes, cpuCores } = config.local.limits
  const opened =
    config.local.cgroups === 'off' ? null : WorkerCgroups.open({ memoryBytes, processes, cpuCores })
  const cgroups = opened instanceof WorkerCgroups ? opened : null
  const zygote = await Zygote.start(
    {
      ...config.local,
      maxFrameBytes: frameLimitFor(config),
      isolation: config.local.allowUnsandboxed ? 'off' : 'sandboxed',
    },
    cgroups,
  )
  const job = runJob(ctx.payloads.blocks.find((payload) => payload.id === 'no-op')!, 'bench')
  const perRound = ctx.count(5, 20)
  ctx.progress(
    `local-fork: forks from the sandboxed zygote (fork + load + run), ${ctx.rounds} rounds of ${perRound}`,
  )
  const firstResult: number[][] = []
  const ready: number[] = []
  try {
    for (let r = 0; r <= ctx.rounds; r++) {
      const samples: number[] = []
      for (let i = 0; i < perRound; i++) {
        const startedAt = performance.now()
        const worker = await zygote.spawnWorker()
        const readyAt = performance.now()
        await runBlock(worker, job, performance.now() + 60_000)
        samples.push(performance.now() - startedAt)
        if (r > 0) ready.push(readyAt - startedAt)
        worker.kill()
        await worker.exited
      }
      if (r > 0) firstResult.push(samples) // round 0 warms up
    }
  } finally {
    await zygote.stop()
    await cgroups?.close()
  }
  return [
    rowOf(
      {
        scenario: 'cold-start',
        name: 'local-fork: cold start, a worker forked from the sandboxed zygote, time to first result (no HTTP)',
        backend: 'local-fork',
        target: 'local',
        payload: 'no-op',
        extra: { fork_until_ready_p50_ms: +median(ready).toFixed(3) },
      },
      firstResult,
    ),
  ]
}
