// The warm-pool policy both backends share. Runtimes (local workers, E2B sandboxes) are
// kept warm and reused: a runtime serves one workspace for its whole life; a run goes to an
// idle runtime of its workspace that holds its block, else any idle one of its workspace,
// else a spare (started ahead, not yet bound to a workspace), else a new runtime, else one
// started after ending an idle runtime of another workspace, else it waits in the run queue
// (run-queue.ts: bounded, fair between tenants). What differs per backend is a provider's
// hooks: how a runtime starts and ends, whether it may serve again, what to do while it idles.
import type { Attributes } from '@opentelemetry/api'
import type { BackendName, RunJob } from './backend.ts'
import { RunQueue, tenantOf } from './run-queue.ts'
import { Overloaded } from '../errors.ts'
import { log } from '../log.ts'
import { traceAcquire, traceEnd } from '../telemetry/run-spans.ts'
import { inSpan } from '../telemetry/spans.ts'

/** What the pool reads and writes of a runtime. */
export interface PooledRuntime {
  readonly id: string
  /** The workspace it serves for its whole life; null while it is a spare. */
  workspace: string | null
  runs: number
}

/** A backend's side of the pool: its runtimes' start, end and judgement. */
export interface RuntimeProvider<R extends PooledRuntime> {
  /** Starts a runtime ready to load blocks, for `workspace` (null: a spare), by `deadline` (performance.now() time). */
  start(workspace: string | null, deadline: number): Promise<R>
  /** Ends a runtime (the pool's stop waits for it: ending may take a call). */
  end(runtime: R): Promise<void>
  holds(runtime: R, blockHash: string): boolean
  /** Whether a runtime could start now (no: the local zygote is restarting). */
  canStart(): boolean
  /** Whether a runtime back from a run may serve another (its run count, memory, lifetime). */
  reusable(runtime: R): boolean
  /** A runtime went idle and no waiter took it (E2B extends the sandbox's own timer). */
  idled?(runtime: R): Promise<void>
  /**
   * Whether an idle runtime taken for a run is still this pool's to run on: false when another
   * instance of the deployment took it meanwhile (E2B's shared registry). Absent: always.
   */
  claim?(runtime: R): Promise<boolean>
}

export interface WarmPoolOptions {
  backend: BackendName
  /** Spares kept ready for a workspace that has no runtime. */
  spares: number
  /** Runtimes at most, starting ones included. */
  size: number
  /** Runs waiting at most, all tenants together and per tenant. */
  maxQueue: number
  tenantMaxQueue: number
  /** Runtimes one tenant holds at once, and the setting that says so (for messages). */
  tenantShare: number
  shareSetting: string
  /** How long a run may wait for a runtime, a start included. */
  queueTimeoutMs: number
  /** "workers", "E2B sandboxes": for messages. */
  runtimes: string
  /** The span a run's own start of a runtime is traced under. */
  startSpan: { name: string; attributes: Attributes }
  /** An idle runtime is ended after this long; never when absent. */
  idleMs?: number
}

/** A runtime as a run holds it, until `finish`. */
export interface Acquired<R> {
  runtime: R
  /** Started for this run (a new runtime or a fresh spare): a cold start. */
  started: boolean
  waitedMs: number
  tenant: string
}

interface Taken<R> {
  runtime: R
  started: boolean
}

export class WarmPool<R extends PooledRuntime> {
  private readonly idle: R[] = []
  private readonly spares: R[] = []
  private readonly all = new Set<R>()
  private readonly queue: RunQueue<Taken<R>>
  private readonly idleTimers = new Map<R, ReturnType<typeof setTimeout>>()
  /** Upkeep of each spare while it waits (E2B: keep it alive, or replace it near its end). */
  private readonly spareTimers = new Map<R, ReturnType<typeof setInterval>>()
  /** Starts and ends in flight: `stop` waits for them. */
  private readonly pending = new Set<Promise<unknown>>()
  private starting = 0
  /**
   * Runtimes being ended: each holds its place in the pool's size until its end is confirmed,
   * so a new start cannot race a kill still on its way (E2B counts a sandbox until it lands).
   */
  private ending = 0
  private stopped = false
  /** Why the last start failed, until one succeeds. */
  lastError: string | null = null

