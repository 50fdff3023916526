// Cold start against warm start, measured in one run:
// - a fresh interpreter that imports the CV stack (what a spawn per worker costs),
// - a worker forked from the sandboxed zygote (blockgate's cold start),
// - a warm run (the block already loaded) through the HTTP app.
import { measure } from 'mitata'
import { encodeCbor } from '../serializers/cbor.ts'
import { Zygote } from '../src/backends/local/zygote.ts'
import { startProcessWorker } from '../src/backends/local/worker.ts'
import { createApp } from '../src/app.ts'
import { loadConfig } from '../src/config.ts'
import { createBackends, frameLimitFor } from '../src/server.ts'

const ms = (ns: number) => +(ns / 1e6).toFixed(3)
export const row = (name: string, stats: { p50: number; p99: number; samples: number[] }) => ({
  name,
  p50_ms: ms(stats.p50),
  p99_ms: ms(stats.p99),
  samples: stats.samples.length,
})

/** Times only `start` (until the worker is ready); stopping it is left out of the figure. */
async function timeStarts(samples: number, start: () => Promise<{ kill(): void; exited: Promise<unknown> }>) {
  const times: number[] = []
  for (let i = 0; i <= samples; i++) {
    const startedAt = performance.now()
    const worker = await start()
    if (i > 0) times.push((performance.now() - startedAt) * 1e6) // the first one warms up
    worker.kill()
    await worker.exited
  }
  const sorted = [...times].sort((a, b) => a - b)
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!
  return { p50: at(0.5), p99: at(0.99), samples: times }
}

export async function coldAndWarm(quick: boolean) {
  const config = loadConfig({ ...process.env, BLOCKGATE_MIN_WARM_WORKERS: '1', BLOCKGATE_MAX_WORKERS: '2' })
  const maxFrameBytes = frameLimitFor(config)

  console.error('cold start: fresh interpreters…')
  const fresh = await timeStarts(quick ? 3 : 8, () => startProcessWorker({ ...config.local, maxFrameBytes }))

  console.error('cold start: zygote forks…')
  const zygote = await Zygote.start({ ...config.local, maxFrameBytes, isolation: config.local.allowUnsandboxed ? 'off' : 'sandboxed' })
  const forked = await timeStarts(quick ? 10 : 40, () => zygote.spawnWorker())
  await zygote.stop()

  const backends = createBackends(config)
  await backends.local!.start()
  const app = createApp({ config, backends })
  const body = encodeCbor({ code: { run_function_code: 'def run(self, a, b):\n    return {"sum": a + b}\n' }, inputs: { a: 10.5, b: 20.3 } })
  const runOnce = async () => {
    const response = await app.request('/v1/run', { method: 'POST', headers: { 'content-type': 'application/cbor' }, body })
    if (response.status !== 200) throw new Error(`warm run failed: ${response.status} ${await response.text()}`)
    await response.arrayBuffer()
  }
  await runOnce() // loads the block: every measured run below is warm
  console.error('warm run: sum block through the HTTP app…')
  const warm = await measure(runOnce, { min_cpu_time: (quick ? 0.5 : 2) * 1e9, batch_samples: 1, batch_unroll: 1 })
  await backends.local!.stop()

  return {
    rows: [
      row('cold start: fresh interpreter with the CV stack', fresh),
      row('cold start: fork from the sandboxed zygote', forked),
      row('warm run: sum block, CBOR, in-process HTTP', warm),
    ],
    forkVsFresh: fresh.p50 / forked.p50,
    coldVsWarm: forked.p50 / warm.p50,
  }
}
