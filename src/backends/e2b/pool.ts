// The e2b backend: E2B sandboxes kept warm and reused. A sandbox serves one workspace for
// its whole life; a run goes to an idle sandbox of its workspace that holds the block, else
// any idle one of its workspace, else a pre-warmed spare, else a new sandbox, else it waits
// in a bounded queue. A tenant (API key, else workspace) holds at most its share of the
// sandboxes; past it, its runs wait for one of its own (see run-queue.ts). A sandbox idle
// for E2B_SANDBOX_IDLE_TIMEOUT is killed, and none lives past E2B_SANDBOX_TIMEOUT. A warm
// run is one HTTP round trip and no control-plane call.
import type { Sandbox } from 'e2b'
import type { Sandbox as InterpreterSandbox } from '@e2b/code-interpreter'
import type { Backend, BackendStatus, RunJob, RunOutcome } from '../backend.ts'
import { outcomeOf, runBlock, type BlockRuntime, type RuntimeReply } from '../runtime-session.ts'
import type { E2BConfig } from '../../config.ts'
import { BlockgateError, BlockTimeout, Overloaded, RemoteBackendFailed } from '../../errors.ts'
import { log } from '../../log.ts'
import { trace } from '@opentelemetry/api'
import { ATTR, SPAN } from '../../telemetry/names.ts'
import { traceAcquire, traceEnd } from '../../telemetry/run-spans.ts'
import { inSpan } from '../../telemetry/spans.ts'
import { RunQueue, tenantOf } from '../run-queue.ts'
import { Lifecycle, lifecycleError, UNASSIGNED_WORKSPACE } from './lifecycle.ts'
import { HttpRuntime, RuntimeTimeout, SandboxGone } from './runtime-http.ts'
import { InterpreterRuntime } from './runtime-interpreter.ts'

export interface E2BPoolOptions {
  maxFrameBytes: number
  /** How long a run may wait for a sandbox (creation included) before a 503. */
  queueTimeoutMs: number
}

/** A runtime that can also be cancelled mid-request (the client went away). */
interface RemoteRuntime extends BlockRuntime {
  request(message: Record<string, unknown>, timeoutMs: number, signal?: AbortSignal): Promise<RuntimeReply>
}

interface RemoteSandbox {
  id: string
  sandbox: Sandbox
  runtime: RemoteRuntime
  workspace: string | null
  runs: number
  createdAt: number
  /** When E2B's own timer would end it (performance.now() time). */
  expiresAt: number
  idleTimer: ReturnType<typeof setTimeout> | null
}

interface Acquired {
  sandbox: RemoteSandbox
  created: boolean
}


/** Do not hand out a sandbox this close to its hard lifetime: a run could be cut off. */
const LIFETIME_MARGIN_MS = 5000

export class E2BPool implements Backend {
  readonly name = 'e2b' as const
  readonly lifecycle: Lifecycle
  private readonly idle: RemoteSandbox[] = []
  private readonly spares: RemoteSandbox[] = []
  private readonly all = new Map<string, RemoteSandbox>()
  private readonly waiters: RunQueue<Acquired>
  private readonly pending = new Set<Promise<unknown>>()
  private creating = 0
  private stopped = false
  private lastError: string | null = null

  constructor(
    private readonly config: E2BConfig,
    private readonly options: E2BPoolOptions,
  ) {
    this.lifecycle = new Lifecycle(config)
    this.waiters = new RunQueue({
      maxQueue: config.maxQueue,
      tenantMaxQueue: config.tenantMaxQueue,
      tenantShare: config.tenantMaxSandboxes,
      timeoutMs: options.queueTimeoutMs,
      size: config.maxSandboxes,
      runtimes: 'E2B sandboxes',
      shareSetting: 'BLOCKGATE_E2B_TENANT_MAX_SANDBOXES',
    })
  }

