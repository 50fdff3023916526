// latest.md: the run as tables a person reads. Absolute times hold for the machine
// described at the top; the ratios are the figures to compare across machines.
import { describeTarget } from './targets.ts'
import type { BenchResult } from './results.ts'
import type { Row } from './stats.ts'

const BACKEND_TITLES: Record<string, string> = {
  'local-fresh': 'local, fresh interpreter per worker',
  'local-fork': 'local, fork from the sandboxed zygote, at the runtime protocol (no HTTP)',
  'local-zygote': 'local, fork from the sandboxed zygote',
  'e2b-template': 'E2B, blockgate template',
  'e2b-code-interpreter': 'E2B, code-interpreter mode',
  'in-process-exec': 'baseline: in-process exec, no isolation',
  'seed-flow': "baseline: the seed's sandbox per run",
  'bun-echo': 'floor: bare Bun echo server',
  'bun-forward-python': 'floor: bare Bun server forwarding to a Python loop',
}

export function ms(value: number | null): string {
  if (value === null) return '–'
  if (value >= 100) return `${Math.round(value).toLocaleString('en-US')} ms`
  if (value >= 10) return `${value.toFixed(1)} ms`
  if (value >= 1) return `${value.toFixed(2)} ms`
  if (value >= 0.01) return `${value.toFixed(3)} ms`
  return `${(value * 1000).toFixed(1)} µs`
}

/** A ratio with as many digits as it deserves: 3.7×, 84×, 3,700×. */
export function factor(value: number): string {
  return `${value >= 100 ? Math.round(value).toLocaleString('en-US') : value >= 10 ? value.toFixed(0) : value.toFixed(1)}×`
}

/** p50 / baseline p50 as words: "86× faster" or "3.2× slower". */
function times(ratio: number | undefined | null): string {
  if (ratio === undefined || ratio === null) return '–'
  return ratio < 1 ? `${factor(1 / ratio)} faster` : `${factor(ratio)} slower`
}

const table = (head: string[], body: string[][]) =>
  [
    `| ${head.join(' | ')} |`,
    `|${head.map((_, i) => (i === 0 ? '---' : '--:')).join('|')}|`,
    ...body.map((cells) => `| ${cells.join(' | ')} |`),
  ].join('\n')

const title = (row: Row) =>
  `${BACKEND_TITLES[row.backend] ?? row.backend}${row.form === 'at-max' ? ', the pool at its max (server-side)' : ''}`
