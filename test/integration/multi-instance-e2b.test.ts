// Three blockgate instances sharing one Redis and one E2B (the offline stand-in, which the real
// SDK drives): the deployment's registry of sandboxes (src/backends/e2b/registry.ts). One
// workspace served through all three uses one sandbox, not three; creates keep the deployment's
// rate; an instance killed with SIGKILL leaves nothing running once its leases ran out and the
// survivors swept, and the survivors keep serving.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { startStandin, type Standin } from '../standin/e2b/index.ts'
import { startDeployment, type Deployment } from '../support/deployment.ts'
import { standinEnv } from '../support/e2b-config.ts'
import { readAnswer, runRequest, SUM_BLOCK } from '../support/http.ts'
import type { ServerProcess } from '../support/server-process.ts'

let standin: Standin

beforeAll(async () => {
  standin = await startStandin()
}, 60_000)
afterAll(async () => {
  await standin?.stop()
})

/** The instances' environment: E2B on the stand-in, the default backend, short leases. */
function e2bEnv(extra: Record<string, string> = {}): Record<string, string> {
  const { BLOCKGATE_DEPLOYMENT_ID: _ours, ...env } = standinEnv(standin)
  return {
    ...env,
    WORKFLOWS_CUSTOM_PYTHON_EXECUTION_MODE: 'e2b',
    BLOCKGATE_REDIS_LEASE_MS: '2000',
    BLOCKGATE_E2B_MAX_SANDBOXES: '6',
    ...extra,
  }
}

async function run(
  instance: ServerProcess,
  workspace: string,
  a: number,
): Promise<{ status: number; answer: any }> {
  const response = await fetch(
    `${instance.url}/v1/run`,
    runRequest({ code: { run_function_code: SUM_BLOCK }, inputs: { a, b: 1 }, workspace }, 'json'),
  )
  return { status: response.status, answer: await readAnswer(response) }
}

const readyz = async (instance: ServerProcess) =>
  (await (await fetch(`${instance.url}/readyz`)).json()) as any

async function until(condition: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  for (const end = performance.now() + ms; !(await condition()); ) {
    if (performance.now() > end) throw new Error(`condition not met within ${ms} ms`)
    await Bun.sleep(100)
  }
}