  async start(): Promise<void> {
    try {
      const swept = await this.lifecycle.sweep()
      if (swept.length > 0) log.warn('killed sandboxes a previous run of this deployment left behind', { sandboxes: swept })
    } catch (error) {
      const failure = lifecycleError('list sandboxes at start-up', error)
      // A wrong key will never work: say so now, not on every request.
      if ((error as Error).name === 'AuthenticationError') throw failure
      this.lastError = failure.message
      log.warn('e2b is not reachable at start-up; runs will retry', { error: failure.message })
    }
    this.refillSpares()
  }

  status(): BackendStatus {
    const byWorkspace: Record<string, number> = {}
    for (const s of this.all.values()) if (s.workspace) byWorkspace[s.workspace] = (byWorkspace[s.workspace] ?? 0) + 1
    return {
      ready: !this.stopped && this.lastError === null,
      mode: this.config.mode,
      template: this.config.templateId,
      live: this.all.size,
      sandboxes: this.all.size,
      idle: this.idle.length,
      spares: this.spares.length,
      creating: this.creating,
      queued: this.waiters.length,
      by_workspace: byWorkspace,
      api_calls: { ...this.lifecycle.calls },
      ...(this.lastError ? { last_error: this.lastError } : {}),
    }
  }

  /** Live sandboxes with their workspace: for tests and diagnostics. */
  sandboxes(): { id: string; workspace: string | null; runs: number }[] {
    return [...this.all.values()].map((s) => ({ id: s.id, workspace: s.workspace, runs: s.runs }))
  }