const calls = (row: Row) => {
  const { e2b_api_calls_per_run: api, sandbox_round_trips_per_run: trips } = row.extra
  if (api === undefined && trips === undefined) return ''
  const plural = (n: number | string, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`
  return [
    api !== undefined ? plural(api, 'E2B API call') : '',
    trips !== undefined ? plural(trips, 'round trip') : '',
  ]
    .filter(Boolean)
    .join(', ')
}

export function renderMarkdown(result: BenchResult): string {
  const { rows, machine } = result
  const by = (scenario: string) => rows.filter((row) => row.scenario === scenario)
  const lines: string[] = []
  lines.push(
    `# blockgate bench: ${result.date.slice(0, 16).replace('T', ' ')} UTC (${result.mode})`,
  )
  lines.push('')
  lines.push(
    `\`${result.command}\`, ${Math.round(result.duration_s)} s on ${machine.cpu}, ${machine.cores} cores, ${machine.memory_gb} GB, ${machine.os}; Bun ${machine.bun}, Python ${machine.python}; commit ${machine.commit}${machine.dirty ? ' (with local changes)' : ''}; load average ${machine.load_at_start} at the start, ${machine.load_at_end ?? '?'} at the end.`,
  )
  lines.push('')
  lines.push(
    `E2B rows: ${result.e2b_target === 'e2b-cloud' ? 'E2B itself (E2B_API_KEY set).' : "the offline stand-in (no E2B_API_KEY): each sandbox is a real runtime in bubblewrap, so its cold start is an interpreter start, not E2B's snapshot resume; warm figures and call counts carry over to E2B, cold ones do not."}`,
  )
  lines.push(
    'Figures are medians over rounds (warm-ups excluded); p50/p95/p99 in ms; ratios are p50 against a baseline run in the same process, same payload.',
  )
  for (const skip of result.skipped)
    lines.push(`\n**Not measured:** ${skip.scenario}: ${skip.reason}`)

  lines.push('\n## Targets\n')
  lines.push(
    'Each a hot path against its floor, two rows of this run (bench/targets.ts); p50 unless a runs/s share.\n',
  )
  lines.push(
    table(
      ['target', 'issue', 'this run', 'target', 'holds', 'rows'],
      (result.targets ?? []).map((target) => {
        const { value, limit } = describeTarget(target)
        return [
          target.title,
          `#${target.issue}`,
          value,
          limit,
          target.holds === null ? '–' : target.holds ? 'yes' : '**no**',
          [target.measured, target.floor]
            .filter((id): id is string => id !== null)
            .map((id) => id.split('|').filter(Boolean).join(' · '))
            .join(' vs '),
        ]
      }),
    ),
  )

  lines.push('\n## Cold against warm (no-op block, p50)\n')
  lines.push(
    table(
      ['backend', 'where', 'cold: time to first result', 'warm run', 'cold / warm'],
      result.cold_warm.map((entry) => [
        BACKEND_TITLES[entry.backend] ?? entry.backend,
        entry.target,
        ms(entry.cold_p50_ms),
        ms(entry.warm_p50_ms),
        entry.ratio === null ? 'every run is cold' : factor(entry.ratio),
      ]),
    ),
  )

  const latencyTable = (list: Row[]) =>
    table(
      [
        'backend',
        'payload',
        'where',
        'p50',
        'p95',
        'p99',
        'vs in-process exec',
        "vs seed's flow",
        'per run',
      ],
      list.map((row) => [
        title(row),
        row.payload,
        row.target,
        ms(row.p50_ms),
        ms(row.p95_ms),
        ms(row.p99_ms),
        times(row.ratios.in_process),
        times(row.ratios.seed_flow),
        calls(row),
      ]),
    )
  lines.push('\n## Cold start: time to first result\n')
  lines.push(latencyTable(by('cold-start')))
  lines.push('\n## Warm runs, by payload (the block already loaded)\n')
  lines.push(latencyTable(by('warm-start')))

  lines.push('\n## HTTP throughput (local pool, two workers; load from a separate process)\n')
  lines.push(
    table(
      [
        'what',
        'concurrency',
        'p50',
        'p95',
        'p99',
        'runs/s',
        'server overhead p50',
        'vs in-process exec',
      ],
      by('http-throughput').map((row) => [
        row.name,
        String(row.concurrency ?? ''),
        ms(row.p50_ms),
        ms(row.p95_ms),
        ms(row.p99_ms),
        (row.ops_per_s ?? 0).toLocaleString('en-US'),
        typeof row.extra.server_overhead_p50_ms === 'number'
          ? ms(row.extra.server_overhead_p50_ms)
          : '–',
        times(row.ratios.in_process),
      ]),
    ),
  )

  lines.push(
    '\n## Tracing on against off (no-op block, concurrency 8; target: on costs ≤ 5% of the throughput)\n',
  )
  lines.push(
    table(
      ['tracing', 'p50', 'p99', 'runs/s', 'throughput cost'],
      by('tracing').map((row) => [
        row.name.replace(/^.*concurrency 8, /, ''),
        ms(row.p50_ms),
        ms(row.p99_ms),
        (row.ops_per_s ?? 0).toLocaleString('en-US'),
        typeof row.extra.throughput_cost_percent === 'number'
          ? `${row.extra.throughput_cost_percent}%`
          : '–',
      ]),
    ),
  )

  const multi = by('multi-instance')
  if (multi.length > 0) {
    lines.push(
      '\n## Multi-instance: what Redis adds to a warm run; HAProxy to three instances against one direct\n',
    )
    lines.push(
      table(
        ['what', 'concurrency', 'p50', 'p95', 'runs/s', 'notes'],
        multi.map((row) => [
          row.name,
          String(row.concurrency ?? ''),
          ms(row.p50_ms),
          ms(row.p95_ms),
          row.ops_per_s === null ? '–' : row.ops_per_s.toLocaleString('en-US'),
          multiInstanceNote(row),
        ]),
      ),
    )
  }

  lines.push('\n## Serialization: encode + decode of one payload\n')
  lines.push(
    table(
      ['language', 'payload', 'form', 'p50', 'MB/s', 'vs JSON/base64'],
      by('serialization').map((row) => [
        row.backend === 'ts' ? 'TS' : 'Python',
        row.payload,
        row.form ?? '',
        ms(row.p50_ms),
        String(row.extra.mb_per_s ?? ''),
        times(row.ratios.json_base64),
      ]),
    ),
  )

  const { comparison } = result
  lines.push('\n## Against the previous run\n')
  if (!comparison.previous) lines.push('No previous result to compare with.')
  else {
    const previous = comparison.previous
    lines.push(
      `Previous: ${previous.date.slice(0, 16).replace('T', ' ')} UTC (${previous.mode}, commit ${previous.commit}). ${comparison.rows_compared} figures compared; a p50 is flagged when it moved by more than max(${comparison.noise_floor * 100}%, the spread between rounds either run saw).${comparison.other_machine ? ' **The previous run was on another machine: absolute times do not compare.**' : ''}`,
    )
    const changes = [...comparison.regressions, ...comparison.improvements]
    lines.push('')
    if (changes.length === 0) lines.push('No figure moved beyond the noise.')
    else
      lines.push(
        table(
          ['figure', 'before', 'now', 'change', 'threshold', ''],
          changes.map((change) => [
            change.name,
            ms(change.before_p50_ms),
            ms(change.after_p50_ms),
            `${change.change > 0 ? '+' : ''}${Math.round(change.change * 100)}%`,
            `±${Math.round(change.threshold * 100)}%`,
            change.verdict === 'regression' ? '**regression**' : 'faster',
          ]),
        ),
      )
  }
  return `${lines.join('\n')}\n`
}

/** The side figures of a multi-instance row, in words. */
function multiInstanceNote(row: Row): string {
  const { added_p50_ms: p50, added_p95_ms: p95, target, note } = row.extra
  const signed = (value: number) => `${value < 0 ? '−' : '+'}${ms(Math.abs(value))}`
  const parts: string[] = []
  if (typeof p50 === 'number' && typeof p95 === 'number')
    parts.push(`Redis adds ${signed(p50)} p50, ${signed(p95)} p95 (target ${target})`)
  const scripts = row.extra.redis_script_calls_per_run
  if (scripts !== undefined)
    parts.push(`${scripts} Redis script call${scripts === 1 ? '' : 's'} per run`)
  if (typeof row.extra.throughput_vs_direct === 'number')
    parts.push(
      `${Math.round(row.extra.throughput_vs_direct * 100)}% of the runs/s of one instance direct`,
    )
  if (note) parts.push(String(note))
  return parts.join('; ')
}
