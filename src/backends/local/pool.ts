// The local backend: workers forked from a sandboxed zygote. A worker serves one
// workspace for its whole life; a run goes to an idle worker of its workspace that holds
// the block, else any idle one of its workspace, else a warm spare, else a new fork, else
// it waits in a bounded queue. A tenant (API key, else workspace) holds at most its share
// of the workers; past it, its runs wait for one of its own (see run-queue.ts). Workers are
// recycled after N runs or past a memory mark.
import type { Backend, BackendStatus, RunJob, RunOutcome } from '../backend.ts'
import { outcomeOf, runBlock } from '../runtime-session.ts'
import { ATTR, SPAN } from '../../telemetry/names.ts'
import { traceAcquire, traceEnd } from '../../telemetry/run-spans.ts'
import { inSpan } from '../../telemetry/spans.ts'
import { BlockgateError, BlockTimeout, InternalError, Overloaded, WorkerCrashed } from '../../errors.ts'
import { log } from '../../log.ts'
import { describeExit, Worker, WorkerExited, WorkerUnresponsive } from './worker.ts'
import { RunQueue, tenantOf } from '../run-queue.ts'
import { Zygote, type ZygoteOptions } from './zygote.ts'
import { WorkerCgroups } from './cgroups.ts'
import { removeLeftovers } from './leftovers.ts'

export interface LocalPoolOptions extends ZygoteOptions {
  /** Forked workers kept ready, not yet bound to a workspace. */
  minWarm: number
  maxWorkers: number
  /** Runs waiting for a worker, at most; beyond it a run is refused with 429. */
  maxQueue: number
  /** Workers one tenant may hold at once, and its runs waiting at most. */
  tenantMaxWorkers: number
  tenantMaxQueue: number
  /** How long a run may wait for a worker before it is refused with 503. */
  queueTimeoutMs: number
  maxRunsPerWorker: number
  maxRssBytes: number
}

interface Acquired {
  worker: Worker
  forked: boolean
}

const RESTART_BACKOFF_MS = 1000

export class LocalPool implements Backend {
  readonly name = 'local' as const
  private zygote: Zygote | null = null
  private readonly idle: Worker[] = []
  private readonly spares: Worker[] = []
  private readonly all = new Set<Worker>()
  private readonly waiters: RunQueue<Acquired>
  private forking = 0
  private stopped = false
  private lastError: string | null = null
  /** A cgroup per worker, or why there is none. */
  private cgroups: WorkerCgroups | { unavailable: string } | null = null

  constructor(private readonly options: LocalPoolOptions) {
    this.waiters = new RunQueue({
      maxQueue: options.maxQueue,
      tenantMaxQueue: options.tenantMaxQueue,
      tenantShare: options.tenantMaxWorkers,
      timeoutMs: options.queueTimeoutMs,
      size: options.maxWorkers,
      runtimes: 'workers',
      shareSetting: 'BLOCKGATE_TENANT_MAX_WORKERS',
    })
  }

  async start(): Promise<void> {
    const removed = removeLeftovers()
    if (removed.length > 0) log.warn('removed the files of blockgate instances no longer running', { paths: removed })
    this.cgroups = this.openCgroups()
    this.zygote = await Zygote.start(this.options, this.workerCgroups())
    this.watchZygote(this.zygote)
    await Promise.all(Array.from({ length: this.options.minWarm }, () => this.fork().then((w) => this.addSpare(w))))
  }

  status(): BackendStatus {
    const byWorkspace: Record<string, number> = {}
    for (const worker of this.all) if (worker.workspace) byWorkspace[worker.workspace] = (byWorkspace[worker.workspace] ?? 0) + 1
    return {
      ready: !this.stopped && this.zygote?.alive === true,
      isolation: this.options.isolation === 'sandboxed' ? 'bubblewrap + per-worker namespaces, seccomp, rlimits' : 'OFF (BLOCKGATE_ALLOW_UNSANDBOXED)',
      cgroups: this.cgroups instanceof WorkerCgroups ? this.cgroups.describe() : `off: ${this.cgroups?.unavailable ?? 'not started'}`,
      live: this.all.size,
      workers: this.all.size,
      idle: this.idle.length,
      spares: this.spares.length,
      forking: this.forking,
      queued: this.waiters.length,
      by_workspace: byWorkspace,
      ...(this.lastError ? { last_error: this.lastError } : {}),
    }
  }

