// The bench's output, in bench/results/: latest.json (machine-readable; bench/README.md
// documents its fields), a dated copy of it, latest.md (tables a person reads) and
// latest.svg (cold against warm per backend, and the ratios).
import type { TargetResult } from './targets.ts'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { renderChart } from './chart.ts'
import type { Comparison, PreviousResult } from './compare.ts'
import type { Machine } from './machine.ts'
import { renderMarkdown } from './markdown.ts'
import type { ColdWarm } from './ratios.ts'
import type { Row } from './stats.ts'

const RESULTS_DIR = resolve(import.meta.dir, 'results')

export interface BenchResult {
  schema: 1
  /** When the run started (ISO 8601, UTC). */
  date: string
  mode: 'quick' | 'full'
  command: string
  duration_s: number
  machine: Machine
  /** Where the E2B rows ran: the offline stand-in, or E2B itself (E2B_API_KEY set). */
  e2b_target: string
  rows: Row[]
  cold_warm: ColdWarm[]
  /** Each target of the issues, checked on two rows of this run (targets.ts). */
  targets: TargetResult[]
  /** Scenarios that could not run here, and why. */
  skipped: { scenario: string; reason: string }[]
  comparison: Comparison
}

export function readPrevious(): PreviousResult | null {
  const file = join(RESULTS_DIR, 'latest.json')
  if (!existsSync(file)) return null
  try {
    return JSON.parse(readFileSync(file, 'utf8'))
  } catch {
    return null // an unreadable previous result is no reason to lose this one
  }
}

export async function writeResults(result: BenchResult): Promise<string[]> {
  mkdirSync(RESULTS_DIR, { recursive: true })
  const json = `${JSON.stringify(result, null, 2)}\n`
  const stamp = result.date.replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')
  const files = {
    'latest.json': json,
    [`${stamp}-${result.mode}.json`]: json,
    'latest.md': renderMarkdown(result),
    'latest.svg': await renderChart(result),
  }
  for (const [name, text] of Object.entries(files)) writeFileSync(join(RESULTS_DIR, name), text)
  return Object.keys(files).map((name) => join(RESULTS_DIR, name))
}
