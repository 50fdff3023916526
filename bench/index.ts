// `bun run bench` (`--quick`: fewer rounds and samples, under a minute): every scenario in
// scenarios.ts, then bench/results/ (latest.json, a dated copy, latest.md, latest.svg) and
// a comparison with the previous latest.json. `--only TEXT[,TEXT]`: just the scenarios whose
// title contains one of the texts, their rows and the targets they cover printed, nothing
// written (a quick look at one hot path while working on it). Progress goes to stderr; the
// cold/warm table and any regression to stdout. Absolute times are for this machine;
// compare the ratios.
import { compare } from './compare.ts'
import { createContext } from './context.ts'
import { describeMachine, loadNow } from './machine.ts'
import { factor, ms } from './markdown.ts'
import { elapsedSeconds, progress } from './progress.ts'
import { addRatios, coldWarmRatios } from './ratios.ts'
import { readPrevious, writeResults, type BenchResult } from './results.ts'
import { SCENARIOS } from './scenarios.ts'
import { checkTargets, describeTarget } from './targets.ts'
import type { Row } from './stats.ts'
import { setLogLevel } from '../src/log.ts'

// The servers here log one audit line per run: tens of thousands in a full run, burying
// the progress lines. Warnings and errors still show.
setLogLevel('warn')

const quick = process.argv.includes('--quick')
const onlyAt = process.argv.indexOf('--only')
const only =
  onlyAt < 0 ? null : (process.argv[onlyAt + 1] ?? '').toLowerCase().split(',').filter(Boolean)
if (only?.length === 0) throw new Error('--only needs a text to match scenario titles with')
const scenarios = only
  ? SCENARIOS.filter((scenario) => only.some((text) => scenario.title.toLowerCase().includes(text)))
  : SCENARIOS
const date = new Date().toISOString()
const machine = describeMachine()
progress(
  `blockgate bench${quick ? ' --quick' : ''}: ${machine.cores} cores, ${machine.cpu}, load ${machine.load_at_start}`,
)

const ctx = createContext(quick)
const rows: Row[] = []
const skipped: BenchResult['skipped'] = []
let e2bTarget = 'none'
try {
  for (const [index, scenario] of scenarios.entries()) {
    progress(`── ${index + 1}/${scenarios.length} ${scenario.title}`)
    try {
      rows.push(...(await scenario.run(ctx)))
    } catch (error) {
      // One backend missing here (no bubblewrap, no template on E2B) must not cost the others.
      const reason = (error as Error).message.split('\n')[0]!.slice(0, 300)
      progress(`   not measured: ${reason}`)
      skipped.push({ scenario: scenario.title, reason })
    }
  }
  e2bTarget = rows.find((row) => row.target.startsWith('e2b'))?.target ?? 'none'
} finally {
  await ctx.close()
}

addRatios(rows)
if (only) {
  // A partial run: its figures are printed, never written over a full run's results.
  for (const row of rows)
    console.log(
      `  ${ms(row.p50_ms).padStart(10)}${row.ops_per_s === null ? '' : `  ${row.ops_per_s} runs/s`}  ${row.name}`,
    )
  printTargets(checkTargets(rows).filter((target) => target.holds !== null))
  process.exit(0)
}
machine.load_at_end = loadNow()
const result: BenchResult = {
  schema: 1,
  date,
  mode: quick ? 'quick' : 'full',
  command: `bun run bench${quick ? ' --quick' : ''}`,
  duration_s: Math.round(elapsedSeconds()),
  machine,
  e2b_target: e2bTarget,
  rows,
  cold_warm: coldWarmRatios(rows),
  targets: checkTargets(rows),
  skipped,
  comparison: compare(rows, machine, readPrevious()),
}
const files = await writeResults(result)

console.log('\nCold against warm (no-op block, p50):')
for (const entry of result.cold_warm) {
  const ratio = entry.ratio === null ? 'every run cold' : `cold/warm ${factor(entry.ratio)}`
  console.log(
    `  ${`${entry.backend} (${entry.target})`.padEnd(36)} cold ${ms(entry.cold_p50_ms).padStart(10)}   warm ${ms(entry.warm_p50_ms).padStart(10)}   ${ratio}`,
  )
}
const { comparison } = result
if (comparison.previous) {
  console.log(
    `\nAgainst the previous run (${comparison.previous.date}, ${comparison.previous.mode}): ${comparison.rows_compared} figures, ${comparison.regressions.length} slower and ${comparison.improvements.length} faster beyond the noise${comparison.other_machine ? ' (another machine)' : ''}`,
  )
  for (const change of comparison.regressions)
    console.log(
      `  REGRESSION ${change.name}: ${ms(change.before_p50_ms)} → ${ms(change.after_p50_ms)} (+${Math.round(change.change * 100)}%, threshold ${Math.round(change.threshold * 100)}%)`,
    )
}
printTargets(result.targets)
for (const skip of skipped) console.log(`\nNot measured: ${skip.scenario}: ${skip.reason}`)
console.log(`\nWrote ${files.join(', ')} in ${result.duration_s} s`)

function printTargets(targets: BenchResult['targets']): void {
  console.log('\nTargets (two rows of this run each):')
  for (const target of targets) {
    const { value, limit } = describeTarget(target)
    const verdict = target.holds === null ? 'NOT MEASURED' : target.holds ? 'holds' : 'MISSED'
    console.log(
      `  ${verdict.padEnd(12)} ${value} (target ${limit})  #${target.issue} ${target.title}`,
    )
  }
}