  constructor(
    private readonly provider: RuntimeProvider<R>,
    private readonly options: WarmPoolOptions,
  ) {
    this.queue = new RunQueue({
      maxQueue: options.maxQueue,
      tenantMaxQueue: options.tenantMaxQueue,
      tenantShare: options.tenantShare,
      timeoutMs: options.queueTimeoutMs,
      size: options.size,
      runtimes: options.runtimes,
      shareSetting: options.shareSetting,
    })
  }

  /** Starts the spares; rejects if one could not start. */
  async warmUp(): Promise<void> {
    const wanted = this.options.spares - this.spares.length - this.starting
    await Promise.all(Array.from({ length: Math.max(0, wanted) }, () => this.startSpare()))
  }

  /** A runtime for `job` (traced as `blockgate.acquire`); at its share, a tenant waits for one of its own even if others are free. */
  acquire(job: RunJob): Promise<Acquired<R>> {
    return traceAcquire(
      this.options.backend,
      job,
      async () => {
        if (this.stopped) throw new Overloaded('the server is shutting down', 1)
        const tenant = tenantOf(job)
        const { workspace } = job
        const hash = job.block.hash
        for (;;) {
          const taken = await this.queue.acquire(tenant, workspace, hash, job.signal, () => {
            this.endStale()
            return this.take(workspace, hash, true)
          })
          const { runtime, started, waitedMs } = taken
          if (started || !this.provider.claim || (await this.provider.claim(runtime)))
            return { runtime, started, waitedMs, tenant }
          // Another instance took it while it idled here: it is theirs now, neither kept nor ended.
          this.queue.drop(tenant)
          this.forget(runtime)
        }
      },
      (a) => ({ cold: a.started, runtimeId: a.runtime.id, waitedMs: a.waitedMs }),
    )
  }

  /**
   * The run is over (traced as `sandbox.release` or `sandbox.kill`): a runtime that answered
   * serves again unless the provider says it has served enough; one that did not is ended.
   */
  finish(acquired: Acquired<R>, answered: boolean, exitReason?: string): void {
    traceEnd(acquired.runtime.id, answered, exitReason)
    this.queue.drop(acquired.tenant)
    if (answered) this.release(acquired.runtime)
    else this.retire(acquired.runtime)
  }

  /** Ends a runtime whose state can no longer be trusted (or is not needed); waiters are then served unless `serve` is false. */
  retire(runtime: R, serve = true): void {
    if (this.forget(runtime)) this.end(runtime)
    if (serve) this.serveWaiters()
  }

  /** A runtime died on its own: replaced if it was idle or spare (a busy one's run finds out itself). */
  lost(runtime: R): void {
    if (this.idle.includes(runtime) || this.spares.includes(runtime)) this.retire(runtime)
  }

  /**
   * Lets go of an idle runtime or spare without ending it: another instance of the
   * deployment holds it now. A busy one is left alone (its run finds out itself).
   */
  abandon(runtime: R): void {
    if (!this.idle.includes(runtime) && !this.spares.includes(runtime)) return
    this.forget(runtime)
    this.serveWaiters()
  }

  /** The runtimes the pool holds now, busy, idle and spare. */
  runtimes(): R[] {
    return [...this.all]
  }

  /** Ends every runtime (the local zygote died and took its workers along). */
  retireAll(): void {
    for (const runtime of [...this.all]) this.retire(runtime, false)
  }

  /** Waiters the pool can serve now get a runtime, the fairest first (RunQueue.next); spares are refilled. */
  serveWaiters(): void {
    if (this.stopped) return
    this.endStale()
    // Nothing to hand out (every waiter would be priced undefined): no scan of the queue.
    const anything = this.idle.length > 0 || this.spares.length > 0 || this.startable()
    if (anything)
      this.queue.serveAll(
        (w) => this.costFor(w.workspace, w.hash),
        (w) => this.take(w.workspace, w.hash, false)!,
        (taken) => this.release(taken.runtime),
      )
    this.refillSpares()
  }