describe('three instances, one E2B pool (shared registry)', () => {
  let deployment: Deployment
  afterAll(async () => {
    await deployment?.stop()
  })

  test('one workspace through all three instances: one sandbox, created once, reused by each', async () => {
    deployment = await startDeployment({ instances: 3, env: e2bEnv() })
    const creates = standin.calls.creates.length
    const seen: boolean[] = []
    for (let round = 0; round < 2; round++)
      for (const instance of deployment.instances) {
        const { status, answer } = await run(instance, 'acme', round)
        expect(status).toBe(200)
        expect(answer.outputs.sum).toBe(round + 1)
        seen.push(answer.cold_start)
        await Bun.sleep(50) // its release reaches the registry
      }
    expect(standin.calls.creates.length - creates).toBe(1)
    expect(standin.alive().filter((s) => s.metadata.workspace === 'acme')).toHaveLength(1)
    expect(seen[0]).toBe(true)
    const statuses = await Promise.all(deployment.instances.map(readyz))
    for (const status of statuses) {
      expect(status.shared.mode).toBe('shared')
      expect(status.backends.e2b.registry.shared).toBe(true)
    }
    // Every instance but the first took the sandbox over with a connect, not a create.
    const connects = statuses.map((s) => s.backends.e2b.api_calls.connect)
    expect(connects.reduce((a: number, b: number) => a + b, 0)).toBeGreaterThanOrEqual(2)
  }, 90_000)

  test("creates keep the deployment's rate, not each instance's", async () => {
    await deployment?.stop()
    deployment = await startDeployment({
      instances: 3,
      env: e2bEnv({ BLOCKGATE_E2B_CREATES_PER_SECOND: '3' }),
    })
    const before = standin.calls.createTimes.length
    // Four workspaces at once over the three instances: four creates the deployment spaces
    // a third of a second apart.
    const answers = await Promise.all(
      ['rate-a', 'rate-b', 'rate-c', 'rate-d'].map((workspace, i) =>
        run(deployment.instances[i % 3]!, workspace, 1),
      ),
    )
    for (const { status } of answers) expect(status).toBe(200)
    const times = standin.calls.createTimes.slice(before)
    expect(times).toHaveLength(4)
    const gaps = times.slice(1).map((t, i) => t - times[i]!)
    // Spaced by the shared slot (333 ms), less a little for how requests travel; instances
    // spacing on their own would send their first creates at once.
    for (const gap of gaps) expect(gap).toBeGreaterThan(250)
  }, 90_000)

  test('the cap holds for the deployment: at it, a create ends an idle sandbox of another workspace, whichever instance holds it', async () => {
    await deployment?.stop()
    deployment = await startDeployment({
      instances: 3,
      env: e2bEnv({ BLOCKGATE_E2B_MAX_SANDBOXES: '2' }),
    })
    const [a, b, c] = deployment.instances as [ServerProcess, ServerProcess, ServerProcess]
    const mostAlive = { n: 0 }
    const watch = setInterval(() => {
      mostAlive.n = Math.max(mostAlive.n, standin.alive().length)
    }, 50)
    try {
      for (const [instance, workspace] of [
        [a, 'cap-1'],
        [b, 'cap-2'],
        [c, 'cap-3'], // the deployment is at its cap: one of the two idle ones goes
        [a, 'cap-1'], // and again, whether or not cap-1's was the one that went
      ] as const) {
        const { status, answer } = await run(instance, workspace, 1)
        expect(status).toBe(200)
        expect(answer.outputs.sum).toBe(2)
        await Bun.sleep(50)
        expect(standin.alive().length).toBeLessThanOrEqual(2)
      }
    } finally {
      clearInterval(watch)
    }
    expect(mostAlive.n).toBeLessThanOrEqual(2)
    // Three instances with a pool of two each would have held more; ended ones were others'.
    expect(standin.calls.of('DELETE /sandboxes/:id')).toBeGreaterThanOrEqual(1)
  }, 90_000)

  test('kill -9 of an instance under load: its sandboxes are killed after its leases ran out; the others keep serving', async () => {
    await deployment?.stop()
    deployment = await startDeployment({ instances: 3, env: e2bEnv() })
    const [victim, ...survivors] = deployment.instances as [
      ServerProcess,
      ServerProcess,
      ServerProcess,
    ]
    // Load: each instance keeps a workspace of its own busy.
    let loading = true
    const failures: number[] = []
    const load = deployment.instances.map(async (instance, i) => {
      for (let n = 0; loading; n++) {
        const { status } = await run(instance, `kill-${i}`, n).catch(() => ({ status: 0 }))
        if (instance !== victim && status !== 200) failures.push(status)
      }
    })
    await until(() => standin.alive().some((s) => s.metadata.workspace === 'kill-0'), 20_000)
    await Bun.sleep(500)
    process.kill(victim.pid, 'SIGKILL')
    await victim.exited
    const victimSandboxes = standin
      .alive()
      .filter((s) => s.metadata.workspace === 'kill-0')
      .map((s) => s.sandboxId)
    expect(victimSandboxes.length).toBeGreaterThan(0)
    await Bun.sleep(1000) // the survivors go on serving meanwhile
    loading = false
    await Promise.all(load)
    expect(failures).toEqual([])
    // Lease (2 s) plus a sweep period (about a lease): the dead instance's sandboxes are gone.
    await until(() => !standin.alive().some((s) => victimSandboxes.includes(s.sandboxId)), 10_000)
    // What is left is exactly what the survivors hold.
    const held = (await Promise.all(survivors.map(readyz))).reduce(
      (sum, status) => sum + status.backends.e2b.live,
      0,
    )
    expect(standin.alive()).toHaveLength(held)
    // And the survivors still serve the dead instance's workspace.
    expect((await run(survivors[0], 'kill-0', 41)).answer.outputs.sum).toBe(42)
    await deployment.stop()
    expect(standin.alive()).toEqual([])
  }, 90_000)
})
