// Throughput over a real socket: a no-op block at concurrency 1, 8 and 64 against the local
// pool (two workers: this machine's cores), the load from a separate process. And the floors
// under the large payloads' figures: the same request echoed by a bare Bun server, no
// blockgate behind it.
import type { BenchContext } from './context.ts'
import { loadRounds } from './load.ts'
import { runBody } from './payloads.ts'
import { median, rowOf, type Row } from './stats.ts'

export async function httpThroughput(ctx: BenchContext): Promise<Row[]> {
  const server = await ctx.localServer()
  const noop = runBody(ctx.payloads.blocks.find((payload) => payload.id === 'no-op')!, 'load')
  const rows: Row[] = []
  await loadRounds(server.url, noop, 1, 200, 2) // warm-up: both workers forked, the block loaded in each
  for (const concurrency of [1, 8, 64]) {
    const requests = ctx.count(400, 2000)
    ctx.progress(
      `http: no-op block at concurrency ${concurrency}, ${ctx.rounds} rounds of ${requests}`,
    )
    const load = await loadRounds(server.url, noop, ctx.rounds, requests, concurrency)
    rows.push(
      rowOf(
        {
          scenario: 'http-throughput',
          name: `local-zygote: no-op block over HTTP, concurrency ${concurrency}`,
          backend: 'local-zygote',
          target: 'local',
          payload: 'no-op',
          concurrency,
          extra: { server_overhead_p50_ms: +median(load.overheads).toFixed(3) },
        },
        load.latencies,
        load.seconds,
      ),
    )
  }

  const echo = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    maxRequestBodySize: 64 << 20,
    fetch: async (request) => new Response(await request.arrayBuffer()),
  })
  try {
    for (const floor of ECHO_FLOORS) {
      const body = runBody(
        ctx.payloads.blocks.find((payload) => payload.id === floor.payload)!,
        'load',
      )
      const requests = ctx.count(floor.quick, floor.full)
      ctx.progress(
        `http: floor, the ${floor.payload} request echoed by a bare Bun server, ${ctx.rounds} rounds of ${requests}`,
      )
      await loadRounds(echo.url.href, body, 1, 3, 1, 'application/octet-stream')
      const load = await loadRounds(
        echo.url.href,
        body,
        ctx.rounds,
        requests,
        1,
        'application/octet-stream',
      )
      rows.push(
        rowOf(
          {
            scenario: 'http-throughput',
            name: `floor: the ${floor.what} echoed by a bare Bun server, no blockgate`,
            backend: 'bun-echo',
            target: 'local',
            payload: floor.payload,
            concurrency: 1,
          },
          load.latencies,
          load.seconds,
        ),
      )
    }
  } finally {
    echo.stop(true)
  }
  return rows
}

/**
 * The large requests' floors: moving the same bytes in and out over HTTP, nothing else.
 * The masks' one is the transport half of their floor; packbits (serializers.py) is the other.
 */
const ECHO_FLOORS = [
  { payload: '1080p-frame', what: '1080p request (6 MB each way)', quick: 10, full: 40 },
  {
    payload: '100-detections',
    what: '100-detections request (26 MB each way)',
    quick: 3,
    full: 10,
  },
]