  /** Refuses the waiting runs, ends every runtime and waits for starts and ends in flight. */
  async stop(): Promise<void> {
    this.stopped = true
    this.queue.rejectAll(new Overloaded('the server is shutting down', 1))
    this.retireAll()
    // A start that finishes meanwhile ends its runtime itself, which adds to `pending`.
    while (this.pending.size > 0) await Promise.allSettled([...this.pending])
  }

  counts(): {
    live: number
    idle: number
    spares: number
    starting: number
    queued: number
    by_workspace: Record<string, number>
  } {
    const byWorkspace: Record<string, number> = {}
    for (const r of this.all)
      if (r.workspace) byWorkspace[r.workspace] = (byWorkspace[r.workspace] ?? 0) + 1
    return {
      live: this.all.size,
      idle: this.idle.length,
      spares: this.spares.length,
      starting: this.starting,
      queued: this.queue.length,
      by_workspace: byWorkspace,
    }
  }

  /** Live runtimes with their workspace: for tests and diagnostics. */
  list(): { id: string; workspace: string | null; runs: number }[] {
    return [...this.all].map((r) => ({ id: r.id, workspace: r.workspace, runs: r.runs }))
  }

  /**
   * How a run of `workspace` can get a runtime now, cheapest first (see RunQueue.next): 0 an
   * idle one of its workspace holding the block, 1 another idle one of its workspace, 2 a
   * spare or a new runtime, 3 a new one after ending an idle runtime of another workspace;
   * undefined when none can be had until something frees (or the provider can start again).
   */
  private costFor(workspace: string, hash: string): number | undefined {
    const mine = this.idle.filter((r) => r.workspace === workspace)
    if (mine.length > 0) return mine.some((r) => this.provider.holds(r, hash)) ? 0 : 1
    if (this.spares.length > 0 || this.startable()) return 2
    return this.idle.length > 0 && this.provider.canStart() ? 3 : undefined
  }

  /** Takes the runtime `costFor` priced (null where it said undefined); a start is begun, not awaited. */
  private take(workspace: string, hash: string, traced: boolean): Promise<Taken<R>> | null {
    const mine = this.idle.filter((r) => r.workspace === workspace)
    const warm = mine.find((r) => this.provider.holds(r, hash)) ?? mine[0]
    if (warm) {
      this.idle.splice(this.idle.indexOf(warm), 1)
      this.stopIdleTimer(warm)
      return Promise.resolve({ runtime: warm, started: false })
    }
    const spare = this.spares.shift()
    if (spare) {
      this.stopSpareUpkeep(spare)
      spare.workspace = workspace
      this.refillSpares()
      return Promise.resolve({ runtime: spare, started: true })
    }
    if (!this.provider.canStart()) return null
    let begin = () => this.start(workspace)
    if (!this.hasRoom()) {
      // Full: make room by ending an idle runtime of another workspace, if there is one.
      const other = this.idle.find((r) => r.workspace !== workspace)
      if (!other) return null
      this.forget(other)
      begin = () => this.replace(other, workspace)
    }
    // A start for a waiter is not traced here: the span in hand is the run that freed room.
    const { name, attributes } = this.options.startSpan
    const starting = traced ? inSpan(name, attributes, begin) : begin()
    return starting.then((runtime) => ({ runtime, started: true }))
  }

  /** A new runtime could be started now without ending another. */
  private startable(): boolean {
    return this.hasRoom() && this.provider.canStart()
  }

  private hasRoom(): boolean {
    return this.all.size + this.starting + this.ending < this.options.size
  }

  /** Ends idle runtimes and spares the provider would no longer hand out (an E2B sandbox near its lifetime). */
  private endStale(): void {
    for (const runtime of [...this.idle, ...this.spares]) {
      if (!this.provider.reusable(runtime)) this.retire(runtime, false)
    }
  }

