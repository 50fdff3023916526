// Cold start against warm start, per backend, as a user meets them: requests to a blockgate
// server on a real socket. Cold: a run for a new workspace, so the backend starts a worker or
// a sandbox, loads the block and runs it (time to first result). Warm: the same workspace
// again, the block already loaded, on every payload, the load from a separate process.
import type { BenchContext } from './context.ts'
import type { BlockgateServer } from './blockgate-server.ts'
import { loadRounds } from './load.ts'
import { runBody, type BlockPayload } from './payloads.ts'
import { median, rowOf, timeMs, type Row } from './stats.ts'

export interface ColdWarmTarget {
  backend: string
  target: string
  server: BlockgateServer
  /** Cold samples per round (a cold start can cost a second). */
  coldPerRound: number
  /** E2B API calls blockgate made, and what the far side counted, when known. */
  calls?: { blockgate(): number; control?(): number; data?(): number }
}

/** Warm samples per round, by payload: fewer for the large ones. */
function warmPerRound(ctx: BenchContext, payload: BlockPayload): number {
  if (payload.id === 'no-op') return ctx.count(40, 200)
  if (payload.id === '1080p-frame') return ctx.count(6, 30)
  return ctx.count(1, 8)
}

async function post(url: string, body: Uint8Array): Promise<void> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/cbor' },
    body,
  })
  const bytes = await response.arrayBuffer()
  if (response.status !== 200)
    throw new Error(
      `run failed: ${response.status} ${new TextDecoder().decode(bytes.slice(0, 300))}`,
    )
}

/** Counter readings before and after `action`, per run. */
async function perRun<T>(
  calls: ColdWarmTarget['calls'],
  runs: number,
  action: () => Promise<T>,
): Promise<{ result: T; extra: Record<string, number> }> {
  const read = () => ({
    blockgate: calls?.blockgate(),
    control: calls?.control?.(),
    data: calls?.data?.(),
  })
  const before = read()
  const result = await action()
  const after = read()
  const extra: Record<string, number> = {}
  const per = (a?: number, b?: number) =>
    a === undefined || b === undefined ? undefined : +((b - a) / runs).toFixed(2)
  const blockgate = per(before.blockgate, after.blockgate)
  const control = per(before.control, after.control)
  const data = per(before.data, after.data)
  if (blockgate !== undefined) extra.e2b_api_calls_per_run = blockgate
  if (control !== undefined) extra.e2b_api_calls_per_run_far_side = control
  if (data !== undefined) extra.sandbox_round_trips_per_run = data
  return { result, extra }
}

export async function coldAndWarm(ctx: BenchContext, subject: ColdWarmTarget): Promise<Row[]> {
  const { backend, target, server } = subject
  const noop = ctx.payloads.blocks.find((payload) => payload.id === 'no-op')!
  let workspaces = 0
  const coldRun = () => post(server.url, runBody(noop, `cold-${++workspaces}`))

  ctx.progress(
    `${backend} (${target}): cold starts, ${ctx.rounds} rounds of ${subject.coldPerRound}`,
  )
  await coldRun() // warm-up: the first start also fills caches a later one finds full
  const cold = await perRun(subject.calls, ctx.rounds * subject.coldPerRound, async () => {
    const rounds: number[][] = []
    for (let r = 0; r < ctx.rounds; r++) {
      const samples: number[] = []
      for (let i = 0; i < subject.coldPerRound; i++) samples.push(await timeMs(coldRun))
      rounds.push(samples)
    }
    return rounds
  })
  const rows = [
    rowOf(
      {
        scenario: 'cold-start',
        name: `${backend}: cold start, time to first result (no-op block, over HTTP)`,
        backend,
        target,
        payload: 'no-op',
        extra: cold.extra,
      },
      cold.result,
    ),
  ]

  for (const payload of ctx.payloads.blocks) {
    const count = warmPerRound(ctx, payload)
    ctx.progress(
      `${backend} (${target}): warm runs, ${payload.id}, ${ctx.rounds} rounds of ${count}`,
    )
    const body = runBody(payload, 'warm')
    await post(server.url, body) // loads the block: every measured run below is warm
    const warm = await perRun(subject.calls, ctx.rounds * count, () =>
      loadRounds(server.url, body, ctx.rounds, count, 1),
    )
    const extra: Record<string, number> = { ...warm.extra }
    if (warm.result.overheads.length)
      extra.server_overhead_p50_ms = +median(warm.result.overheads).toFixed(3)
    rows.push(
      rowOf(
        {
          scenario: 'warm-start',
          name: `${backend}: warm run, ${payload.title} (over HTTP)`,
          backend,
          target,
          payload: payload.id,
          extra,
        },
        warm.result.latencies,
      ),
    )
  }
  return rows
}
