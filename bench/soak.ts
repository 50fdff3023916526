// `npm run soak -- --minutes N [--concurrency C]`: a real blockgate server (a process of its
// own) under mixed load from this process for N minutes: ordinary blocks in many workspaces,
// kinds in CBOR and JSON, /webexec traffic, and hostile blocks mixed in (infinite loop,
// memory bomb, fork bomb, stdout flood, segfault, os._exit). Every answer is checked; the
// server's memory, fds, processes, workers and shared-memory files are sampled every few
// seconds. Ends with a table (runs by outcome, lost runs, p50/p99, the growth of each
// resource from the first part of the run to the last) in bench/results/soak-<date>.md, with
// a chart beside it. Exits 1 when a run was lost or a resource kept growing.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { gzipSync } from 'node:zlib'
import * as vega from 'vega'
import { compile, type TopLevelSpec } from 'vega-lite'
import { decodeCbor, encodeCbor } from '../serializers/cbor.ts'
import { decodeKinds } from '../serializers/index.ts'
import { NDArray } from '../serializers/ndarray/index.ts'
import { footprint, startServer, type ServerProcess } from '../test/support/server-process.ts'
import { median } from './stats.ts'

const args = process.argv.slice(2)
const option = (name: string, fallback: number) => {
  const at = args.indexOf(`--${name}`)
  return at >= 0 ? Number(args[at + 1]) : fallback
}
const MINUTES = option('minutes', 1)
const CONCURRENCY = option('concurrency', 8)
const SAMPLE_EVERY_MS = 2000
const WORKSPACES = Array.from({ length: 6 }, (_, i) => `soak-${i}`)

type Outcome = 'ok' | 'refused as expected' | 'lost'
interface Traffic {
  name: string
  /** How often, against the other kinds. */
  weight: number
  hostile?: boolean
  /** Sends one request; says whether the answer was the right one. */
  send(server: ServerProcess, i: number): Promise<Outcome>
}

const SUM = 'def run(self, a, b):\n    return {"sum": a + b}\n'
const INVERT = 'def run(self, image):\n    return {"inverted": 255 - image}\n'

async function runJson(
  server: ServerProcess,
  body: unknown,
): Promise<{ status: number; answer: any }> {
  const response = await fetch(`${server.url}/v1/run`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(60_000),
  })
  return { status: response.status, answer: await response.json() }
}

async function runCbor(
  server: ServerProcess,
  body: unknown,
): Promise<{ status: number; answer: any }> {
  const response = await fetch(`${server.url}/v1/run`, {
    method: 'POST',
    headers: { 'content-type': 'application/cbor' },
    body: encodeCbor(body),
    signal: AbortSignal.timeout(60_000),
  })
  return {
    status: response.status,
    answer: decodeKinds(decodeCbor(new Uint8Array(await response.arrayBuffer())), 'response'),
  }
}

/** A hostile block: its own run must end in one of `statuses`; nobody else's may suffer. */
function hostile(
  name: string,
  code: string,
  statuses: number[],
  timeoutMs: number,
  weight = 2,
): Traffic {
  return {
    name,
    weight,
    hostile: true,
    async send(server, i) {
      const { status } = await runJson(server, {
        code: { run_function_code: code },
        workspace: `hostile-${i % 2}`,
        timeout_ms: timeoutMs,
      })
      return statuses.includes(status) ? 'refused as expected' : 'lost'
    },
  }
}

