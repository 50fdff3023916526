// The local backend: workers forked from a sandboxed zygote, kept warm and reused by the
// shared warm-pool policy (warm-pool.ts: a worker serves one workspace for its whole life;
// tenants get fair shares; runs wait in a bounded queue). What is local's own: forking from
// the zygote and restarting it when it dies, a cgroup per worker, and recycling a worker
// after N runs or past a memory mark.
import type { Backend, BackendStatus, RunJob, RunOutcome } from '../backend.ts'
import { outcomeOf, runBlock } from '../runtime-session.ts'
import { SPAN, ATTR } from '../../telemetry/names.ts'
import {
  BlockgateError,
  BlockTimeout,
  InternalError,
  Overloaded,
  WorkerCrashed,
} from '../../errors.ts'
import { log } from '../../log.ts'
import { describeExit, type Worker, WorkerExited, WorkerUnresponsive } from './worker.ts'
import { WarmPool } from '../warm-pool.ts'
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

const RESTART_BACKOFF_MS = 1000

export class LocalPool implements Backend {
  readonly name = 'local' as const
  private zygote: Zygote | null = null
  private readonly pool: WarmPool<Worker>
  private stopped = false
  /** Why the zygote could not be restarted, until it is. */
  private zygoteError: string | null = null
  /** A cgroup per worker, or why there is none. */
  private cgroups: WorkerCgroups | { unavailable: string } | null = null

  constructor(private readonly options: LocalPoolOptions) {
    this.pool = new WarmPool<Worker>(
      {
        start: () => this.fork(),
        end: async (worker) => worker.kill(),
        holds: (worker, hash) => worker.loaded.has(hash),
        canStart: () => this.canFork(),
        reusable: (worker) =>
          worker.alive &&
          worker.runs < options.maxRunsPerWorker &&
          worker.rssBytes <= options.maxRssBytes,
      },
      {
        backend: 'local',
        spares: options.minWarm,
        size: options.maxWorkers,
        maxQueue: options.maxQueue,
        tenantMaxQueue: options.tenantMaxQueue,
        tenantShare: options.tenantMaxWorkers,
        shareSetting: 'BLOCKGATE_TENANT_MAX_WORKERS',
        queueTimeoutMs: options.queueTimeoutMs,
        runtimes: 'workers',
        startSpan: { name: SPAN.workerSpawn, attributes: { [ATTR.backend]: 'local' } },
      },
    )
  }

  async start(): Promise<void> {
    const removed = removeLeftovers()
    if (removed.length > 0)
      log.warn('removed the files of blockgate instances no longer running', { paths: removed })
    this.cgroups = this.openCgroups()
    this.zygote = await Zygote.start(this.options, this.workerCgroups())
    this.watchZygote(this.zygote)
    await this.pool.warmUp()
  }

  status(): BackendStatus {
    const { live, idle, spares, starting, queued, by_workspace } = this.pool.counts()
    const lastError = this.zygoteError ?? this.pool.lastError
    return {
      ready: !this.stopped && this.zygote?.alive === true,
      isolation:
        this.options.isolation === 'sandboxed'
          ? 'bubblewrap + per-worker namespaces, seccomp, rlimits'
          : 'OFF (BLOCKGATE_ALLOW_UNSANDBOXED)',
      cgroups:
        this.cgroups instanceof WorkerCgroups
          ? this.cgroups.describe()
          : `off: ${this.cgroups?.unavailable ?? 'not started'}`,
      live,
      workers: live,
      idle,
      spares,
      forking: starting,
      queued,
      by_workspace,
      ...(lastError ? { last_error: lastError } : {}),
    }
  }

  async run(job: RunJob): Promise<RunOutcome> {
    const queuedAt = performance.now()
    // From here until `finish`, the worker counts against the tenant's share.
    const acquired = await this.pool.acquire(job)
    const worker = acquired.runtime
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
      return outcomeOf(session, {
        queuedAt,
        acquiredAt,
        waitedMs: acquired.waitedMs,
        started: acquired.started,
      })
    } catch (error) {
      reusable = error instanceof BlockgateError
      exitReason = job.signal?.aborted
        ? 'client_gone'
        : error instanceof WorkerUnresponsive
          ? 'timeout'
          : error instanceof WorkerExited
            ? 'crashed'
            : 'error'
      throw this.translate(error, job, worker)
    } finally {
      job.signal?.removeEventListener('abort', abort)
      this.pool.finish(acquired, reusable && worker.alive, exitReason)
    }
  }

  async stop(): Promise<void> {
    this.stopped = true
    // Forks in flight fail once the zygote is gone; the pool waits for them.
    const draining = this.pool.stop()
    await this.zygote?.stop()
    await draining
    await this.workerCgroups()?.close()
  }

  /** The per-worker cgroups as configured: `required` refuses to start without them. */
  private openCgroups(): WorkerCgroups | { unavailable: string } {
    if (this.options.cgroups === 'off') return { unavailable: 'BLOCKGATE_CGROUPS=off' }
    if (this.options.isolation !== 'sandboxed') return { unavailable: 'isolation is off' }
    const { memoryBytes, processes, cpuCores } = this.options.limits
    const cgroups = WorkerCgroups.open({ memoryBytes, processes, cpuCores })
    if (cgroups instanceof WorkerCgroups) return cgroups
    if (this.options.cgroups === 'required')
      throw new Error(`BLOCKGATE_CGROUPS=required, but ${cgroups.unavailable}`)
    log.warn(
      'no cgroup per worker: memory, process and CPU limits hold per process only (rlimits)',
      { reason: cgroups.unavailable },
    )
    return cgroups
  }

  private workerCgroups(): WorkerCgroups | null {
    return this.cgroups instanceof WorkerCgroups ? this.cgroups : null
  }

  /** Live workers, by id, with their workspace: for tests and diagnostics. */
  workers(): { id: string; workspace: string | null; runs: number }[] {
    return this.pool.list()
  }

  private canFork(): boolean {
    const zygote = this.zygote
    if (!zygote?.alive) return false
    if (!zygote.reachable) {
      // No new worker could connect: start over with a new zygote (watchZygote restarts it).
      log.error('the worker socket was removed; restarting the zygote', {
        workers: this.pool.counts().live,
      })
      zygote.kill()
      return false
    }
    return true
  }

  /** A new worker from the zygote; one that dies while idle or spare is replaced. */
  private async fork(): Promise<Worker> {
    if (!this.zygote) throw new Error('the pool has not started')
    try {
      const worker = await this.zygote.spawnWorker()
      void worker.exited.then(() => this.pool.lost(worker))
      return worker
    } catch (error) {
      throw new Overloaded(`no worker could be started: ${(error as Error).message}`, 2)
    }
  }

  /** Restarts the zygote if it dies (every worker went with it). */
  private watchZygote(zygote: Zygote): void {
    void zygote.exited.then(async () => {
      if (this.stopped) return
      log.error('the zygote exited; restarting it', { workers: this.pool.counts().live })
      this.pool.retireAll()
      for (;;) {
        try {
          await Bun.sleep(RESTART_BACKOFF_MS)
          if (this.stopped) return
          const zygote = await Zygote.start(this.options, this.workerCgroups())
          if (this.stopped) return void (await zygote.stop()) // the server stopped while it started
          this.zygote = zygote
          this.zygoteError = null
          this.watchZygote(zygote)
          this.pool.serveWaiters()
          return
        } catch (error) {
          this.zygoteError = `the zygote could not be restarted: ${(error as Error).message}`
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
