// The warm-pool policy on its own, with a fake provider: no bubblewrap, no Python, no E2B.
import { describe, expect, test } from 'bun:test'
import type { RunJob } from '../../src/backends/backend.ts'
import {
  WarmPool,
  type Acquired,
  type PooledRuntime,
  type RuntimeProvider,
  type WarmPoolOptions,
} from '../../src/backends/warm-pool.ts'

interface FakeRuntime extends PooledRuntime {
  loaded: Set<string>
}

/** Starts runtimes at once (or when `hold` says so), and records every start and end. */
class FakeProvider implements RuntimeProvider<FakeRuntime> {
  started: FakeRuntime[] = []
  ended: string[] = []
  idledIds: string[] = []
  startable = true
  /** When set, starts wait for it. */
  hold: Promise<void> | null = null
  failNext: Error | null = null
  keep = (_: FakeRuntime) => true
  private next = 0

  async start(workspace: string | null): Promise<FakeRuntime> {
    if (this.hold) await this.hold
    if (this.failNext) {
      const error = this.failNext
      this.failNext = null
      throw error
    }
    const runtime: FakeRuntime = { id: `r${this.next++}`, workspace, runs: 0, loaded: new Set() }
    this.started.push(runtime)
    return runtime
  }
  /** When set, ends land when it resolves (an E2B kill on its way). */
  endHold: Promise<void> | null = null
  async end(runtime: FakeRuntime): Promise<void> {
    this.ended.push(runtime.id)
    if (this.endHold) await this.endHold
  }
  holds(runtime: FakeRuntime, hash: string): boolean {
    return runtime.loaded.has(hash)
  }
  canStart(): boolean {
    return this.startable
  }
  reusable(runtime: FakeRuntime): boolean {
    return this.keep(runtime)
  }
  async idled(runtime: FakeRuntime): Promise<void> {
    this.idledIds.push(runtime.id)
  }
}

function poolWith(options: Partial<WarmPoolOptions> = {}) {
  const provider = new FakeProvider()
  const pool = new WarmPool(provider, {
    backend: 'local',
    spares: 0,
    size: 2,
    maxQueue: 8,
    tenantMaxQueue: 8,
    tenantShare: 2,
    shareSetting: 'BLOCKGATE_TENANT_MAX_WORKERS',
    queueTimeoutMs: 2000,
    runtimes: 'workers',
    startSpan: { name: 'worker.spawn', attributes: {} },
    ...options,
  })
  return { provider, pool }
}

const job = (workspace: string, hash = 'h1', signal?: AbortSignal, keyId?: string): RunJob =>
  ({
    block: { hash },
    workspace,
    keyId,
    inputs: {},
    timeoutMs: 1000,
    outputFormat: 'json',
    signal,
    context: {},
  }) as unknown as RunJob

/** A run that loads its block and answers. */
function done(
  pool: WarmPool<FakeRuntime>,
  acquired: Acquired<FakeRuntime>,
  hash = 'h1',
  answered = true,
): void {
  acquired.runtime.loaded.add(hash)
  acquired.runtime.runs++
  pool.finish(acquired, answered, answered ? undefined : 'crashed')
}

