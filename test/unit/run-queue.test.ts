// The run queue on its own: which waiting run gets a runtime that frees, and its bounds.
import { describe, expect, test } from 'bun:test'
import { RunQueue, type RunQueueOptions, tenantOf } from '../../src/backends/run-queue.ts'

describe('the queue picks the waiting tenant that holds the fewest', () => {
  const queue = (options: Partial<RunQueueOptions> = {}) =>
    new RunQueue<string>({
      maxQueue: 16,
      tenantMaxQueue: 8,
      tenantShare: 2,
      timeoutMs: 10_000,
      size: 4,
      runtimes: 'workers',
      shareSetting: 'BLOCKGATE_TENANT_MAX_WORKERS',
      ...options,
    })
  const anywhere = () => 2 // every waiter would need a new worker

  test('fewest held first, then the oldest; a tenant at its share is passed over', async () => {
    const q = queue()
    q.hold('key a')
    q.hold('key a')
    q.hold('key b')
    const order: string[] = []
    const served = ['key a', 'key b', 'key c', 'key b'].map((tenant, n) =>
      q.wait(tenant, 'ws', 'h', undefined).then(() => order.push(`${tenant}#${n}`)),
    )
    const give = () => {
      const waiter = q.next(anywhere)
      waiter?.give('runtime')
      return waiter?.tenant
    }
    expect(give()).toBe('key c') // holds none
    expect(give()).toBe('key b') // b holds 1, c now 1: b waited longer
    expect(give()).toBeUndefined() // a and b are at their share
    q.drop('key a')
    expect(give()).toBe('key a')
    q.drop('key b')
    expect(give()).toBe('key b')
    await Promise.all(served)
    expect(order).toEqual(['key c#2', 'key b#1', 'key a#0', 'key b#3'])
    expect(q.held('key a')).toBe(2)
  })

  test('among tenants holding as many, one served without a new worker goes first', () => {
    const q = queue()
    void q.wait('workspace x', 'x', 'h', undefined)
    void q.wait('workspace y', 'y', 'h', undefined)
    const waiter = q.next((w) => (w.workspace === 'y' ? 0 : 2))
    expect(waiter?.tenant).toBe('workspace y')
  })

  test('a long queue is priced once per workspace and block, not once per waiter', () => {
    const q = queue({ maxQueue: 100, tenantMaxQueue: 100, tenantShare: 4 })
    q.hold('key a') // holds one: no early stop, every waiter is looked at
    for (let n = 0; n < 60; n++) void q.wait('key a', n % 2 ? 'x' : 'y', 'h', undefined)
    const priced: string[] = []
    const waiter = q.next((w) => {
      priced.push(w.workspace)
      return w.workspace === 'x' ? 1 : 2
    })
    expect(priced.sort()).toEqual(['x', 'y'])
    expect(waiter?.workspace).toBe('x') // the cheaper, and of those the oldest
  })

  test('a long queue of distinct blocks: a warm runtime for the first waiter ends the scan', () => {
    const q = queue({ maxQueue: 1000, tenantMaxQueue: 1000, size: 2 })
    q.hold('key a') // one run going, one worker just freed: every release looks like this
    for (let n = 0; n < 500; n++) void q.wait('key a', 'ws', `block ${n}`, undefined)
    let priced = 0
    const waiter = q.next(() => {
      priced++
      return 0
    })
    expect(waiter?.hash).toBe('block 0')
    expect(priced).toBe(1)
    // Now at its share: the next release prices nobody.
    expect(q.next(() => priced++)).toBeUndefined()
    expect(priced).toBe(1)
    q.rejectAll(new Error('done'))
  })

  test("a tenant's own bound is a 429 naming it; other tenants still queue", async () => {
    const q = queue({ tenantMaxQueue: 1 })
    void q.wait('key a', 'ws', 'h', undefined)
    const refused = await q.wait('key a', 'ws', 'h', undefined).catch((e) => e)
    expect(refused.status).toBe(429)
    expect(refused.message).toContain('key a')
    expect(refused.message).toContain('BLOCKGATE_TENANT_MAX_QUEUE')
    void q.wait('key b', 'ws', 'h', undefined)
    expect(q.length).toBe(2)
  })

  test('a waiter that gave up is not handed a runtime', async () => {
    const q = queue()
    const controller = new AbortController()
    const waiting = q.wait('key a', 'ws', 'h', controller.signal).catch((e) => e)
    const waiter = q.next(anywhere)!
    controller.abort()
    expect(waiter.give('runtime')).toBe(false)
    expect((await waiting).status).toBe(503)
  })

  test('the tenant is the key when the run came with one, else the workspace', () => {
    expect(tenantOf({ workspace: 'acme', keyId: 'acme-ci' })).toBe('key acme-ci')
    expect(tenantOf({ workspace: 'acme' })).toBe('workspace acme')
  })
})
