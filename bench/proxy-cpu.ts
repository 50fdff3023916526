// Where a no-op run's proxy CPU goes, in two halves measured apart (the `Where a no-op run's
// CPU goes` table in bench/README.md):
//   bun bench/proxy-cpu.ts [requests]
// 1. HTTP and the app, no worker: the real createApp on Bun.serve with a backend that answers
//    at once; the load from bench/http-client.ts at concurrency 1 and 64.
// 2. The local pool, no HTTP: backend.run() in this process at concurrency 1, 8 and 64.
// Each prints runs/s and this process's CPU per run (user + system), the figure that bounds
// throughput once the server's one JavaScript thread is busy.
import { OutputsDocument, type Backend } from '../src/backends/backend.ts'
import { createApp } from '../src/app.ts'
import { loadConfig } from '../src/config.ts'
import { setLogLevel } from '../src/log.ts'
import { startLocalServer } from './blockgate-server.ts'
import { runLoad } from './load.ts'
import { buildPayloads, runBody, runJob } from './payloads.ts'

setLogLevel('warn')
const requests = Number(process.argv[2] ?? 10_000)
const payloads = buildPayloads()
const noop = payloads.blocks.find((payload) => payload.id === 'no-op')!

function cpuPerRun(before: NodeJS.CpuUsage, runs: number): string {
  const used = process.cpuUsage(before)
  return `${((used.user + used.system) / runs).toFixed(0)} µs CPU per run`
}

const answered = new OutputsDocument('cbor', [new Uint8Array([0xa1, 0x61, 0x78, 0x01])])
const answersAtOnce: Backend = {
  name: 'local',
  start: async () => {},
  stop: async () => {},
  status: () => ({ ready: true, queued: 0, live: 1, by_workspace: {} }),
  run: async () => ({
    outputs: answered,
    stdout: '',
    stderr: '',
    debugTraces: [],
    coldStart: false,
    timings: { queue: 0, acquire: 0, execute: 0, user_code: 0 },
  }),
}
const config = loadConfig({ ...process.env, WORKFLOWS_CUSTOM_PYTHON_EXECUTION_MODE: 'local' })
const app = Bun.serve({
  port: 0,
  hostname: '127.0.0.1',
  fetch: createApp({ config, backends: { local: answersAtOnce } }).fetch,
})
const body = runBody(noop, 'load')
await runLoad(`${app.url.href}v1/run`, body, 1000, 8)
for (const concurrency of [1, 64]) {
  const before = process.cpuUsage()
  const load = await runLoad(`${app.url.href}v1/run`, body, requests, concurrency)
  console.log(
    `HTTP + app, no worker, concurrency ${concurrency}: ${Math.round(requests / load.seconds)} runs/s, ${cpuPerRun(before, requests)}`,
  )
}
app.stop(true)

const server = await startLocalServer()
const job = runJob(noop, 'load')
const runAll = async (count: number, concurrency: number) => {
  let started = 0
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (started++ < count) await server.backend.run({ ...job })
    }),
  )
}
await runAll(1000, 2) // both workers forked, the block loaded in each
for (const concurrency of [1, 8, 64]) {
  const before = process.cpuUsage()
  const startedAt = performance.now()
  await runAll(requests, concurrency)
  const seconds = (performance.now() - startedAt) / 1000
  console.log(
    `local pool, no HTTP, concurrency ${concurrency}: ${Math.round(requests / seconds)} runs/s, ${cpuPerRun(before, requests)}`,
  )
}
await server.stop()
payloads.remove()