describe('the warm pool', () => {
  test('a run of the same workspace and block gets the warm runtime back, not a new one', async () => {
    const { provider, pool } = poolWith()
    const first = await pool.acquire(job('acme'))
    expect(first.started).toBe(true)
    done(pool, first)
    const second = await pool.acquire(job('acme'))
    expect(second.started).toBe(false)
    expect(second.runtime).toBe(first.runtime)
    expect(provider.started.length).toBe(1)
    expect(provider.idledIds).toEqual([first.runtime.id])
  })

  test('an idle runtime another instance took meanwhile (claim says no) is let go, not ended, and the run gets another', async () => {
    const { provider, pool } = poolWith({ size: 2, tenantShare: 1 })
    const taken = new Set<string>()
    Object.assign(provider, { claim: async (r: FakeRuntime) => !taken.has(r.id) })
    const first = await pool.acquire(job('acme'))
    done(pool, first)
    taken.add(first.runtime.id) // another instance of the deployment took it from the registry
    const second = await pool.acquire(job('acme'))
    expect(second.runtime).not.toBe(first.runtime)
    expect(second.started).toBe(true)
    expect(provider.ended).toEqual([]) // theirs now: not ended here
    expect(pool.list().map((r) => r.id)).toEqual([second.runtime.id]) // nor counted
    done(pool, second) // the tenant's share (1) was given back for the run that was let go
    expect((await pool.acquire(job('acme'))).runtime).toBe(second.runtime)
  })

  test('among idle runtimes of the workspace, the one holding the block goes first', async () => {
    const { pool } = poolWith()
    const [a, b] = await Promise.all([
      pool.acquire(job('acme', 'h1')),
      pool.acquire(job('acme', 'h2')),
    ])
    done(pool, a!, 'h1')
    done(pool, b!, 'h2')
    expect((await pool.acquire(job('acme', 'h2'))).runtime).toBe(b!.runtime)
  })

  test('another workspace never gets a runtime that served this one', async () => {
    const { provider, pool } = poolWith()
    const mine = await pool.acquire(job('acme'))
    done(pool, mine)
    const theirs = await pool.acquire(job('beta'))
    expect(theirs.runtime).not.toBe(mine.runtime)
    expect(theirs.runtime.workspace).toBe('beta')
    expect(provider.started.length).toBe(2)
  })

  test('spares are started ahead, bound to the first workspace that takes one, and refilled', async () => {
    const { provider, pool } = poolWith({ spares: 1, size: 3 })
    await pool.warmUp()
    expect(pool.counts()).toMatchObject({ spares: 1, live: 1 })
    const spare = provider.started[0]!
    const acquired = await pool.acquire(job('acme'))
    expect(acquired.runtime).toBe(spare)
    expect(acquired.started).toBe(true) // a fresh spare still loads the block: a cold start
    expect(spare.workspace).toBe('acme')
    for (let i = 0; i < 20 && pool.counts().spares === 0; i++) await Bun.sleep(5)
    expect(pool.counts()).toMatchObject({ spares: 1, live: 2 })
  })

  test('a full pool ends an idle runtime of another workspace to make room', async () => {
    const { provider, pool } = poolWith({ size: 1 })
    const acme = await pool.acquire(job('acme'))
    done(pool, acme)
    const beta = await pool.acquire(job('beta'))
    expect(provider.ended).toEqual([acme.runtime.id])
    expect(beta.runtime.workspace).toBe('beta')
  })

  test('with every runtime busy a run waits, and gets the runtime the first run hands back', async () => {
    const { pool } = poolWith({ size: 1 })
    const first = await pool.acquire(job('acme'))
    const waiting = pool.acquire(job('acme'))
    await Bun.sleep(20)
    expect(pool.counts().queued).toBe(1)
    done(pool, first)
    const second = await waiting
    expect(second.runtime).toBe(first.runtime)
    expect(second.waitedMs).toBeGreaterThanOrEqual(15)
  })

  test('a tenant at its share waits while another tenant is served at once', async () => {
    const { pool } = poolWith({ size: 2, tenantShare: 1 })
    const hog = await pool.acquire(job('hog'))
    let hogServed = false
    const hogAgain = pool.acquire(job('hog')).then((a) => {
      hogServed = true
      return a
    })
    const other = await pool.acquire(job('other'))
    expect(other.runtime.workspace).toBe('other')
    expect(hogServed).toBe(false)
    done(pool, hog)
    expect((await hogAgain).runtime).toBe(hog.runtime)
    done(pool, other)
  })

  test('the waiting tenant that holds the fewest is served first, not the oldest waiter', async () => {
    const { pool } = poolWith({ size: 2, tenantShare: 2 })
    const [a1, a2] = await Promise.all([pool.acquire(job('a')), pool.acquire(job('a'))])
    const order: string[] = []
    const served = (tenant: string) => (a: Acquired<FakeRuntime>) => {
      order.push(tenant)
      return a
    }
    const a3 = pool.acquire(job('a')).then(served('a'))
    await Bun.sleep(5)
    const b1 = pool.acquire(job('b')).then(served('b'))
    await Bun.sleep(5)
    done(pool, a1!) // frees one: b holds none, a holds one
    await b1
    done(pool, a2!)
    await a3
    expect(order).toEqual(['b', 'a'])
  })

  test('a runtime that did not answer is ended; one the provider will not keep is ended after its run', async () => {
    const { provider, pool } = poolWith()
    const crashed = await pool.acquire(job('acme'))
    done(pool, crashed, 'h1', false)
    expect(provider.ended).toEqual([crashed.runtime.id])
    provider.keep = (r) => r.runs < 2
    const a = await pool.acquire(job('acme'))
    done(pool, a)
    expect(provider.ended.length).toBe(1)
    done(pool, await pool.acquire(job('acme')))
    expect(provider.ended).toEqual([crashed.runtime.id, a.runtime.id]) // recycled after its second run
    expect(pool.counts().live).toBe(0)
  })

  test('a run that gives up waiting (client gone) leaves the queue and takes no runtime', async () => {
    const { pool } = poolWith({ size: 1 })
    const first = await pool.acquire(job('acme'))
    const controller = new AbortController()
    const gone = pool.acquire(job('acme', 'h1', controller.signal)).catch((e) => e)
    const next = pool.acquire(job('acme'))
    await Bun.sleep(5)
    controller.abort()
    expect((await gone).status).toBe(503)
    done(pool, first)
    expect((await next).runtime).toBe(first.runtime)
  })

  test('the queue is bounded: past maxQueue a run is refused with 429; past the wait bound, 503', async () => {
    const { pool } = poolWith({ size: 1, maxQueue: 1, queueTimeoutMs: 50 })
    await pool.acquire(job('acme'))
    const late = pool.acquire(job('acme')).catch((e) => e)
    const refused = await pool.acquire(job('acme')).catch((e) => e)
    expect(refused.status).toBe(429)
    expect(refused.message).toContain('1 runs are waiting')
    expect((await late).status).toBe(503)
  })

  test('an idle runtime is ended after idleMs', async () => {
    const { provider, pool } = poolWith({ idleMs: 30 })
    const acquired = await pool.acquire(job('acme'))
    done(pool, acquired)
    await Bun.sleep(80)
    expect(provider.ended).toEqual([acquired.runtime.id])
    expect(pool.counts().live).toBe(0)
  })

  test('while no runtime can start, runs wait; they are served once the provider can start again', async () => {
    const { provider, pool } = poolWith()
    provider.startable = false
    let served = false
    const waiting = pool.acquire(job('acme')).then((a) => {
      served = true
      return a
    })
    await Bun.sleep(20)
    expect(served).toBe(false)
    provider.startable = true
    pool.serveWaiters()
    expect((await waiting).started).toBe(true)
  })

  test('a failed start fails the run with its error and is reported until a start succeeds', async () => {
    const { provider, pool } = poolWith()
    provider.failNext = new Error('no room at the inn')
    expect(await pool.acquire(job('acme')).catch((e) => e.message)).toBe('no room at the inn')
    expect(pool.lastError).toBe('no room at the inn')
    await pool.acquire(job('acme'))
    expect(pool.lastError).toBeNull()
    expect(pool.counts().live).toBe(1) // the failed start holds no place
  })

  test('an idle or spare runtime that dies is replaced; a busy one is left to its run', async () => {
    const { provider, pool } = poolWith({ spares: 1, size: 3 })
    await pool.warmUp()
    const spare = provider.started[0]!
    pool.lost(spare)
    expect(provider.ended).toEqual([spare.id])
    for (let i = 0; i < 20 && pool.counts().spares === 0; i++) await Bun.sleep(5)
    expect(pool.counts().spares).toBe(1)
    const busy = await pool.acquire(job('acme'))
    pool.lost(busy.runtime)
    expect(provider.ended).toEqual([spare.id])
  })

  test('stop refuses waiting runs, ends every runtime, and ends one whose start finishes after it', async () => {
    const { provider, pool } = poolWith({ size: 2 })
    const busy = await pool.acquire(job('acme'))
    const { promise: held, resolve: release } = Promise.withResolvers<void>()
    provider.hold = held
    const starting = pool.acquire(job('beta')).catch((e) => e)
    const stopping = pool.stop()
    expect(provider.ended).toEqual([busy.runtime.id])
    release()
    await stopping
    expect((await starting).message).toContain('shutting down')
    expect(provider.ended.length).toBe(2) // the late start was ended too
    expect((await pool.acquire(job('acme')).catch((e) => e)).status).toBe(503)
  })

  test('an ended runtime holds its place until its end lands: no start races a kill on its way', async () => {
    const { provider, pool } = poolWith({ size: 1 })
    const { promise: landed, resolve: land } = Promise.withResolvers<void>()
    provider.endHold = landed
    const crashed = await pool.acquire(job('acme'))
    done(pool, crashed, 'h1', false) // ended, the kill still on its way
    const next = pool.acquire(job('beta'))
    await Bun.sleep(20)
    expect(provider.started.length).toBe(1)
    land()
    expect((await next).runtime.workspace).toBe('beta')
    expect(provider.started.length).toBe(2)
  })

  test('room made by ending an idle runtime of another workspace passes on only once that end lands', async () => {
    const { provider, pool } = poolWith({ size: 1 })
    const acme = await pool.acquire(job('acme'))
    done(pool, acme)
    const { promise: landed, resolve: land } = Promise.withResolvers<void>()
    provider.endHold = landed
    const beta = pool.acquire(job('beta'))
    await Bun.sleep(20)
    expect(provider.ended).toEqual([acme.runtime.id])
    expect(provider.started.length).toBe(1)
    land()
    expect((await beta).runtime.workspace).toBe('beta')
  })

  test('a waiting spare is kept alive, and replaced once the provider would not reuse it', async () => {
    const { provider, pool } = poolWith({ spares: 1, size: 2, idleMs: 40 })
    await pool.warmUp()
    const spare = provider.started[0]!
    await Bun.sleep(70)
    expect(provider.idledIds).toContain(spare.id) // kept alive while it waits
    provider.keep = (r) => r !== spare
    for (let i = 0; i < 30 && !provider.ended.includes(spare.id); i++) await Bun.sleep(10)
    expect(provider.ended).toEqual([spare.id])
    for (let i = 0; i < 30 && pool.counts().spares === 0; i++) await Bun.sleep(10)
    expect(pool.counts().spares).toBe(1)
    expect((await pool.acquire(job('acme'))).runtime).not.toBe(spare)
    await pool.stop()
  })

  test('an idle runtime the provider would no longer reuse (near its lifetime) is ended, not handed out', async () => {
    const { provider, pool } = poolWith()
    const first = await pool.acquire(job('acme'))
    done(pool, first)
    provider.keep = (r) => r !== first.runtime // it aged while idle
    const next = await pool.acquire(job('acme'))
    expect(next.runtime).not.toBe(first.runtime)
    expect(provider.ended).toEqual([first.runtime.id])
  })
})
