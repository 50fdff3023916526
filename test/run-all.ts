// `npm test`: type-check, the bun suites (unit, then integration), the Python runtime's
// pytest suite and the Python client's (clients/python, in .venv-client), then one closing line `N passed, N failed` summing them all (counted from
// their JUnit reports).
// Exits non-zero if anything failed, so a failure can never hide behind a green summary.
import { mkdirSync, readFileSync, rmSync } from 'node:fs'
import { resolve } from 'node:path'

const root = resolve(import.meta.dir, '..')
const reports = resolve(root, '.test-results')
rmSync(reports, { recursive: true, force: true })
mkdirSync(reports, { recursive: true })

interface Counts {
  passed: number
  failed: number
  skipped: number
}

function run(label: string, cmd: string[], cwd = root): number {
  console.log(`\n── ${label}: ${cmd.join(' ')}`)
  const { exitCode } = Bun.spawnSync({
    cmd,
    cwd,
    stdout: 'inherit',
    stderr: 'inherit',
    env: process.env,
  })
  return exitCode
}

/** Counts the <testcase>s of a JUnit file (suites may nest); a missing report is one failure. */
function junitCounts(file: string, label: string): Counts {
  let xml: string
  try {
    xml = readFileSync(file, 'utf8')
  } catch {
    console.error(`${label}: no report at ${file}: the suite did not run`)
    return { passed: 0, failed: 1, skipped: 0 }
  }
  const counts = { passed: 0, failed: 0, skipped: 0 }
  for (const [, , body = ''] of xml.matchAll(/<testcase\b[^>]*?(\/>|>([\s\S]*?)<\/testcase>)/g)) {
    if (/<(failure|error)\b/.test(body)) counts.failed++
    else if (/<skipped\b/.test(body)) counts.skipped++
    else counts.passed++
  }
  return counts
}

const bun = process.execPath
const python = resolve(root, '.venv/bin/python')
const total: Counts = { passed: 0, failed: 0, skipped: 0 }
const add = (c: Counts) => {
  total.passed += c.passed
  total.failed += c.failed
  total.skipped += c.skipped
}

const typecheck = run('typecheck', [
  bun,
  resolve(root, 'node_modules/typescript/bin/tsc'),
  '--noEmit',
  '-p',
  '.',
])
// The playground's page is browser code: its own project, with the DOM's types.
const typecheckPage = run('typecheck the playground page', [
  bun,
  resolve(root, 'node_modules/typescript/bin/tsc'),
  '--noEmit',
  '-p',
  'src/playground/page',
])
if (typecheck !== 0 || typecheckPage !== 0) add({ passed: 0, failed: 1, skipped: 0 })

// Unit tests first (no bubblewrap, no Python: seconds), then the integration tests (real
// sandboxed workers, the E2B stand-in, real servers). Those mostly wait (timeouts, retries,
// restarts: about half the CPU is idle), so their files run on one Bun worker per core, the
// slowest first (durations in test/integration-timings.json; `--update-timings` refreshes it).
// The files that bound another tenant's latency under attack run alone afterwards: a file
// beside them on the other core would make their bounds measure the machine, not the server.
const ALONE = ['test/integration/tenants.test.ts']
const suites: { name: string; options: string[]; paths: string[] }[] = [
  { name: 'unit', options: [], paths: ['test/unit'] },
  {
    name: 'integration',
    options: [
      '--parallel',
      '--timings=test/integration-timings.json',
      ...ALONE.map((file) => `--path-ignore-patterns=${file}`),
    ],
    paths: ['test/integration'],
  },
  { name: 'integration, alone', options: [], paths: ALONE },
]
const bunCounts: Counts = { passed: 0, failed: 0, skipped: 0 }
let bunExit = 0
for (const [index, suite] of suites.entries()) {
  const report = resolve(reports, `bun-${index}.xml`)
  const exit = run(`bun ${suite.name} tests`, [
    bun,
    'test',
    '--timeout',
    '60000',
    ...suite.options,
    '--reporter=junit',
    `--reporter-outfile=${report}`,
    ...suite.paths,
  ])
  const counts = junitCounts(report, `bun ${suite.name} tests`)
  console.log(`${suite.name}: ${counts.passed} passed, ${counts.failed} failed`)
  bunCounts.passed += counts.passed
  bunCounts.failed += counts.failed
  bunCounts.skipped += counts.skipped
  bunExit ||= exit
}
add(bunCounts)

const pyReport = resolve(reports, 'pytest.xml')
// The runtime's tests, and each serializer plugin's Python half beside its TS half.
const pyExit = run('python tests', [
  python,
  '-m',
  'pytest',
  '-q',
  '-p',
  'no:cacheprovider',
  `--junitxml=${pyReport}`,
  'template/tests',
  'serializers',
])
const pyCounts = junitCounts(pyReport, 'python tests')

// The Python client, installed by setup into a venv of its own, against a live server.
const clientReport = resolve(reports, 'pytest-client.xml')
const clientExit = run('python client tests', [
  resolve(root, '.venv-client/bin/python'),
  '-m',
  'pytest',
  '-q',
  '-p',
  'no:cacheprovider',
  `--junitxml=${clientReport}`,
  'clients/python/tests',
])
const clientCounts = junitCounts(clientReport, 'python client tests')
pyCounts.passed += clientCounts.passed
pyCounts.failed += clientCounts.failed
pyCounts.skipped += clientCounts.skipped
add(pyCounts)

console.log(
  `\nTypeScript: ${bunCounts.passed} passed, ${bunCounts.failed} failed; Python: ${pyCounts.passed} passed, ${pyCounts.failed} failed`,
)
const anyFailure =
  typecheck !== 0 ||
  typecheckPage !== 0 ||
  bunExit !== 0 ||
  pyExit !== 0 ||
  clientExit !== 0 ||
  total.failed > 0
if (anyFailure && total.failed === 0) total.failed = 1 // a runner failed without a counted test
console.log(
  `${total.passed} passed, ${total.failed} failed${total.skipped ? `, ${total.skipped} skipped` : ''}`,
)
process.exit(anyFailure ? 1 : 0)