  /** Takes a runtime off the pool's lists, not yet ended; false if it was not the pool's. */
  private forget(runtime: R): boolean {
    this.stopIdleTimer(runtime)
    this.stopSpareUpkeep(runtime)
    for (const list of [this.idle, this.spares]) {
      const at = list.indexOf(runtime)
      if (at >= 0) list.splice(at, 1)
    }
    return this.all.delete(runtime)
  }

  /** Ends `old` and starts a runtime in its place: the place passes to the new one without a gap. */
  private async replace(old: R, workspace: string): Promise<R> {
    this.starting++
    try {
      const ended = this.provider.end(old)
      this.track(ended)
      await ended.catch(() => {})
    } finally {
      this.starting--
    }
    return this.start(workspace)
  }

  /** Ends a runtime; its place in the pool frees once the provider confirms (then waiters are served). */
  private end(runtime: R): void {
    this.ending++
    const ended = this.provider.end(runtime).finally(() => {
      this.ending--
      this.serveWaiters()
    })
    this.track(ended)
  }

  /** A new runtime, counted against the pool's size while it starts. */
  private async start(workspace: string | null): Promise<R> {
    this.starting++
    const starting = this.provider.start(workspace, performance.now() + this.options.queueTimeoutMs)
    this.track(starting)
    let runtime: R
    try {
      runtime = await starting
      this.lastError = null
    } catch (error) {
      this.lastError = (error as Error).message
      throw error
    } finally {
      this.starting--
    }
    runtime.workspace = workspace
    if (this.stopped) {
      this.end(runtime)
      throw new Overloaded('the server is shutting down', 1)
    }
    this.all.add(runtime)
    return runtime
  }

  private async startSpare(): Promise<void> {
    try {
      const spare = await this.start(null)
      this.spares.push(spare)
      this.startSpareUpkeep(spare)
    } catch (error) {
      if (!this.stopped)
        log.warn(`a spare of the ${this.options.backend} pool could not be started`, {
          error: (error as Error).message,
        })
      throw error
    }
    this.serveWaiters()
  }

  private refillSpares(): void {
    if (this.stopped) return
    const wanted = this.options.spares - this.spares.length - this.starting
    for (let i = 0; i < wanted && this.hasRoom() && this.provider.canStart(); i++)
      this.startSpare().catch(() => {})
  }

  /** Idle until a waiter takes it: one of its workspace, or one that ends it for room. */
  private release(runtime: R): void {
    if (this.stopped || !this.all.has(runtime) || !this.provider.reusable(runtime))
      return this.retire(runtime)
    this.idle.push(runtime)
    const { idleMs } = this.options
    if (idleMs !== undefined) {
      this.idleTimers.set(
        runtime,
        setTimeout(() => {
          if (this.idle.includes(runtime)) this.retire(runtime)
        }, idleMs),
      )
    }
    this.serveWaiters()
    if (this.idle.includes(runtime) && this.provider.idled) this.track(this.provider.idled(runtime))
  }

  /**
   * While a spare waits, every half idle period: replaced if the provider would not reuse it,
   * else told it idles (E2B moves the sandbox's own timer on, or it would expire unused).
   */
  private startSpareUpkeep(spare: R): void {
    const { idleMs } = this.options
    if (idleMs === undefined) return
    const upkeep = setInterval(() => {
      if (!this.spares.includes(spare)) return this.stopSpareUpkeep(spare)
      if (!this.provider.reusable(spare)) return this.retire(spare)
      if (this.provider.idled) this.track(this.provider.idled(spare))
    }, idleMs / 2)
    this.spareTimers.set(spare, upkeep)
  }

  private stopSpareUpkeep(spare: R): void {
    const upkeep = this.spareTimers.get(spare)
    if (upkeep) clearInterval(upkeep)
    this.spareTimers.delete(spare)
  }

  private stopIdleTimer(runtime: R): void {
    const timer = this.idleTimers.get(runtime)
    if (timer) clearTimeout(timer)
    this.idleTimers.delete(runtime)
  }

  private track(work: Promise<unknown>): void {
    const settled = work.then(
      () => {},
      () => {},
    )
    this.pending.add(settled)
    void settled.then(() => this.pending.delete(settled))
  }
}
