// This run against the previous latest.json, row by row (same id). A p50 counts as a
// regression when it is slower by more than the noise: the larger of 15% and the spread
// between rounds that either run saw for that row. 15% is the floor because this is a
// shared 2-core VM where quiet-looking repeats of one figure still differ by ~10%; a
// row whose rounds disagreed by more than that has shown its own noise, and is held to it.
import type { Row } from './stats.ts'

const NOISE_FLOOR = 0.15

export interface Change {
  id: string
  name: string
  before_p50_ms: number
  after_p50_ms: number
  /** after / before − 1: +0.30 is 30% slower. */
  change: number
  threshold: number
  verdict: 'regression' | 'improvement'
}

export interface Comparison {
  previous: { date: string; mode: string; commit: string; cpu: string } | null
  /** The previous run was on another CPU or core count: absolute times do not compare. */
  other_machine: boolean
  noise_floor: number
  rows_compared: number
  regressions: Change[]
  improvements: Change[]
}

export interface PreviousResult {
  date: string
  mode: string
  machine: { cpu: string; cores: number; commit: string }
  rows: Row[]
}

export function compare(
  rows: Row[],
  machine: { cpu: string; cores: number },
  previous: PreviousResult | null,
): Comparison {
  const comparison: Comparison = {
    previous: null,
    other_machine: false,
    noise_floor: NOISE_FLOOR,
    rows_compared: 0,
    regressions: [],
    improvements: [],
  }
  if (!previous) return comparison
  comparison.previous = {
    date: previous.date,
    mode: previous.mode,
    commit: previous.machine.commit,
    cpu: previous.machine.cpu,
  }
  comparison.other_machine =
    previous.machine.cpu !== machine.cpu || previous.machine.cores !== machine.cores
  const before = new Map(previous.rows.map((row) => [row.id, row]))
  for (const row of rows) {
    const old = before.get(row.id)
    if (!old || old.p50_ms <= 0) continue
    comparison.rows_compared++
    const threshold = Math.max(NOISE_FLOOR, old.spread, row.spread)
    const change = row.p50_ms / old.p50_ms - 1
    const entry = {
      id: row.id,
      name: row.name,
      before_p50_ms: old.p50_ms,
      after_p50_ms: row.p50_ms,
      change: +change.toFixed(3),
      threshold: +threshold.toFixed(3),
    }
    if (change > threshold) comparison.regressions.push({ ...entry, verdict: 'regression' })
    else if (old.p50_ms / row.p50_ms - 1 > threshold)
      comparison.improvements.push({ ...entry, verdict: 'improvement' })
  }
  return comparison
}