  async run(job: RunJob): Promise<RunOutcome> {
    const queuedAt = performance.now()
    const tenant = tenantOf(job)
    // From here until the run ends, the worker counts against the tenant's share.
    const acquired = await traceAcquire('local', job, () => this.acquire(job, tenant), (a) => ({ cold: a.forked, runtimeId: a.worker.id, waitedMs: a.waitedMs }))
    const worker = acquired.worker
    const acquiredAt = performance.now()
    const deadline = acquiredAt + job.timeoutMs
    const abort = () => worker.kill() // the client left: stop its code, not just its answer
    job.signal?.addEventListener('abort', abort)
    // A worker that answered (even with an error) is reusable; one that died, stalled,
    // broke the protocol or was left with a thread of the block's running is not.
    let reusable = true
    let exitReason: string | undefined
    try {
      const session = await runBlock(worker, job, deadline)
      if (typeof session.reply.rss_bytes === 'number') worker.rssBytes = session.reply.rss_bytes
      if (session.reply.retire) {
        reusable = false
        exitReason = 'left_running'
      }
      worker.runs++
      return outcomeOf(session, { queuedAt, acquiredAt, waitedMs: acquired.waitedMs, started: acquired.forked })
    } catch (error) {
      reusable = error instanceof BlockgateError
      exitReason = job.signal?.aborted ? 'client_gone' : error instanceof WorkerUnresponsive ? 'timeout' : error instanceof WorkerExited ? 'crashed' : 'error'
      throw this.translate(error, job, worker)
    } finally {
      job.signal?.removeEventListener('abort', abort)
      const kept = reusable && worker.alive
      traceEnd(worker.id, kept, exitReason)
      this.waiters.drop(tenant)
      if (kept) this.release(worker)
      else this.retire(worker)
    }
  }

  async stop(): Promise<void> {
    this.stopped = true
    this.waiters.rejectAll(new Overloaded('the server is shutting down', 1))
    for (const worker of this.all) worker.kill()
    this.all.clear()
    this.idle.length = 0
    this.spares.length = 0
    await this.zygote?.stop()
    await this.workerCgroups()?.close()
  }

  /** The per-worker cgroups as configured: `required` refuses to start without them. */
  private openCgroups(): WorkerCgroups | { unavailable: string } {
    if (this.options.cgroups === 'off') return { unavailable: 'BLOCKGATE_CGROUPS=off' }
    if (this.options.isolation !== 'sandboxed') return { unavailable: 'isolation is off' }
    const { memoryBytes, processes, cpuCores } = this.options.limits
    const cgroups = WorkerCgroups.open({ memoryBytes, processes, cpuCores })
    if (cgroups instanceof WorkerCgroups) return cgroups
    if (this.options.cgroups === 'required') throw new Error(`BLOCKGATE_CGROUPS=required, but ${cgroups.unavailable}`)
    log.warn('no cgroup per worker: memory, process and CPU limits hold per process only (rlimits)', { reason: cgroups.unavailable })
    return cgroups
  }

  private workerCgroups(): WorkerCgroups | null {
    return this.cgroups instanceof WorkerCgroups ? this.cgroups : null
  }

  /** Live workers, by id, with their workspace: for tests and diagnostics. */
  workers(): { id: string; workspace: string | null; runs: number }[] {
    return [...this.all].map((w) => ({ id: w.id, workspace: w.workspace, runs: w.runs }))
  }

  /** A worker for `job`; at its share, a tenant waits for one of its own even if others are free. */
  private async acquire(job: RunJob, tenant: string): Promise<Acquired & { waitedMs: number }> {
    if (this.stopped) throw new Overloaded('the server is shutting down', 1)
    const { workspace } = job
    const hash = job.block.hash
    return this.waiters.acquire(tenant, workspace, hash, job.signal, () => this.startFor(workspace, hash, true))
  }

  /**
   * How a run of `workspace` can get a worker now, cheapest first (see RunQueue.next): 0 an
   * idle one of its workspace holding the block, 1 another idle one of its workspace, 2 a
   * spare or a new fork, 3 a fork after retiring an idle worker of another workspace;
   * undefined when every worker is busy, or no fork can start until the zygote is back.
   */
  private costFor(workspace: string, hash: string): number | undefined {
    const mine = this.idle.filter((w) => w.workspace === workspace)
    if (mine.length > 0) return mine.some((w) => w.loaded.has(hash)) ? 0 : 1
    if (this.spares.length > 0 || (this.hasRoom() && this.canFork())) return 2
    return this.idle.length > 0 && this.canFork() ? 3 : undefined
  }

  /** Takes the worker `costFor` priced (null where it said undefined); a fork is started, not awaited. */
  private startFor(workspace: string, hash: string, traced: boolean): Promise<Acquired> | null {
    const mine = this.idle.filter((w) => w.workspace === workspace)
    const warm = mine.find((w) => w.loaded.has(hash)) ?? mine[0]
    if (warm) {
      this.idle.splice(this.idle.indexOf(warm), 1)
      return Promise.resolve({ worker: warm, forked: false })
    }
    const spare = this.spares.shift()
    if (spare) {
      spare.workspace = workspace
      this.refillSpares()
      return Promise.resolve({ worker: spare, forked: true })
    }
    // The zygote is restarting: the run waits in the queue, served once it is back.
    if (!this.canFork()) return null
    if (!this.hasRoom()) {
      // Full: make room by retiring an idle worker of another workspace, if there is one.
      const other = this.idle.find((w) => w.workspace !== workspace)
      if (other) this.retire(other, false)
    }
    if (!this.hasRoom()) return null
    // A fork for a waiter is not traced here: the span in hand is the run that freed room.
    const forking = traced ? inSpan(SPAN.workerSpawn, { [ATTR.backend]: 'local' }, () => this.forkOrOverloaded()) : this.forkOrOverloaded()
    return forking.then((worker) => {
      worker.workspace = workspace
      return { worker, forked: true }
    })
  }

