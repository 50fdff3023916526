// Who gets a runtime, shared by both pools. A tenant (the API key a run came with, else its
// workspace) holds at most its share of the pool at once: past it, its runs wait for one of
// its own to end, so one tenant's long runs never leave another without a worker. Waiting
// runs are bounded, all together and per tenant (full → 429), each wait is bounded in time
// (→ 503) and left when the client goes away. A runtime that frees, or a new one, goes to
// the waiting tenant that holds the fewest, then to one it serves without starting a new
// runtime (its workspace's, holding its block), then to the oldest.
import type { RunJob } from './backend.ts'
import { Overloaded } from '../errors.ts'
import { timed } from './timed.ts'

/** The unit of fairness: with API keys, the key (which may hold several workspaces). */
export const tenantOf = (job: Pick<RunJob, 'workspace' | 'keyId'>): string =>
  job.keyId ? `key ${job.keyId}` : `workspace ${job.workspace}`

export interface Waiter<T> {
  tenant: string
  workspace: string
  hash: string
  /** What its price depends on (`ServeCost`): its workspace and block. */
  priceKey: string
  /** Hands it the runtime; false when it stopped waiting meanwhile, so the runtime is the pool's again. */
  give: (runtime: T) => boolean
  fail: (error: Error) => void
}

export interface RunQueueOptions {
  /** Runs waiting at most, all tenants together. */
  maxQueue: number
  /** Runs of one tenant waiting at most. */
  tenantMaxQueue: number
  /** Runtimes one tenant may hold at once. */
  tenantShare: number
  timeoutMs: number
  /** The pool, for the messages: 4 "workers", 20 "E2B sandboxes", and the setting of the share. */
  size: number
  runtimes: string
  shareSetting: string
}

/**
 * How a pool would serve a waiter right now: lower is cheaper (0: a warm runtime that holds its
 * block … ), undefined when it cannot be served until something frees. A function of the
 * waiter's workspace and block hash only: `next` prices each pair once.
 */
export type ServeCost<T> = (waiter: Waiter<T>) => number | undefined

export class RunQueue<T> {
  private readonly waiters: Waiter<T>[] = []
  /** Runs each tenant has waiting: the per-tenant bound and `next` read it, not the whole queue. */
  private readonly waitingOf = new Map<string, number>()
  /** Runtimes each tenant holds: running its runs, or being started for one. */
  private readonly holding = new Map<string, number>()

  constructor(private readonly options: RunQueueOptions) {}

  get length(): number {
    return this.waiters.length
  }

  held(tenant: string): number {
    return this.holding.get(tenant) ?? 0
  }

  /** Whether `tenant` may take another runtime, or must wait for one of its own. */
  underShare(tenant: string): boolean {
    return this.held(tenant) < this.options.tenantShare
  }

  /** Counts a runtime as `tenant`'s until `drop`: when its run gets one, or one is started for it. */
  hold(tenant: string): void {
    this.holding.set(tenant, this.held(tenant) + 1)
  }

  drop(tenant: string): void {
    const left = this.held(tenant) - 1
    if (left > 0) this.holding.set(tenant, left)
    else this.holding.delete(tenant)
  }

  /**
   * A runtime for a run of `tenant`: at once when the tenant is under its share and
   * `startNow` has one (counted as the tenant's), else a place in the queue.
   */
  async acquire(
    tenant: string,
    workspace: string,
    hash: string,
    signal: AbortSignal | undefined,
    startNow: () => Promise<T> | null,
  ): Promise<T & { waitedMs: number }> {
    const now = this.underShare(tenant) ? startNow() : null
    if (now) {
      this.hold(tenant)
      try {
        return { ...(await now), waitedMs: 0 }
      } catch (error) {
        this.drop(tenant)
        throw error
      }
    }
    const waitStart = performance.now()
    const acquired = await this.wait(tenant, workspace, hash, signal)
    return { ...acquired, waitedMs: performance.now() - waitStart }
  }