  async run(job: RunJob): Promise<RunOutcome> {
    const queuedAt = performance.now()
    const tenant = tenantOf(job)
    for (let attempt = 0; ; attempt++) {
      // From here until this attempt ends, the sandbox counts against the tenant's share.
      const acquired = await traceAcquire('e2b', job, () => this.acquire(job, tenant), (a) => ({ cold: a.created, runtimeId: a.sandbox.id, waitedMs: a.waitedMs }))
      const remote = acquired.sandbox
      const acquiredAt = performance.now()
      const deadline = acquiredAt + job.timeoutMs
      const cancel = new AbortController()
      const abort = () => cancel.abort()
      job.signal?.addEventListener('abort', abort)
      const runtime: BlockRuntime = { loaded: remote.runtime.loaded, request: (message, timeoutMs) => remote.runtime.request(message, timeoutMs, cancel.signal) }
      // A sandbox that answered (even with a block error) is reusable; one that vanished,
      // stalled or was cancelled mid-run is not.
      let answered = true
      let exitReason: string | undefined
      try {
        const session = await runBlock(runtime, job, deadline, { inlineLoad: true, cacheSize: this.config.blockCacheSize })
        remote.runs++
        return outcomeOf(session, { queuedAt, acquiredAt, waitedMs: acquired.waitedMs, started: acquired.created })
      } catch (error) {
        answered = error instanceof BlockgateError
        exitReason = job.signal?.aborted ? 'client_gone' : error instanceof RuntimeTimeout ? 'timeout' : error instanceof SandboxGone ? 'gone' : 'error'
        // The sandbox vanished under us (E2B ended it, or its runtime died): once, on a new one.
        if (error instanceof SandboxGone && attempt === 0 && !job.signal?.aborted) {
          log.warn('e2b sandbox gone; retrying the run on a new one', { sandbox: remote.id, error: error.message })
          trace.getActiveSpan()?.addEvent('e2b.sandbox_gone', { [ATTR.runtimeId]: remote.id, 'exception.message': error.message })
          continue
        }
        throw this.translate(error, job, remote)
      } finally {
        job.signal?.removeEventListener('abort', abort)
        traceEnd(remote.id, answered, exitReason)
        this.waiters.drop(tenant)
        if (answered) this.release(remote)
        else this.retire(remote)
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true
    this.waiters.rejectAll(new Overloaded('the server is shutting down', 1))
    await Promise.allSettled([...this.pending])
    for (const remote of [...this.all.values()]) this.retire(remote)
    await Promise.allSettled([...this.pending])
  }

  /** A sandbox for `job`; at its share, a tenant waits for one of its own even if others are free. */
  private async acquire(job: RunJob, tenant: string): Promise<Acquired & { waitedMs: number }> {
    if (this.stopped) throw new Overloaded('the server is shutting down', 1)
    const { workspace } = job
    const hash = job.block.hash
    return this.waiters.acquire(tenant, workspace, hash, job.signal, () => this.startFor(workspace, hash, true))
  }

  /**
   * How a run of `workspace` can get a sandbox now, cheapest first (see RunQueue.next): 0 an
   * idle one of its workspace holding the block, 1 another idle one of its workspace, 2 a
   * spare or a new sandbox, 3 a new one after retiring an idle sandbox of another workspace;
   * undefined when every sandbox is busy.
   */
  private costFor(workspace: string, hash: string): number | undefined {
    const mine = this.idle.filter((s) => s.workspace === workspace)
    if (mine.length > 0) return mine.some((s) => s.runtime.loaded.has(hash)) ? 0 : 1
    if (this.spares.length > 0 || this.hasRoom()) return 2
    return this.idle.length > 0 ? 3 : undefined
  }

  /** Takes the sandbox `costFor` priced (null where it said undefined); a creation is started, not awaited. */
  private startFor(workspace: string, hash: string, traced: boolean): Promise<Acquired> | null {
    const mine = this.idle.filter((s) => s.workspace === workspace)
    const warm = mine.find((s) => s.runtime.loaded.has(hash)) ?? mine[0]
    if (warm) {
      this.take(warm)
      return Promise.resolve({ sandbox: warm, created: false })
    }
    const spare = this.spares.shift()
    if (spare) {
      spare.workspace = workspace
      this.refillSpares()
      return Promise.resolve({ sandbox: spare, created: true })
    }
    if (!this.hasRoom()) {
      // Full: make room by retiring an idle sandbox of another workspace, if there is one.
      const other = this.idle.find((s) => s.workspace !== workspace)
      if (other) this.retire(other, false)
    }
    if (!this.hasRoom()) return null
    const deadline = performance.now() + this.options.queueTimeoutMs
    // A creation for a waiter is not traced here: the span in hand is the run that freed room.
    const creating = traced
      ? inSpan(SPAN.sandboxCreate, { [ATTR.backend]: 'e2b', 'blockgate.e2b.template': this.config.templateId }, () => this.create(workspace, deadline))
      : this.create(workspace, deadline)
    return creating.then((sandbox) => ({ sandbox, created: true }))
  }

  private hasRoom(): boolean {
    return this.all.size + this.creating < this.config.maxSandboxes
  }

  /** A new sandbox, its runtime ready; counted against the cap while it is being made. */
  private async create(workspace: string | null, deadline: number): Promise<RemoteSandbox> {
    this.creating++
    const creation = (async () => {
      const sandbox = await this.lifecycle.create(workspace ?? UNASSIGNED_WORKSPACE, deadline)
      const createdAt = performance.now()
      const runtime = this.runtimeFor(sandbox)
      const remote: RemoteSandbox = {
        id: sandbox.sandboxId,
        sandbox,
        runtime,
        workspace,
        runs: 0,
        createdAt,
        expiresAt: createdAt + this.lifecycle.keepAliveMs(0),
        idleTimer: null,
      }
      this.all.set(remote.id, remote)
      if (runtime instanceof InterpreterRuntime) {
        try {
          await runtime.prepare(Math.max(1000, deadline - performance.now()))
        } catch (error) {
          this.retire(remote, false)
          throw error
        }
      }
      return remote
    })()
    this.track(creation)
    try {
      const remote = await creation
      this.lastError = null
      if (this.stopped) {
        this.retire(remote, false)
        throw new Overloaded('the server is shutting down', 1)
      }
      return remote
    } catch (error) {
      const failure = error instanceof BlockgateError ? error : lifecycleError('create a sandbox', error)
      this.lastError = failure.message
      throw failure
    } finally {
      this.creating--
    }
  }

  /** Template mode talks to the runtime server already up in the sandbox; code-interpreter mode uploads the runtime. */
  private runtimeFor(sandbox: Sandbox): RemoteRuntime {
    if (this.config.mode === 'code-interpreter') return new InterpreterRuntime(sandbox as InterpreterSandbox, this.options.maxFrameBytes)
    return HttpRuntime.forSandbox(sandbox, this.config.sandboxUrl, this.options.maxFrameBytes)
  }

  private take(remote: RemoteSandbox): void {
    this.idle.splice(this.idle.indexOf(remote), 1)
    if (remote.idleTimer) clearTimeout(remote.idleTimer)
    remote.idleTimer = null
  }

  private release(remote: RemoteSandbox): void {
    if (this.stopped || !this.all.has(remote.id)) return this.retire(remote)
    const now = performance.now()
    if (now - remote.createdAt > this.config.lifetimeMs - LIFETIME_MARGIN_MS) return this.retire(remote)
    // Idle until a waiter takes it: one of its workspace, or one that retires it for room.
    this.idle.push(remote)
    remote.idleTimer = setTimeout(() => {
      if (this.idle.includes(remote)) this.retire(remote)
    }, this.config.idleMs)
    this.serveWaiters()
    if (this.idle.includes(remote)) this.keepAlive(remote, now)
  }

  /**
   * Moves E2B's timer past our idle kill when it gets close: off the run's path, and at
   * most about once per idle period, so warm runs make no control-plane call.
   */
  private keepAlive(remote: RemoteSandbox, now: number): void {
    if (remote.expiresAt - now > this.config.idleMs + this.lifecycle.keepAliveMarginMs) return
    const timeoutMs = this.lifecycle.keepAliveMs(now - remote.createdAt)
    remote.expiresAt = now + timeoutMs
    this.track(
      this.lifecycle.extend(remote.sandbox, timeoutMs).catch((error) => {
        log.warn('e2b keep-alive failed; retiring the sandbox', { sandbox: remote.id, error: (error as Error).message })
        this.retire(remote)
      }),
    )
  }

  /** Ends a sandbox (E2B kill in the background) and keeps the pool's shape. */
  private retire(remote: RemoteSandbox, refill = true): void {
    if (remote.idleTimer) clearTimeout(remote.idleTimer)
    remote.idleTimer = null
    for (const list of [this.idle, this.spares]) {
      const at = list.indexOf(remote)
      if (at >= 0) list.splice(at, 1)
    }
    if (this.all.delete(remote.id)) this.track(this.lifecycle.kill(remote.id))
    if (refill) this.serveWaiters()
  }

  /** Waiters the pool can serve now get a sandbox, the fairest first (RunQueue.next). */
  private serveWaiters(): void {
    if (this.stopped) return
    this.waiters.serveAll(
      (w) => this.costFor(w.workspace, w.hash),
      (w) => this.startFor(w.workspace, w.hash, false)!,
      (acquired) => this.release(acquired.sandbox),
    )
    this.refillSpares()
  }

  private refillSpares(): void {
    if (this.stopped) return
    const wanted = this.config.minWarm - this.spares.length - this.creating
    for (let i = 0; i < wanted && this.hasRoom(); i++) {
      this.create(null, performance.now() + this.options.queueTimeoutMs).then(
        (remote) => {
          this.spares.push(remote)
          this.serveWaiters()
        },
        (error) => log.warn('e2b pre-warm failed', { error: (error as Error).message }),
      )
    }
  }

  private track(promise: Promise<unknown>): void {
    const settled = promise.then(
      () => {},
      () => {},
    )
    this.pending.add(settled)
    void settled.then(() => this.pending.delete(settled))
  }

  private translate(error: unknown, job: RunJob, remote: RemoteSandbox): Error {
    if (error instanceof BlockgateError) return error
    if (error instanceof RuntimeTimeout) return new BlockTimeout(job.timeoutMs, { sandbox: remote.id })
    if (job.signal?.aborted) return new Overloaded('the client went away during the run', 1)
    const name = (error as Error)?.name ?? 'Error'
    return new RemoteBackendFailed(`E2B sandbox ${remote.id} failed the run (${name}: ${(error as Error)?.message ?? error}); it was replaced`)
  }
}