const TRAFFIC: Traffic[] = [
  {
    name: 'sum, JSON',
    weight: 30,
    async send(server, i) {
      const { status, answer } = await runJson(server, {
        code: { run_function_code: SUM },
        inputs: { a: i, b: 0.5 },
        workspace: WORKSPACES[i % WORKSPACES.length],
      })
      return status === 200 && answer.outputs?.sum === i + 0.5 ? 'ok' : 'lost'
    },
  },
  {
    name: 'sum, CBOR',
    weight: 15,
    async send(server, i) {
      const { status, answer } = await runCbor(server, {
        code: { run_function_code: SUM },
        inputs: { a: i, b: 2 },
        workspace: WORKSPACES[(i + 1) % WORKSPACES.length],
      })
      return status === 200 && Number(answer.outputs?.sum) === i + 2 ? 'ok' : 'lost'
    },
  },
  {
    name: 'ndarray 64×64×3, CBOR',
    weight: 10,
    async send(server, i) {
      const image = NDArray.fromBytes(
        'uint8',
        [64, 64, 3],
        new Uint8Array(64 * 64 * 3).fill(i % 256),
      )
      const { status, answer } = await runCbor(server, {
        code: { run_function_code: INVERT },
        inputs: { image },
        workspace: WORKSPACES[(i + 2) % WORKSPACES.length],
      })
      const inverted = answer.outputs?.inverted as NDArray | undefined
      return status === 200 &&
        inverted?.shape.join('x') === '64x64x3' &&
        inverted.data[0] === 255 - (i % 256)
        ? 'ok'
        : 'lost'
    },
  },
  {
    name: 'ndarray 8×8, JSON',
    weight: 8,
    async send(server, i) {
      const value = Array.from({ length: 8 }, () => Array.from({ length: 8 }, () => i % 200))
      const { status, answer } = await runJson(server, {
        code: { run_function_code: INVERT },
        inputs: { image: { _type: 'ndarray', dtype: 'uint8', shape: [8, 8], value } },
        workspace: WORKSPACES[(i + 3) % WORKSPACES.length],
      })
      return status === 200 && answer.outputs?.inverted?.value?.[7]?.[7] === 255 - (i % 200)
        ? 'ok'
        : 'lost'
    },
  },
  {
    name: '/webexec (gzip JSON)',
    weight: 12,
    async send(server, i) {
      const body = {
        code_hash: `soak-${i % 3}`,
        run_function_name: 'run',
        inputs_json: JSON.stringify({ a: i, b: 1 }),
        workflow_context: {
          step_name: 'sum',
          step_selector: '$steps.sum',
          block_type: 'Sum',
          workflow_execution_id: `soak-${i}`,
        },
        code_str: SUM,
        imports: [],
      }
      const response = await fetch(
        `${server.url}/webexec?workspace_id=${WORKSPACES[i % WORKSPACES.length]}`,
        {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
          body: gzipSync(JSON.stringify(body)),
          signal: AbortSignal.timeout(60_000),
        },
      )
      const answer = (await response.json()) as { success?: boolean; result?: string }
      return response.status === 200 &&
        answer.success === true &&
        JSON.parse(answer.result ?? '{}').sum === i + 1
        ? 'ok'
        : 'lost'
    },
  },
  hostile('infinite loop', 'def run(self):\n    while True:\n        pass\n', [504], 400),
  hostile(
    'memory bomb',
    'def run(self):\n    hog = bytearray(8 * 1024 ** 3)\n    return {}\n',
    [422],
    5000,
  ),
  hostile(
    'fork bomb',
    'import os\ndef run(self):\n    while True:\n        try:\n            os.fork()\n        except OSError:\n            pass\n',
    [422, 500, 504],
    600,
    1,
  ),
  hostile(
    'stdout flood',
    'import os\ndef run(self):\n    for _ in range(20):\n        print("x" * (1024 * 1024))\n    os.write(1, b"y" * (8 * 1024 * 1024))\n    return {"done": True}\n',
    [200],
    10_000,
  ),
  hostile('segfault', 'import ctypes\ndef run(self):\n    ctypes.string_at(0)\n', [500], 5000),
  hostile('os._exit', 'import os\ndef run(self):\n    os._exit(3)\n', [500], 5000),
]

function pick(i: number): Traffic {
  const total = TRAFFIC.reduce((sum, t) => sum + t.weight, 0)
  let at = (i * 7919) % total // a fixed, well-spread sequence: the same mix every run
  for (const traffic of TRAFFIC) {
    if (at < traffic.weight) return traffic
    at -= traffic.weight
  }
  return TRAFFIC[0]!
}

