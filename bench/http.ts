// Over a real socket: a no-op block at concurrency 1, 8 and 64 (latency, server-side
// overhead, throughput), and a 1080p frame in and out of a block. The server runs here;
// the load comes from bench/http-client.ts in a process of its own.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { encodeCbor } from '../serializers/cbor.ts'
import { NDArray } from '../serializers/ndarray/index.ts'
import { createApp } from '../src/app.ts'
import { loadConfig } from '../src/config.ts'
import { createBackends } from '../src/server.ts'

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN
}

export interface HttpRow {
  scenario: string
  concurrency: number
  p50_ms: number
  p95_ms: number
  p99_ms: number
  overhead_p50_ms: number
  ops_per_s: number
}

export async function httpScenarios(quick: boolean): Promise<HttpRow[]> {
  const config = loadConfig({ ...process.env, BLOCKGATE_MIN_WARM_WORKERS: '2', BLOCKGATE_MAX_WORKERS: '2' })
  const backends = createBackends(config)
  await backends.local!.start()
  const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: createApp({ config, backends }).fetch, maxRequestBodySize: 64 << 20 })
  const dir = mkdtempSync(join(tmpdir(), 'blockgate-http-'))
  const rows: HttpRow[] = []
  // The floor under the 1080p figure: the same HTTP traffic (6 MB each way) with nothing behind it.
  const echo = Bun.serve({ port: 0, hostname: '127.0.0.1', maxRequestBodySize: 64 << 20, fetch: async (request) => new Response(await request.arrayBuffer()) })
  const scenario = async (name: string, body: Uint8Array, requests: number, concurrency: number, url = `${server.url.href}v1/run`) => {
    const file = join(dir, 'body.cbor')
    writeFileSync(file, body)
    // Not spawnSync: the server answering it lives on this event loop.
    const client = Bun.spawn({
      cmd: [process.execPath, resolve(import.meta.dir, 'http-client.ts'), url, file, url.endsWith('/v1/run') ? 'application/cbor' : 'application/octet-stream', String(requests), String(concurrency)],
      stdout: 'pipe',
      stderr: 'inherit',
    })
    const output = await new Response(client.stdout).text()
    if ((await client.exited) !== 0) throw new Error(`the load client failed for ${name}`)
    const { latencies_ms, overhead_ms, seconds } = JSON.parse(output)
    rows.push({
      scenario: name,
      concurrency,
      p50_ms: +percentile(latencies_ms, 50).toFixed(3),
      p95_ms: +percentile(latencies_ms, 95).toFixed(3),
      p99_ms: +percentile(latencies_ms, 99).toFixed(3),
      overhead_p50_ms: overhead_ms.length ? +percentile(overhead_ms, 50).toFixed(3) : 0,
      ops_per_s: Math.round(requests / seconds),
    })
  }
  try {
    const noop = encodeCbor({ code: { run_function_code: 'def run(self, x):\n    return {"x": x}\n' }, inputs: { x: 1 } })
    await scenario('warm-up', noop, 200, 2) // loads the block in both workers
    rows.length = 0
    for (const concurrency of [1, 8, 64]) {
      console.error(`http: no-op block at concurrency ${concurrency}…`)
      await scenario('no-op block, small inputs', noop, quick ? 1000 : 4000, concurrency)
    }
    console.error('http: 1080p frame in and out…')
    const frame = NDArray.fromBytes('uint8', [1080, 1920, 3], new Uint8Array(1080 * 1920 * 3).map((_, i) => i % 251))
    const invert = encodeCbor({ code: { run_function_code: 'def run(self, image):\n    return {"image": 255 - image}\n' }, inputs: { image: frame } })
    await scenario('1080p frame in and out (255 - image)', invert, quick ? 30 : 100, 1)
    console.error('http: the same 6 MB echoed by a bare Bun server…')
    await scenario('floor: 6 MB echoed by a bare Bun server, no blockgate', invert, quick ? 30 : 100, 1, echo.url.href)
  } finally {
    echo.stop(true)
    server.stop(true)
    await backends.local!.stop()
    rmSync(dir, { recursive: true, force: true })
  }
  return rows
}
