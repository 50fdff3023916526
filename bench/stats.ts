// The one shape every scenario reports, and the one way samples become figures: each
// scenario measures in rounds (spread over its run, warm-ups excluded); a figure is the
// median of the per-round figures, and the spread of the per-round medians is the noise
// a later run is judged against.

export interface Row {
  /** Stable key a later run is compared by: scenario|backend|target|payload|form|concurrency. */
  id: string
  /** cold-start, warm-start, http-throughput, serialization (scenarios.ts lists them). */
  scenario: string
  /** One line a person reads. */
  name: string
  /** local-fresh, local-zygote, e2b-template, e2b-code-interpreter, in-process-exec, seed-flow, bun-echo, ts, python. */
  backend: string
  /** Where it ran: local, e2b-standin (the offline stand-in), e2b-cloud. */
  target: string
  /** no-op, 1080p-frame, 100-detections, or a serialization payload's name. */
  payload: string
  /** Serialization only: cbor, cbor-no-sidecar, json-base64. */
  form: string | null
  concurrency: number | null
  p50_ms: number
  p95_ms: number
  p99_ms: number
  /** Runs per second over a round, where throughput means something (HTTP load). */
  ops_per_s: number | null
  /** Samples measured, warm-ups excluded, over all rounds. */
  samples: number
  rounds: number
  /** (max − min) / median of the per-round p50s: the noise seen inside this run. */
  spread: number
  /** p50 / the p50 of a baseline row, by baseline (ratios.ts fills it in). */
  ratios: Record<string, number>
  /** Counts and side figures: E2B API calls per run, server-side overhead, MB/s, … */
  extra: Record<string, number | string>
}

export type RowInput = Omit<
  Row,
  | 'id'
  | 'p50_ms'
  | 'p95_ms'
  | 'p99_ms'
  | 'ops_per_s'
  | 'samples'
  | 'rounds'
  | 'spread'
  | 'ratios'
  | 'extra'
  | 'form'
  | 'concurrency'
> & {
  form?: string | null
  concurrency?: number | null
  extra?: Record<string, number | string>
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? NaN
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

// Four significant digits: an in-process run is a microsecond, a cold start a second.
const significant = (value: number) => +value.toPrecision(4)

/**
 * A row from rounds of samples (milliseconds). `secondsPerRound`, when given, is the wall
 * time each round took, and the row gets its throughput (samples / seconds, median over rounds).
 */
export function rowOf(input: RowInput, rounds: number[][], secondsPerRound?: number[]): Row {
  const measured = rounds.filter((samples) => samples.length > 0)
  if (measured.length === 0) throw new Error(`${input.name}: no samples`)
  const per = (p: number) =>
    median(
      measured.map((samples) =>
        percentile(
          [...samples].sort((a, b) => a - b),
          p,
        ),
      ),
    )
  const p50s = measured.map((samples) =>
    percentile(
      [...samples].sort((a, b) => a - b),
      0.5,
    ),
  )
  const p50 = median(p50s)
  const form = input.form ?? null
  const concurrency = input.concurrency ?? null
  return {
    id: [
      input.scenario,
      input.backend,
      input.target,
      input.payload,
      form ?? '',
      concurrency ?? '',
    ].join('|'),
    ...input,
    form,
    concurrency,
    p50_ms: significant(p50),
    p95_ms: significant(per(0.95)),
    p99_ms: significant(per(0.99)),
    ops_per_s: secondsPerRound
      ? Math.round(median(measured.map((samples, i) => samples.length / secondsPerRound[i]!)))
      : null,
    samples: measured.reduce((sum, samples) => sum + samples.length, 0),
    rounds: measured.length,
    spread: p50 > 0 ? significant((Math.max(...p50s) - Math.min(...p50s)) / p50) : 0,
    ratios: {},
    extra: input.extra ?? {},
  }
}

/** Times `action` once, in milliseconds. */
export async function timeMs(action: () => Promise<unknown> | unknown): Promise<number> {
  const startedAt = performance.now()
  await action()
  return performance.now() - startedAt
}