  /** Waits for a runtime of `workspace`; rejects with Overloaded when full, late or abandoned. */
  wait(
    tenant: string,
    workspace: string,
    hash: string,
    signal: AbortSignal | undefined,
  ): Promise<T> {
    const { maxQueue, tenantMaxQueue, timeoutMs } = this.options
    if (this.waiters.length >= maxQueue) {
      return Promise.reject(
        new Overloaded(`all ${this.pool()} are busy and ${maxQueue} runs are waiting`, 1, 429),
      )
    }
    if ((this.waitingOf.get(tenant) ?? 0) >= tenantMaxQueue) {
      return Promise.reject(
        new Overloaded(
          `${tenant}: ${tenantMaxQueue} of its runs already wait for one of the ${this.pool()}, its limit (BLOCKGATE_TENANT_MAX_QUEUE)`,
          1,
          429,
        ),
      )
    }
    let waiting = true
    const leave = () => {
      waiting = false
      this.remove(waiter)
    }
    const place = timed<T>(timeoutMs, () => {
      leave()
      return new Overloaded(this.lateMessage(tenant), 1)
    })
    const waiter: Waiter<T> = {
      tenant,
      workspace,
      hash,
      priceKey: `${workspace}\0${hash}`,
      give: (runtime) => {
        if (!waiting) return false
        waiting = false
        place.resolve(runtime)
        return true
      },
      fail: (error) => {
        waiting = false
        place.reject(error)
      },
    }
    const onAbort = () => {
      leave()
      place.reject(new Overloaded('the client went away while the run waited', 1))
    }
    signal?.addEventListener('abort', onAbort)
    const stopListening = () => signal?.removeEventListener('abort', onAbort)
    place.promise.then(stopListening, stopListening)
    this.waiters.push(waiter)
    this.waitingOf.set(tenant, (this.waitingOf.get(tenant) ?? 0) + 1)
    return place.promise
  }

  private remove(waiter: Waiter<T>): void {
    const at = this.waiters.indexOf(waiter)
    if (at < 0) return
    this.waiters.splice(at, 1)
    const left = (this.waitingOf.get(waiter.tenant) ?? 1) - 1
    if (left > 0) this.waitingOf.set(waiter.tenant, left)
    else this.waitingOf.delete(waiter.tenant)
  }

  /**
   * The waiter to serve next, taken off the queue and counted as holding a runtime (`drop` it
   * if none comes): of the tenants under their share, the one holding the fewest; then the
   * cheapest to serve; then the oldest. None when no waiter can be served now.
   */
  next(cost: ServeCost<T>): Waiter<T> | undefined {
    // Every release asks, and a flood of one tenant's runs makes the queue long: the scan
    // stops at the first waiter nothing later can beat, and does not start when every
    // waiting tenant is at its share.
    let fewestHeld = Infinity
    for (const tenant of this.waitingOf.keys()) fewestHeld = Math.min(fewestHeld, this.held(tenant))
    if (fewestHeld >= this.options.tenantShare) return undefined
    let best: { waiter: Waiter<T>; held: number; cost: number } | undefined
    // Priced once per workspace and block: a long queue is mostly the same few.
    const prices = new Map<string, number | undefined>()
    for (const waiter of this.waiters) {
      const held = this.held(waiter.tenant)
      if (held >= this.options.tenantShare) continue
      if (best && held > best.held) continue
      let price = prices.get(waiter.priceKey)
      if (price === undefined && !prices.has(waiter.priceKey)) {
        price = cost(waiter)
        prices.set(waiter.priceKey, price)
      }
      if (price === undefined) continue
      if (!best || held < best.held || price < best.cost) best = { waiter, held, cost: price }
      // The fewest held with a free warm runtime: ties go to the oldest, so this one.
      if (best.held === fewestHeld && best.cost === 0) break
    }
    if (!best) return undefined
    this.remove(best.waiter)
    this.hold(best.waiter.tenant)
    return best.waiter
  }

  /**
   * Serves every waiter the pool can serve now, the fairest first (`next`): `start` gets it a
   * runtime; a waiter that stopped waiting meanwhile leaves it to `putBack`.
   */
  serveAll(
    cost: ServeCost<T>,
    start: (waiter: Waiter<T>) => Promise<T>,
    putBack: (runtime: T) => void,
  ): void {
    for (;;) {
      const waiter = this.next(cost)
      if (!waiter) return
      start(waiter).then(
        (runtime) => {
          if (waiter.give(runtime)) return
          this.drop(waiter.tenant)
          putBack(runtime)
        },
        (error) => {
          this.drop(waiter.tenant)
          waiter.fail(error)
        },
      )
    }
  }

  rejectAll(error: Error): void {
    this.waitingOf.clear()
    for (const waiter of this.waiters.splice(0)) waiter.fail(error)
  }

  private pool(): string {
    return `${this.options.size} ${this.options.runtimes}`
  }

  private lateMessage(tenant: string): string {
    const { tenantShare, timeoutMs, shareSetting } = this.options
    if (this.underShare(tenant))
      return `none of all ${this.pool()} became free within ${timeoutMs} ms`
    return `${tenant}: none of the ${tenantShare} of the ${this.pool()} it may hold at once (${shareSetting}) became free within ${timeoutMs} ms`
  }
}
