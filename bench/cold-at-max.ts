// A cold start when the pool is full: every worker of the two the pool may have is idle but
// held by another workspace, so a run for a new workspace first ends one of them, then forks.
// Timed at the server (the answer's timings_ms.total: request in to answer out), on a
// server of its own, so the other scenarios' workers are not in the way. bench/targets.ts
// holds it to the fork itself (`local-fork`: fork, load and run at the runtime's protocol).
import { decodeCbor } from '../serializers/cbor.ts'
import { startLocalServer } from './blockgate-server.ts'
import type { BenchContext } from './context.ts'
import { runBody } from './payloads.ts'
import { rowOf, type Row } from './stats.ts'

export async function coldAtMax(ctx: BenchContext): Promise<Row[]> {
  const server = await startLocalServer()
  const noop = ctx.payloads.blocks.find((payload) => payload.id === 'no-op')!
  const run = async (workspace: string) => {
    const response = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/cbor' },
      body: runBody(noop, workspace),
    })
    const answer = decodeCbor(new Uint8Array(await response.arrayBuffer())) as {
      cold_start: boolean
      timings_ms: { total: number }
    }
    if (response.status !== 200 || !answer.cold_start)
      throw new Error(`a run for new workspace ${workspace} was not a cold 200: ${response.status}`)
    return answer.timings_ms.total
  }
  try {
    const perRound = ctx.count(5, 15)
    ctx.progress(
      `local-zygote: cold starts with the pool at its max (evict, then fork), ${ctx.rounds} rounds of ${perRound}`,
    )
    let workspaces = 0
    // Fills the pool, and warms up: both workers live and idle, each another workspace's.
    for (let i = 0; i < 4; i++) await run(`at-max-${++workspaces}`)
    const rounds: number[][] = []
    for (let r = 0; r < ctx.rounds; r++) {
      const samples: number[] = []
      for (let i = 0; i < perRound; i++) samples.push(await run(`at-max-${++workspaces}`))
      rounds.push(samples)
    }
    return [
      rowOf(
        {
          scenario: 'cold-start',
          name: 'local-zygote: cold start for a new workspace with the pool at its max (an idle worker of another workspace ended, then a fork), server-side',
          backend: 'local-zygote',
          target: 'local',
          payload: 'no-op',
          form: 'at-max',
        },
        rounds,
      ),
    ]
  } finally {
    await server.stop()
  }
}
