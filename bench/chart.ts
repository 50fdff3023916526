// latest.svg: cold against warm p50 per backend, the cold/warm ratio of each, and each warm
// run against the in-process baseline by payload. A Vega-Lite spec rendered headless to SVG
// (log scales: the figures span six orders of magnitude).
import * as vega from 'vega'
import { compile, type TopLevelSpec } from 'vega-lite'
import type { BenchResult } from './results.ts'

const WIDTH = 480

const SHORT_NAMES: Record<string, string> = {
  'in-process-exec': 'in-process exec (baseline)',
  'local-fresh': 'local: fresh interpreter',
  'local-fork': 'local: zygote fork (no HTTP)',
  'local-zygote': 'local: zygote fork',
  'e2b-template': 'E2B: template',
  'e2b-code-interpreter': 'E2B: code interpreter',
  'seed-flow': "seed's flow (baseline)",
}

const name = (backend: string, target: string) =>
  `${SHORT_NAMES[backend] ?? backend}${target === 'e2b-standin' ? ' (stand-in)' : ''}`

/** A log axis from the power of ten below the smallest value to room above the largest. */
function logAxis(values: number[], title: string) {
  const low = 10 ** Math.floor(Math.log10(Math.min(...values)))
  const high = 10 ** Math.ceil(Math.log10(Math.max(...values) * 3))
  return {
    x: {
      field: 'value',
      type: 'quantitative' as const,
      scale: { type: 'log' as const, domain: [low, high] },
      title,
      axis: { format: '~g', grid: true },
    },
    start: low,
  }
}

function panel(
  title: string,
  values: { backend: string; group: string; value: number }[],
  axisTitle: string,
  colors: string[] | null,
  order: string[],
) {
  const { x, start } = logAxis(
    values.map((d) => d.value),
    axisTitle,
  )
  return {
    title,
    width: WIDTH,
    data: { values },
    encoding: {
      y: {
        field: 'backend',
        type: 'nominal' as const,
        sort: order,
        title: null,
        axis: { labelLimit: 300 },
      },
      ...(colors ? { yOffset: { field: 'group', type: 'nominal' as const } } : {}),
      x,
      color: colors
        ? {
            field: 'group',
            type: 'nominal' as const,
            title: null,
            legend: { orient: 'bottom' as const, labelLimit: 300 },
            scale: { range: colors },
          }
        : { value: '#54a24b' },
    },
    // A log scale has no zero: bars start at the axis' left end.
    layer: [
      { mark: { type: 'bar' as const }, encoding: { x2: { datum: start } } },
      {
        mark: { type: 'text' as const, align: 'left' as const, dx: 3, fontSize: 10 },
        encoding: {
          x: { field: 'value', type: 'quantitative' as const },
          text: { field: 'value', type: 'quantitative' as const, format: '.3~r' },
        },
      },
    ],
  }
}

export async function renderChart(result: BenchResult): Promise<string> {
  const latencies = result.cold_warm.flatMap((entry) => [
    {
      backend: name(entry.backend, entry.target),
      group: 'cold: time to first result',
      value: entry.cold_p50_ms,
    },
    ...(entry.warm_p50_ms === null
      ? []
      : [
          {
            backend: name(entry.backend, entry.target),
            group: 'warm run',
            value: entry.warm_p50_ms,
          },
        ]),
  ])
  const ratios = result.cold_warm.flatMap((entry) =>
    entry.ratio === null
      ? []
      : [{ backend: name(entry.backend, entry.target), group: 'cold / warm', value: entry.ratio }],
  )
  const againstInProcess = result.rows
    .filter((row) => row.scenario === 'warm-start' && row.ratios.in_process !== undefined)
    .map((row) => ({
      backend: name(row.backend, row.target),
      group: row.payload,
      value: row.ratios.in_process!,
    }))
  const order = [...new Set(latencies.map((d) => d.backend))]

  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `blockgate bench (${result.mode}), ${result.date.slice(0, 10)}, ${result.machine.cores} cores ${result.machine.cpu}: medians (p50)`,
      fontSize: 13,
      anchor: 'start',
    },
    config: { font: 'sans-serif', view: { stroke: null }, title: { anchor: 'start' } },
    resolve: {
      scale: { x: 'independent', color: 'independent', y: 'independent' },
      legend: { color: 'independent' },
    },
    vconcat: [
      panel(
        'Cold against warm, no-op block (ms, log scale)',
        latencies,
        'ms',
        ['#4c78a8', '#f58518'],
        order,
      ),
      panel(
        'Cold / warm, p50 against p50 (×, log scale)',
        ratios,
        'cold p50 / warm p50',
        null,
        order,
      ),
      panel(
        'Warm run against in-process exec, same payload (×, log scale)',
        againstInProcess,
        'p50 / in-process p50',
        ['#e45756', '#72b7b2', '#b279a2'],
        order,
      ),
    ],
  }
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' })
  const svg = await view.toSVG()
  view.finalize()
  return `${svg}\n`
}
