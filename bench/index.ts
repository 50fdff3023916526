// `bun run bench`: cold start (a fresh worker process, imports included, until ready)
// against a warm run (the block already loaded) through the HTTP app, in one run.
// `--quick` takes fewer samples. The full suite (baselines, payloads, E2B, results
// files) grows here with the bench issue.
import { measure } from 'mitata'
import { createApp } from '../src/app.ts'
import { loadConfig } from '../src/config.ts'
import { Worker } from '../src/backends/local/worker.ts'
import { createBackends, frameLimitFor } from '../src/server.ts'
import { encodeCbor } from '../serializers/cbor.ts'

const quick = process.argv.includes('--quick')
const config = loadConfig({ ...process.env, BLOCKGATE_WORKERS: '1' })

const ms = (ns: number) => ns / 1e6
const row = (name: string, stats: { p50: number; p99: number; samples: number[] }) =>
  ({ name, p50_ms: +ms(stats.p50).toFixed(3), p99_ms: +ms(stats.p99).toFixed(3), samples: stats.samples.length })

console.error(`blockgate bench${quick ? ' (quick)' : ''}: ${navigator.hardwareConcurrency} cores, Bun ${Bun.version}`)

console.error('cold start: spawning fresh workers…')
const cold = await measure(
  async () => {
    const worker = await Worker.start({ ...config.local, maxFrameBytes: frameLimitFor(config) })
    worker.kill()
    await worker.exited
  },
  { min_samples: quick ? 3 : 8, max_samples: quick ? 3 : 8, warmup_samples: 0, min_cpu_time: 0, batch_samples: 1, batch_unroll: 1 },
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

const results = [row('cold start (worker spawn until ready)', cold), row('warm run (sum block, CBOR, in-process HTTP)', warm)]
console.table(results)
console.log(`cold/warm ratio (p50): ${(cold.p50 / warm.p50).toFixed(0)}x`)
