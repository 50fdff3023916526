// Every figure as a ratio to its baseline (p50 / the baseline's p50: below 1 is faster),
// and cold against warm per backend. Baselines, run in the same process and run:
// - in_process: the block run in-process without isolation (Roboflow's local mode), same
//   payload; cold rows against its compile-and-run, warm and throughput rows against its run;
// - seed_flow: one code-interpreter sandbox per run with base64 JSON (the seed), same payload;
// - json_base64: serialization rows against the JSON/base64 form, same language and payload;
// - local_fresh: the zygote fork's cold start against a fresh interpreter's, both measured at
//   the runtime's protocol (what a fork saves).
import type { Row } from './stats.ts'

/** Floors (floors.ts, the 1080p echo): the cheapest programs, not runs of a block. */
const FLOORS = new Set(['bun-echo', 'bun-forward-python'])

const ratio = (row: Row, baseline: Row | undefined) =>
  baseline && baseline.p50_ms > 0 ? +(row.p50_ms / baseline.p50_ms).toPrecision(4) : undefined

export function addRatios(rows: Row[]): void {
  const find = (match: (row: Row) => boolean) => rows.find(match)
  for (const row of rows) {
    if (row.scenario === 'serialization') {
      if (row.form === 'json-base64') continue
      const json = ratio(
        row,
        find(
          (r) =>
            r.scenario === 'serialization' &&
            r.backend === row.backend &&
            r.payload === row.payload &&
            r.form === 'json-base64',
        ),
      )
      if (json !== undefined) row.ratios.json_base64 = json
      continue
    }
    if (FLOORS.has(row.backend)) continue
    if (row.backend !== 'in-process-exec') {
      const phase = row.scenario === 'cold-start' ? 'cold-start' : 'warm-start'
      const inProcess = ratio(
        row,
        find(
          (r) =>
            r.backend === 'in-process-exec' && r.scenario === phase && r.payload === row.payload,
        ),
      )
      if (inProcess !== undefined) row.ratios.in_process = inProcess
    }
    if (row.backend === 'local-fork') {
      const fresh = ratio(
        row,
        find(
          (r) =>
            r.backend === 'local-fresh' && r.scenario === 'cold-start' && r.payload === row.payload,
        ),
      )
      if (fresh !== undefined) row.ratios.local_fresh = fresh
    }
    if (row.backend !== 'seed-flow') {
      const seeds = rows.filter((r) => r.backend === 'seed-flow' && r.payload === row.payload)
      const seed = ratio(row, seeds.find((r) => r.target === row.target) ?? seeds[0])
      if (seed !== undefined) row.ratios.seed_flow = seed
    }
  }
}

export interface ColdWarm {
  backend: string
  target: string
  cold_p50_ms: number
  /** Null where every run is cold (the seed's flow). */
  warm_p50_ms: number | null
  /** cold p50 / warm p50, on the no-op block. */
  ratio: number | null
}

/** Cold against warm (no-op block, p50) for each backend measured both ways, and the seed's flow. */
export function coldWarmRatios(rows: Row[]): ColdWarm[] {
  const colds = rows.filter(
    (row) => row.scenario === 'cold-start' && row.payload === 'no-op' && row.form === null,
  )
  return colds.map((cold) => {
    const warm = rows.find(
      (row) =>
        row.scenario === 'warm-start' &&
        row.payload === 'no-op' &&
        row.backend === cold.backend &&
        row.target === cold.target,
    )
    return {
      backend: cold.backend,
      target: cold.target,
      cold_p50_ms: cold.p50_ms,
      warm_p50_ms: warm?.p50_ms ?? null,
      ratio: warm ? +(cold.p50_ms / warm.p50_ms).toPrecision(4) : null,
    }
  })
}
