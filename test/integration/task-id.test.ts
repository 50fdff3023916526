// MODAL_TASK_ID (template/runtime/task_id.py): every runtime a block runs in has its own id
// starting with "ta-", as Modal's containers do; Roboflow's tests read it inside a block to
// prove the block ran remotely. Local workers and E2B sandboxes (the stand-in), each runtime
// its own, the same one for a warm runtime's next run.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createApp } from '../../src/app.ts'
import { checkedApp } from '../support/contract.ts'
import { E2BPool } from '../../src/backends/e2b/pool.ts'
import { createBackends } from '../../src/backends/index.ts'
import { loadConfig } from '../../src/config.ts'
import { startStandin, type Standin } from '../standin/e2b/index.ts'
import { standinE2BConfig } from '../support/e2b-config.ts'
import { readAnswer, runRequest } from '../support/http.ts'

const TASK_ID_BLOCK = `def run(self):
    import os
    return {"task_id": os.environ.get("MODAL_TASK_ID")}
`

const config = loadConfig({ BLOCKGATE_MIN_WARM_WORKERS: '0', BLOCKGATE_MAX_WORKERS: '4' })
let standin: Standin
let backends: ReturnType<typeof createBackends>
let app: ReturnType<typeof createApp>

beforeAll(async () => {
  standin = await startStandin()
  const e2b = new E2BPool(standinE2BConfig(standin, { BLOCKGATE_E2B_MAX_SANDBOXES: '3' }), {
    maxFrameBytes: 64 << 20,
    queueTimeoutMs: 20_000,
  })
  backends = { ...createBackends(config), e2b }
  app = checkedApp(createApp({ config, backends }))
  await Promise.all(Object.values(backends).map((b) => b.start()))
}, 60_000)
afterAll(async () => {
  await Promise.all(Object.values(backends ?? {}).map((b) => b.stop()))
  await standin?.stop()
})

async function taskId(backend: 'local' | 'e2b', workspace: string): Promise<string> {
  const response = await app.request(
    '/v1/run',
    runRequest({ code: { run_function_code: TASK_ID_BLOCK }, backend, workspace }, 'json'),
  )
  const answer = await readAnswer(response)
  expect(response.status).toBe(200)
  return answer.outputs.task_id
}

describe('MODAL_TASK_ID inside a block', () => {
  for (const backend of ['local', 'e2b'] as const)
    test(`${backend}: "ta-" and 16 hex digits, one per runtime, kept while it is warm`, async () => {
      const first = await taskId(backend, `${backend}-one`)
      expect(first).toMatch(/^ta-[0-9a-f]{16}$/)
      expect(await taskId(backend, `${backend}-one`)).toBe(first) // the same warm runtime
      const other = await taskId(backend, `${backend}-two`) // another workspace: another runtime
      expect(other).toMatch(/^ta-[0-9a-f]{16}$/)
      expect(other).not.toBe(first)
    }, 60_000)
})
