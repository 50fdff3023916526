// Cold start (a fresh worker process, imports included, until ready) against a warm run
// (the block already loaded) through the HTTP app, measured in one run.
import { measure } from 'mitata'
import { encodeCbor } from '../serializers/cbor.ts'
import { startProcessWorker } from '../src/backends/local/worker.ts'
import { createApp } from '../src/app.ts'
import { loadConfig } from '../src/config.ts'
import { createBackends, frameLimitFor } from '../src/server.ts'

const ms = (ns: number) => +(ns / 1e6).toFixed(3)
const row = (name: string, stats: { p50: number; p99: number; samples: number[] }) => ({
  name,
  p50_ms: ms(stats.p50),
  p99_ms: ms(stats.p99),
  samples: stats.samples.length,
})

export async function coldAndWarm(quick: boolean) {
  const config = loadConfig({ ...process.env, BLOCKGATE_MIN_WARM_WORKERS: '1', BLOCKGATE_MAX_WORKERS: '1' })

  console.error('cold start: spawning fresh workers…')
  const samples = quick ? 3 : 8
  const cold = await measure(
    async () => {
      const worker = await startProcessWorker({ ...config.local, maxFrameBytes: frameLimitFor(config) })
      worker.kill()
      await worker.exited
    },
    { min_samples: samples, max_samples: samples, warmup_samples: 0, min_cpu_time: 0, batch_samples: 1, batch_unroll: 1 },
  )

  const backends = createBackends(config)
  await backends.local!.start()
  const app = createApp({ config, backends })
  const body = encodeCbor({
    code: { run_function_code: 'def run(self, a, b):\n    return {"sum": a + b}\n' },
    inputs: { a: 10.5, b: 20.3 },
  })
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
    rows: [row('cold start (worker spawn until ready)', cold), row('warm run (sum block, CBOR, in-process HTTP)', warm)],
    ratio: cold.p50 / warm.p50,
  }
}
