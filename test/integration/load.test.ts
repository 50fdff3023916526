// 200 concurrent runs of mixed blocks and workspaces against the real sandboxed pool:
// every answer correct, none lost, and no worker left behind afterwards.
import { expect, test } from 'bun:test'
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { createApp } from '../../src/app.ts'
import { checkedApp } from '../support/contract.ts'
import { loadConfig } from '../../src/config.ts'
import type { LocalPool } from '../../src/backends/local/pool.ts'
import { createBackends } from '../../src/backends/index.ts'
import { readAnswer, runRequest } from '../support/http.ts'
import { settledProcesses } from '../support/processes.ts'

test('200 concurrent mixed runs: all correct, none lost, no worker leaked', async () => {
  const before = await settledProcesses()
  const config = loadConfig({
    BLOCKGATE_MIN_WARM_WORKERS: '2',
    BLOCKGATE_MAX_WORKERS: '6',
    BLOCKGATE_QUEUE_TIMEOUT_MS: '60000',
  })
  const backends = createBackends(config)
  const pool = backends.local as LocalPool
  await pool.start()
  const app = checkedApp(createApp({ config, backends }))
  const blocks = [
    {
      code: 'def run(self, a, b):\n    return {"r": a + b}\n',
      expect: (a: number, b: number) => a + b,
    },
    {
      code: 'def run(self, a, b):\n    return {"r": a * b}\n',
      expect: (a: number, b: number) => a * b,
    },
    {
      code: 'import time\ndef run(self, a, b):\n    time.sleep(0.002)\n    return {"r": a - b}\n',
      expect: (a: number, b: number) => a - b,
    },
  ]
  const workspaces = ['acme', 'globex', 'initech', 'umbrella']
  try {
    const results = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const block = blocks[i % blocks.length]!
        const format = i % 2 ? 'cbor' : 'json'
        const response = await app.request(
          '/v1/run',
          runRequest(
            {
              code: { run_function_code: block.code },
              inputs: { a: i, b: 7 },
              workspace: workspaces[i % workspaces.length],
            },
            format,
          ),
        )
        const answer = await readAnswer(response)
        return { status: response.status, got: answer.outputs?.r, want: block.expect(i, 7) }
      }),
    )
    expect(results.filter((r) => r.status !== 200)).toEqual([])
    expect(results.map((r) => r.got)).toEqual(results.map((r) => r.want))
    expect(pool.workers().length).toBeLessThanOrEqual(6)
    // Each worker's shared-memory region lost its name as soon as the worker mapped it.
    for (const dir of existsSync('/dev/shm')
      ? readdirSync('/dev/shm').filter((name) => name.startsWith('blockgate-'))
      : []) {
      expect(readdirSync(join('/dev/shm', dir))).toEqual([])
    }
    for (const worker of pool.workers())
      expect(worker.workspace === null || workspaces.includes(worker.workspace)).toBe(true)
  } finally {
    await pool.stop()
  }
  expect(await settledProcesses()).toBeLessThanOrEqual(before) // every worker, holder and zygote is gone
}, 120_000)