interface Sample {
  atS: number
  rssMiB: number
  fds: number
  processes: number
  workers: number
  shmEntries: number
}

async function sample(server: ServerProcess, startedAt: number): Promise<Sample> {
  const now = footprint(server.pid)
  const ready = (await fetch(`${server.url}/readyz`).then(
    (r) => r.json(),
    () => ({}),
  )) as { backends?: { local?: { workers?: number } } }
  return {
    atS: (performance.now() - startedAt) / 1000,
    rssMiB: now.rssBytes / 2 ** 20,
    fds: now.fds,
    processes: now.processes,
    workers: ready.backends?.local?.workers ?? -1,
    shmEntries: now.shmEntries,
  }
}

const RESOURCES = ['rssMiB', 'fds', 'processes', 'workers', 'shmEntries'] as const
/** Growth allowed from the first part to the last before it counts as a leak. */
const FLAT_WITHIN: Record<(typeof RESOURCES)[number], number> = {
  rssMiB: 64,
  fds: 16,
  processes: 12,
  workers: 4,
  shmEntries: 4,
}

async function main(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), 'blockgate-soak-'))
  const server = await startServer({
    TMPDIR: scratch,
    BLOCKGATE_LOG_LEVEL: 'error',
    BLOCKGATE_MAX_WORKERS: '4',
    BLOCKGATE_MIN_WARM_WORKERS: '2',
    BLOCKGATE_MEMORY_LIMIT_BYTES: String(1024 ** 3),
    BLOCKGATE_PROCESS_LIMIT: '32',
    BLOCKGATE_QUEUE_TIMEOUT_MS: '60000',
  })
  const startedAt = performance.now()
  const endsAt = startedAt + MINUTES * 60_000
  const results = new Map<
    string,
    { outcomes: Record<Outcome, number>; ms: number[]; lost: string[] }
  >()
  for (const traffic of TRAFFIC)
    results.set(traffic.name, {
      outcomes: { ok: 0, 'refused as expected': 0, lost: 0 },
      ms: [],
      lost: [],
    })
  const samples: Sample[] = [await sample(server, startedAt)]
  let next = 0
  const sampler = setInterval(
    () => void sample(server, startedAt).then((s) => samples.push(s)),
    SAMPLE_EVERY_MS,
  )
  const progress = setInterval(() => {
    const sent = [...results.values()].reduce((sum, r) => sum + r.ms.length, 0)
    const lost = [...results.values()].reduce((sum, r) => sum + r.outcomes.lost, 0)
    const last = samples.at(-1)!
    console.error(
      `soak: ${Math.round((performance.now() - startedAt) / 1000)} s, ${sent} runs, ${lost} lost, RSS ${last.rssMiB.toFixed(0)} MiB, ${last.fds} fds, ${last.processes} processes`,
    )
  }, 15_000)
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < endsAt) {
        const i = next++
        const traffic = pick(i)
        const result = results.get(traffic.name)!
        const sentAt = performance.now()
        let outcome: Outcome
        try {
          outcome = await traffic.send(server, i)
        } catch (error) {
          outcome = 'lost'
          result.lost.push((error as Error).message)
        }
        result.ms.push(performance.now() - sentAt)
        result.outcomes[outcome]++
      }
    }),
  )
  clearInterval(sampler)
  clearInterval(progress)
  await Bun.sleep(SAMPLE_EVERY_MS)
  samples.push(await sample(server, startedAt))
  await server.stop()
  rmSync(scratch, { recursive: true, force: true })

  const report = reportOf(results, samples)
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)
  const dir = resolve(import.meta.dir, 'results')
  mkdirSync(dir, { recursive: true })
  writeFileSync(
    join(dir, `soak-${stamp}.md`),
    report.markdown.replace('CHART', `soak-${stamp}.svg`),
  )
  writeFileSync(join(dir, `soak-${stamp}.svg`), await chartOf(samples))
  console.log(report.markdown.replace('CHART', `soak-${stamp}.svg`))
  console.error(`soak: wrote bench/results/soak-${stamp}.md and .svg`)
  process.exit(report.passed ? 0 : 1)
}