  private hasRoom(): boolean {
    return this.all.size + this.forking < this.options.maxWorkers
  }

  private canFork(): boolean {
    const zygote = this.zygote
    if (!zygote?.alive) return false
    if (!zygote.reachable) {
      // No new worker could connect: start over with a new zygote (watchZygote restarts it).
      log.error('the worker socket was removed; restarting the zygote', { workers: this.all.size })
      zygote.kill()
      return false
    }
    return true
  }

  private release(worker: Worker): void {
    if (this.stopped) return this.retire(worker)
    if (worker.runs >= this.options.maxRunsPerWorker || worker.rssBytes > this.options.maxRssBytes) return this.retire(worker)
    // Idle until a waiter takes it: one of its workspace, or one that retires it for room.
    this.idle.push(worker)
    this.serveWaiters()
  }

  /** Ends a worker whose state can no longer be trusted (or is not needed), and keeps the pool's shape. */
  private retire(worker: Worker, refill = true): void {
    worker.kill()
    this.all.delete(worker)
    for (const list of [this.idle, this.spares]) {
      const at = list.indexOf(worker)
      if (at >= 0) list.splice(at, 1)
    }
    if (refill) this.serveWaiters()
  }

  /** Waiters the pool can serve now get a worker, the fairest first (RunQueue.next). */
  private serveWaiters(): void {
    if (this.stopped) return
    this.waiters.serveAll(
      (w) => this.costFor(w.workspace, w.hash),
      (w) => this.startFor(w.workspace, w.hash, false)!,
      (acquired) => this.release(acquired.worker),
    )
    this.refillSpares()
  }

  private refillSpares(): void {
    if (this.stopped) return
    const wanted = this.options.minWarm - this.spares.length - this.forking
    for (let i = 0; i < wanted && this.hasRoom() && this.canFork(); i++) {
      this.fork().then(
        (worker) => this.addSpare(worker),
        () => {},
      )
    }
  }

  private addSpare(worker: Worker): void {
    this.spares.push(worker)
    this.serveWaiters()
  }

  private async fork(): Promise<Worker> {
    if (!this.zygote) throw new Error('the pool has not started')
    this.forking++
    try {
      const worker = await this.zygote.spawnWorker()
      this.all.add(worker)
      this.lastError = null
      void worker.exited.then(() => {
        // A worker that dies while idle or spare is replaced.
        if (this.all.has(worker) && (this.idle.includes(worker) || this.spares.includes(worker))) this.retire(worker)
      })
      if (this.stopped) worker.kill()
      return worker
    } catch (error) {
      this.lastError = (error as Error).message
      throw error
    } finally {
      this.forking--
    }
  }

  private async forkOrOverloaded(): Promise<Worker> {
    try {
      return await this.fork()
    } catch (error) {
      throw new Overloaded(`no worker could be started: ${(error as Error).message}`, 2)
    }
  }

  /** Restarts the zygote if it dies (every worker went with it). */
  private watchZygote(zygote: Zygote): void {
    void zygote.exited.then(async () => {
      if (this.stopped) return
      log.error('the zygote exited; restarting it', { workers: this.all.size })
      for (const worker of [...this.all]) this.retire(worker, false)
      for (;;) {
        try {
          await Bun.sleep(RESTART_BACKOFF_MS)
          if (this.stopped) return
          const zygote = await Zygote.start(this.options, this.workerCgroups())
          if (this.stopped) return void (await zygote.stop()) // the server stopped while it started
          this.zygote = zygote
          this.watchZygote(zygote)
          this.serveWaiters()
          return
        } catch (error) {
          this.lastError = (error as Error).message
        }
      }
    })
  }

  private translate(error: unknown, job: RunJob, worker: Worker): Error {
    if (error instanceof BlockgateError) return error
    if (error instanceof WorkerUnresponsive) return new BlockTimeout(job.timeoutMs)
    if (error instanceof WorkerExited) {
      return new WorkerCrashed(`the block's ${describeExit(error.exit)}; it was replaced`, {
        exit_code: error.exit.code,
        signal: error.exit.signal,
      })
    }
    return new InternalError(`local worker ${worker.id} failed: ${(error as Error).message}`, error)
  }
}
