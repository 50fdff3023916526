// /webexec across the instances of one deployment (real redis-server, real blockgate
// processes): Inference sends a block's code once, to whichever instance its request lands on,
// and a later hash-only request runs on any instance, without UnknownCodeHash and a resend. With
// Redis gone each instance answers from its own cache, and the protocol still works.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { type Deployment, startDeployment } from '../support/deployment.ts'
import type { ServerProcess } from '../support/server-process.ts'
import { webexecRequest, withCode, withHash } from '../support/webexec.ts'

let deployment: Deployment

beforeAll(async () => {
  deployment = await startDeployment({ instances: 2 })
}, 120_000)
afterAll(async () => {
  await deployment?.stop()
})

/** POSTs a webexec body to `instance` as Inference's client does (anonymous: no keys configured). */
async function post(instance: ServerProcess, body: unknown, workspace = 'acme') {
  const response = await fetch(
    `${instance.url}/webexec?workspace_id=${workspace}`,
    webexecRequest(body),
  )
  expect(response.status).toBe(200)
  return (await response.json()) as any
}

describe('/webexec on many instances', () => {
  test('code sent to one instance runs by its hash alone on another', async () => {
    const [a, b] = deployment.instances
    const code = 'def run(self, x):\n    return {"y": x * 2}\n'
    const first = await post(a!, withCode(code, { x: 1 }))
    expect(first).toMatchObject({ success: true, result: '{"y":2}' })

    const elsewhere = await post(b!, withHash(code, { x: 21 }))
    expect(elsewhere).toMatchObject({ success: true, result: '{"y":42}' })
    // Still only under its workspace, on every instance.
    expect(await post(b!, withHash(code, { x: 1 }), 'someone-else')).toMatchObject({
      success: false,
      error_type: 'UnknownCodeHash',
    })
  }, 60_000)

  test('the import lines travel with the code', async () => {
    const [a, b] = deployment.instances
    const code = 'def run(self, n):\n    return {"root": math.isqrt(n)}\n'
    const imports = ['import math']
    expect((await post(b!, withCode(code, { n: 16 }, { imports }))).success).toBe(true)
    expect(await post(a!, withHash(code, { n: 81 }, imports))).toMatchObject({
      success: true,
      result: '{"root":9}',
    })
  }, 60_000)

  test('Redis down: each instance knows only what it was sent; a resend still works', async () => {
    const [a, b] = deployment.instances
    await deployment.redis.stop()
    const code = 'def run(self):\n    return {"alone": True}\n'
    expect((await post(a!, withCode(code))).success).toBe(true)
    expect((await post(a!, withHash(code))).success).toBe(true)
    expect(await post(b!, withHash(code))).toMatchObject({ error_type: 'UnknownCodeHash' })
    expect((await post(b!, withCode(code))).success).toBe(true)
    expect((await post(b!, withHash(code))).success).toBe(true)
  }, 60_000)
})