function reportOf(
  results: Map<string, { outcomes: Record<Outcome, number>; ms: number[]; lost: string[] }>,
  samples: Sample[],
) {
  const percentile = (values: number[], p: number) =>
    [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * p))] ??
    0
  const lines = [
    `# Soak: ${MINUTES} min at concurrency ${CONCURRENCY}, ${new Date().toISOString()}`,
    '',
    '| traffic | runs | ok | refused as expected | lost | p50 | p99 |',
    '|---|--:|--:|--:|--:|--:|--:|',
  ]
  let lost = 0
  let runs = 0
  for (const traffic of TRAFFIC) {
    const r = results.get(traffic.name)!
    lost += r.outcomes.lost
    runs += r.ms.length
    lines.push(
      `| ${traffic.name}${traffic.hostile ? ' (hostile)' : ''} | ${r.ms.length} | ${r.outcomes.ok} | ${r.outcomes['refused as expected']} | ${r.outcomes.lost} | ${percentile(r.ms, 0.5).toFixed(1)} ms | ${percentile(r.ms, 0.99).toFixed(1)} ms |`,
    )
  }
  lines.push(`| **all** | ${runs} | | | **${lost}** | | |`, '')
  // The first and the last part of the run: its first and last minute, or thirds of a short run.
  const spanS = samples.at(-1)!.atS
  const partS = Math.min(60, spanS / 3)
  const first = samples.filter((s) => s.atS <= partS)
  const last = samples.filter((s) => s.atS >= spanS - partS)
  lines.push(
    `Resources, median of the samples (every ${SAMPLE_EVERY_MS / 1000} s) in the first and the last ${Math.round(partS)} s:`,
    '',
    '| resource | first | last | growth | flat within |',
    '|---|--:|--:|--:|--:|',
  )
  let flat = true
  for (const resource of RESOURCES) {
    const a = median(first.map((s) => s[resource]))
    const b = median(last.map((s) => s[resource]))
    const ok = b - a <= FLAT_WITHIN[resource]
    flat &&= ok
    lines.push(
      `| ${resource} | ${a.toFixed(1)} | ${b.toFixed(1)} | ${(b - a).toFixed(1)}${ok ? '' : ' **growing**'} | ${FLAT_WITHIN[resource]} |`,
    )
  }
  const lostReasons = [...results.values()].flatMap((r) => r.lost).slice(0, 10)
  if (lostReasons.length > 0)
    lines.push('', 'First lost runs:', ...lostReasons.map((m) => `- ${m}`))
  lines.push(
    '',
    `Lost runs: ${lost}. Resources ${flat ? 'flat' : 'GROWING'}.`,
    '',
    '![resources over the run](CHART)',
    '',
  )
  return { markdown: lines.join('\n'), passed: lost === 0 && flat }
}

async function chartOf(samples: Sample[]): Promise<string> {
  const values = samples.flatMap((s) =>
    RESOURCES.map((resource) => ({ atS: s.atS, resource, value: s[resource] })),
  )
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: `blockgate soak: the server's resources over ${MINUTES} min`, anchor: 'start' },
    config: { font: 'sans-serif' },
    data: { values },
    facet: { row: { field: 'resource', type: 'nominal', title: null } },
    spec: {
      width: 520,
      height: 70,
      mark: { type: 'line', point: false },
      encoding: {
        x: { field: 'atS', type: 'quantitative', title: 'seconds' },
        y: { field: 'value', type: 'quantitative', title: null, scale: { zero: false } },
      },
    },
    resolve: { scale: { y: 'independent' } },
  }
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' })
  const svg = await view.toSVG()
  view.finalize()
  return `${svg}\n`
}

await main()
