// The performance targets the issues set, each checked on two rows of the same run: a hot
// path through blockgate against its floor (the cheapest program that does the same job,
// measured by the same client). One explicit list; `bun run bench` prints each with its
// value and whether it holds, latest.md opens with them, latest.json keeps them.
import type { Row } from './stats.ts'

type Find = (row: Row) => boolean

interface Target {
  id: string
  issue: number
  title: string
  measured: Find
  /** Null: the target is an absolute figure the issue set, not a ratio to a floor. */
  floor: Find | null
  /**
   * ratio: measured p50 / floor p50 ≤ limit; added_ms: measured p50 − floor p50 ≤ limit;
   * throughput: measured runs/s / floor runs/s ≥ limit; p50_ms: measured p50 ≤ limit.
   */
  kind: 'ratio' | 'added_ms' | 'throughput' | 'p50_ms'
  limit: number
}

export interface TargetResult {
  id: string
  issue: number
  title: string
  measured: string | null
  floor: string | null
  kind: Target['kind']
  limit: number
  value: number | null
  /** Null when a row it needs was not measured in this run. */
  holds: boolean | null
}

const is =
  (scenario: string, backend: string, payload: string, more: Partial<Row> = {}): Find =>
  (row) =>
    row.scenario === scenario &&
    row.backend === backend &&
    row.payload === payload &&
    Object.entries(more).every(([key, value]) => row[key as keyof Row] === value)

export const TARGETS: Target[] = [
  {
    id: '1080p-frame',
    issue: 20,
    title: '1080p frame in and out, local, warm, CBOR: against a bare Bun echo of the same bytes',
    measured: is('warm-start', 'local-zygote', '1080p-frame'),
    floor: is('http-throughput', 'bun-echo', '1080p-frame'),
    kind: 'ratio',
    limit: 1.5,
  },
  {
    id: 'no-op-concurrency-1',
    issue: 20,
    title: 'warm no-op run, concurrency 1: over a bare Bun echo of the same request',
    measured: is('http-throughput', 'local-zygote', 'no-op', { concurrency: 1 }),
    floor: is('http-throughput', 'bun-echo', 'no-op', { concurrency: 1 }),
    kind: 'added_ms',
    limit: 0.25,
  },
  {
    id: 'no-op-concurrency-64',
    issue: 20,
    title:
      'no-op runs/s at concurrency 64: against a bare Bun server forwarding to a Python loop over a Unix socket',
    measured: is('http-throughput', 'local-zygote', 'no-op', { concurrency: 64 }),
    floor: is('http-throughput', 'bun-forward-python', 'no-op', { concurrency: 64 }),
    kind: 'throughput',
    limit: 0.7,
  },
  {
    id: 'every-run-traced',
    issue: 20,
    title: 'every run traced (parentbased_always_on): runs/s against tracing off',
    measured: is('tracing', 'local-zygote', 'no-op', { form: 'tracing-on' }),
    floor: is('tracing', 'local-zygote', 'no-op', { form: 'tracing-off' }),
    kind: 'throughput',
    limit: 0.9,
  },
  {
    id: 'masks',
    issue: 20,
    title:
      '100 detections with 1080p masks in and out, warm: against packbits + unpackbits of the masks in process',
    measured: is('warm-start', 'local-zygote', '100-detections'),
    floor: (row) =>
      row.scenario === 'serialization' && row.backend === 'python' && row.form === 'packbits',
    kind: 'ratio',
    limit: 2,
  },
  {
    id: 'cold-at-max',
    issue: 20,
    title:
      'cold start for a new workspace with the pool at its max, server-side: against a fork from the zygote (local-fork)',
    measured: is('cold-start', 'local-zygote', 'no-op', { form: 'at-max' }),
    floor: is('cold-start', 'local-fork', 'no-op'),
    kind: 'ratio',
    limit: 1.3,
  },
  {
    id: 'inference-websocket',
    issue: 18,
    title: "Inference's workflow over the websocket transport: over Inference's local mode",
    measured: is('inference', 'inference-websocket', '640x480-image'),
    floor: is('inference', 'inference-local', '640x480-image'),
    kind: 'added_ms',
    limit: 5,
  },
  {
    id: 'inference-http-own',
    issue: 18,
    title: "blockgate's own share of an HTTP /webexec run (server-side, less the block's code)",
    measured: is('inference', 'inference-http-server-own', '640x480-image'),
    floor: null,
    kind: 'p50_ms',
    limit: 2,
  },
]

function figureOf(target: Target, measured: Row, floor: Row | null): number | null {
  const round = (value: number) => +value.toPrecision(3)
  if (target.kind === 'p50_ms') return round(measured.p50_ms)
  if (!floor) return null
  if (target.kind === 'added_ms') return round(measured.p50_ms - floor.p50_ms)
  if (target.kind === 'ratio')
    return floor.p50_ms > 0 ? round(measured.p50_ms / floor.p50_ms) : null
  return measured.ops_per_s && floor.ops_per_s ? round(measured.ops_per_s / floor.ops_per_s) : null
}

export function checkTargets(rows: Row[]): TargetResult[] {
  return TARGETS.map((target) => {
    const measured = rows.find(target.measured) ?? null
    const floor = target.floor ? (rows.find(target.floor) ?? null) : null
    const value = measured ? figureOf(target, measured, floor) : null
    const holds =
      value === null
        ? null
        : target.kind === 'throughput'
          ? value >= target.limit
          : value <= target.limit
    return {
      id: target.id,
      issue: target.issue,
      title: target.title,
      measured: measured?.id ?? null,
      floor: floor?.id ?? null,
      kind: target.kind,
      limit: target.limit,
      value,
      holds,
    }
  })
}

/** "1.42× ≤ 1.5×", "+0.31 ms ≤ +0.25 ms", "72% ≥ 70%" … */
export function describeTarget(result: TargetResult): { value: string; limit: string } {
  const show = (value: number) => {
    if (result.kind === 'ratio') return `${value}×`
    if (result.kind === 'added_ms') return `${value >= 0 ? '+' : ''}${value} ms`
    if (result.kind === 'throughput') return `${Math.round(value * 100)}%`
    return `${value} ms`
  }
  const sign = result.kind === 'throughput' ? '≥' : '≤'
  return {
    value: result.value === null ? 'not measured' : show(result.value),
    limit: `${sign} ${show(result.limit)}`,
  }
}
