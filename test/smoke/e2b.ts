// `npm run smoke:e2b`: blockgate's e2b backend end to end, on real E2B when E2B_API_KEY is
// set, else on the offline stand-in (so CI proves the script itself works).
//  1. finds the template (and builds it, on E2B, if it is missing);
//  2. runs the parity blocks (every kind, CBOR and JSON) on local workers and on e2b, and
//     checks that the answers are identical;
//  3. prints cold and warm timings and the control-plane calls blockgate made;
//  4. stops, then lists the sandboxes of this run's deployment id: there must be none.
// Exits 1 on any difference, failure or sandbox left behind.
import { Sandbox, Template } from 'e2b'
import { createApp } from '../../src/app.ts'
import type { E2BPool } from '../../src/backends/e2b/pool.ts'
import { METADATA } from '../../src/backends/e2b/lifecycle.ts'
import { createBackends } from '../../src/backends/index.ts'
import { loadConfig } from '../../src/config.ts'
import { setLogLevel } from '../../src/log.ts'
import { startE2BTarget } from '../../bench/e2b-target.ts'
import { readAnswer, runRequest, SUM_BLOCK } from '../support/http.ts'
import { comparable, parityBlocks } from '../support/parity.ts'

const WARM_RUNS = 10

setLogLevel('warn') // the per-run log lines would bury the report

const problems: string[] = []
const say = (line: string) => console.log(line)

const target = await startE2BTarget()
const deploymentId = `smoke-${crypto.randomUUID().slice(0, 8)}`
const config = loadConfig({
  ...target.env,
  BLOCKGATE_DEPLOYMENT_ID: deploymentId,
  BLOCKGATE_MIN_WARM_WORKERS: '1',
  // The stand-in allows any creation rate; E2B's plan does not (its default applies).
  ...(target.name === 'e2b-standin' ? { BLOCKGATE_E2B_CREATES_PER_SECOND: '100' } : {}),
})
const e2bConfig = config.e2b
if (!e2bConfig) throw new Error('no e2b config: E2B_API_KEY is missing from the target')
say(
  `smoke:e2b against ${target.name}, template ${e2bConfig.templateId}, deployment ${deploymentId}`,
)

const backends = createBackends(config)
const e2b = backends.e2b as E2BPool
const connection = e2b.lifecycle.connection

try {
  // 1. The template.
  if (e2bConfig.mode === 'template' && !(await Template.exists(e2bConfig.templateId, connection))) {
    if (target.name !== 'e2b-cloud')
      throw new Error(`the stand-in has no template ${e2bConfig.templateId}`)
    say(`template ${e2bConfig.templateId} not found: building it (bun run template/build.ts)`)
    const build = Bun.spawnSync({
      cmd: [process.execPath, 'run', 'template/build.ts'],
      stdout: 'inherit',
      stderr: 'inherit',
    })
    if (build.exitCode !== 0) throw new Error(`the template build failed (exit ${build.exitCode})`)
  }
  say(`template ${e2bConfig.templateId}: found`)

  await Promise.all(Object.values(backends).map((b) => b.start()))
  const app = createApp({ config, backends })
  const run = async (body: Record<string, unknown>, format: 'cbor' | 'json' = 'json') => {
    const startedAt = performance.now()
    const response = await app.request('/v1/run', runRequest(body, format))
    return {
      status: response.status,
      answer: await readAnswer(response),
      ms: performance.now() - startedAt,
    }
  }

  // 2. Parity: one workspace per backend, the same blocks.
  for (const block of parityBlocks()) {
    for (const format of block.formats) {
      const [local, remote] = [
        await run(
          {
            code: { run_function_code: block.code },
            inputs: block.inputs,
            backend: 'local',
            workspace: 'parity',
          },
          format,
        ),
        await run(
          {
            code: { run_function_code: block.code },
            inputs: block.inputs,
            backend: 'e2b',
            workspace: 'parity',
          },
          format,
        ),
      ]
      const same =
        local.status === remote.status &&
        Bun.deepEquals(comparable(local.answer), comparable(remote.answer), true)
      say(
        `parity ${same ? 'ok  ' : 'DIFF'} ${block.name} (${format}): local ${local.status}, e2b ${remote.status}`,
      )
      if (!same) problems.push(`parity: ${block.name} (${format}) differs between local and e2b`)
    }
  }

  // 3. Cold and warm on e2b: a new workspace pays a create (or takes a spare), then runs warm.
  const sum = (n: number) => ({
    code: { run_function_code: SUM_BLOCK },
    inputs: { a: n, b: 1 },
    backend: 'e2b',
    workspace: 'timing',
  })
  const cold = await run(sum(0))
  if (cold.status !== 200 || cold.answer.outputs?.sum !== 1)
    problems.push(`cold run: ${cold.status} ${JSON.stringify(cold.answer)}`)
  const warm: number[] = []
  for (let i = 1; i <= WARM_RUNS; i++) {
    const answer = await run(sum(i))
    if (answer.status !== 200 || answer.answer.outputs?.sum !== i + 1)
      problems.push(`warm run ${i}: ${answer.status}`)
    warm.push(answer.ms)
  }
  warm.sort((a, b) => a - b)
  const median = warm[Math.floor(warm.length / 2)]!
  say(
    `timing: cold ${cold.ms.toFixed(1)} ms (cold_start ${cold.answer.cold_start}); warm p50 ${median.toFixed(2)} ms over ${WARM_RUNS} runs`,
  )
  say(`control-plane calls: ${JSON.stringify(e2b.lifecycle.calls)}`)
} catch (error) {
  problems.push(`failed: ${(error as Error).stack ?? error}`)
} finally {
  await Promise.all(Object.values(backends).map((b) => b.stop()))
  // 4. Nothing left behind (E2B's list may lag a kill by a moment).
  let left: string[] = []
  for (let i = 0; i < 20; i++) {
    const paginator = Sandbox.list({
      ...connection,
      query: { metadata: { [METADATA.deployment]: deploymentId } },
    })
    left = []
    while (paginator.hasNext)
      for (const info of await paginator.nextItems()) left.push(info.sandboxId)
    if (left.length === 0) break
    await Bun.sleep(500)
  }
  say(`sandboxes left behind: ${left.length === 0 ? 'none' : left.join(', ')}`)
  if (left.length > 0) problems.push(`sandboxes left behind: ${left.join(', ')}`)
  await target.stop()
}

for (const problem of problems) console.error(`smoke:e2b: ${problem}`)
say(problems.length === 0 ? 'smoke:e2b: passed' : `smoke:e2b: FAILED (${problems.length} problems)`)
process.exit(problems.length === 0 ? 0 : 1)
