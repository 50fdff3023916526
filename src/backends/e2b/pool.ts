// The e2b backend: E2B sandboxes kept warm and reused by the shared warm-pool policy
// (warm-pool.ts: a sandbox serves one workspace for its whole life; tenants get fair shares;
// runs wait in a bounded queue). What is E2B's own: creating and killing sandboxes through its
// control plane (lifecycle.ts), a sandbox idle for E2B_SANDBOX_IDLE_TIMEOUT is killed, none is
// handed out near E2B_SANDBOX_TIMEOUT, E2B's own timer is moved on while one idles, and a run
// whose sandbox vanished is retried once on a new one. A warm run is one HTTP round trip and
// no control-plane call.
import type { Sandbox } from 'e2b'
import type { Sandbox as InterpreterSandbox } from '@e2b/code-interpreter'
import type { Backend, BackendStatus, RunJob, RunOutcome } from '../backend.ts'
import { outcomeOf, runBlock, type BlockRuntime, type RuntimeReply } from '../runtime-session.ts'
import type { E2BConfig } from '../../config.ts'
import { BlockgateError, BlockTimeout, Overloaded, RemoteBackendFailed } from '../../errors.ts'
import { log } from '../../log.ts'
import { trace } from '@opentelemetry/api'
import { ATTR, SPAN } from '../../telemetry/names.ts'
import { WarmPool } from '../warm-pool.ts'
import type { SharedState } from '../../shared/redis.ts'
import { Lifecycle, lifecycleError, UNASSIGNED_WORKSPACE } from './lifecycle.ts'
import { RuntimeTimeout, SandboxGone } from './edge.ts'
import { type ClaimedSandbox, type HeldSandbox, SandboxRegistry } from './registry.ts'
import { HttpRuntime } from './runtime-http.ts'
import { blockPackages, InterpreterRuntime } from './runtime-interpreter.ts'

export interface E2BPoolOptions {
  maxFrameBytes: number
  /** How long a run may wait for a sandbox (creation included) before a 503. */
  queueTimeoutMs: number
  /** The deployment's Redis, when there is one: the registry of sandboxes lives there. */
  shared?: SharedState | null
}

/** A runtime that can also be cancelled mid-request (the client went away). */
interface RemoteRuntime extends BlockRuntime {
  request(
    message: Record<string, unknown>,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<RuntimeReply>
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
}

/** performance.now() time ↔ wall-clock ms, for what the registry shares between instances. */
const toWallMs = (at: number) => Date.now() + (at - performance.now())
const fromWallMs = (ms: number) => performance.now() + (ms - Date.now())

/** Do not hand out a sandbox this close to its hard lifetime: a run could be cut off. */
const LIFETIME_MARGIN_MS = 5000
/** At the deployment's cap with nothing idle to end: how often a create asks again. */
const CAP_RETRY_MS = 250

export class E2BPool implements Backend {
  readonly name = 'e2b' as const
  readonly lifecycle: Lifecycle
  private readonly pool: WarmPool<RemoteSandbox>
  /** The deployment's registry of sandboxes, when instances share a Redis. */
  private readonly registry: SandboxRegistry | null
  private readonly timers: ReturnType<typeof setInterval>[] = []
  private stopped = false
  /** Why E2B could not be reached at start-up, until a sandbox is created. */
  private startError: string | null = null

  constructor(
    private readonly config: E2BConfig,
    private readonly options: E2BPoolOptions,
  ) {
    this.lifecycle = new Lifecycle(config)
    this.registry = options.shared
      ? new SandboxRegistry(options.shared, config.maxSandboxes, config.createsPerSecond)
      : null
    const registry = this.registry
    this.pool = new WarmPool<RemoteSandbox>(
      {
        start: (workspace, deadline) => this.obtain(workspace, deadline),
        end: (remote) => this.end(remote),
        holds: (remote, hash) => remote.runtime.loaded.has(hash),
        canStart: () => true,
        reusable: (remote) =>
          performance.now() - remote.createdAt <= config.lifetimeMs - LIFETIME_MARGIN_MS,
        idled: async (remote) => {
          await this.keepAlive(remote)
          await registry?.released(heldOf(remote))
        },
        ...(registry ? { claim: (remote) => registry.claim(remote.id, remote.workspace) } : {}),
      },
      {
        backend: 'e2b',
        spares: config.minWarm,
        size: config.maxSandboxes,
        maxQueue: config.maxQueue,
        tenantMaxQueue: config.tenantMaxQueue,
        tenantShare: config.tenantMaxSandboxes,
        shareSetting: 'BLOCKGATE_E2B_TENANT_MAX_SANDBOXES',
        queueTimeoutMs: options.queueTimeoutMs,
        runtimes: 'E2B sandboxes',
        startSpan: {
          name: SPAN.sandboxCreate,
          attributes: { [ATTR.backend]: 'e2b', 'blockgate.e2b.template': config.templateId },
        },
        idleMs: config.idleMs,
      },
    )
  }

  async start(): Promise<void> {
    try {
      const swept = await this.sweepLeftBehind()
      if (swept.length > 0)
        log.warn('killed sandboxes a previous run of this deployment left behind', {
          sandboxes: swept,
        })
    } catch (error) {
      const failure = lifecycleError('list sandboxes at start-up', error)
      // A wrong key will never work: say so now, not on every request.
      if ((error as Error).name === 'AuthenticationError') throw failure
      this.startError = failure.message
      log.warn('e2b is not reachable at start-up; runs will retry', { error: failure.message })
    }
    this.pool.warmUp().catch(() => {}) // a spare that fails is logged; runs create their own
    if (this.registry) this.shareUpkeep(this.registry)
  }

  /**
   * What a restart kills: every sandbox of the deployment alone; with a registry, only those
   * it does not list (and none younger than a lease: another instance may be registering it),
   * and none at all while Redis cannot say what the others hold.
   */
  private async sweepLeftBehind(): Promise<string[]> {
    if (!this.registry) return this.lifecycle.sweep()
    const listed = await this.registry.ids()
    if (listed === null) {
      log.warn('Redis is unavailable at start-up: sandboxes left behind are not swept now')
      return []
    }
    return this.lifecycle.sweep(listed, this.registry.leaseMs)
  }

  /**
   * While instances share a registry: this instance's leases renewed every third of a lease,
   * and every lease the registry is swept of the sandboxes whose holder died, which are killed.
   */
  private shareUpkeep(registry: SandboxRegistry): void {
    const renew = async () => {
      const held = this.pool.runtimes()
      for (const id of await registry.renew(held.map(heldOf))) {
        const remote = held.find((r) => r.id === id)
        if (remote) this.pool.abandon(remote) // another instance took it while it idled here
      }
    }
    const sweep = async () => {
      const dead = await registry.sweep()
      if (dead.length === 0) return
      log.warn('killing sandboxes whose instance died (their lease ran out)', { sandboxes: dead })
      await Promise.all(dead.map((id) => this.lifecycle.kill(id)))
    }
    const every = (ms: number, work: () => Promise<void>) => {
      const timer = setInterval(() => {
        work().catch((error) =>
          log.warn('e2b registry upkeep failed', { error: (error as Error).message }),
        )
      }, ms)
      timer.unref?.()
      this.timers.push(timer)
    }
    every(Math.max(100, registry.leaseMs / 3), renew)
    // Jittered, so instances started together do not all sweep at once.
    every(registry.leaseMs * (0.75 + Math.random() / 2), sweep)
  }

  status(): BackendStatus {
    const { live, idle, spares, starting, queued, by_workspace } = this.pool.counts()
    const lastError = this.pool.lastError ?? this.startError
    return {
      ready: !this.stopped && lastError === null,
      mode: this.config.mode,
      template: this.config.templateId,
      // Which Python and package versions a block sees here (the stock template's own, in code-interpreter mode).
      block_packages: blockPackages(this.config.mode),
      live,
      sandboxes: live,
      idle,
      spares,
      creating: starting,
      queued,
      by_workspace,
      api_calls: { ...this.lifecycle.calls },
      registry: this.registry
        ? { shared: this.registry.active, deployment_sandboxes: this.registry.size }
        : { shared: false },
      ...(lastError ? { last_error: lastError } : {}),
    }
  }

  /** Live sandboxes with their workspace: for tests and diagnostics. */
  sandboxes(): { id: string; workspace: string | null; runs: number }[] {
    return this.pool.list()
  }

  async run(job: RunJob): Promise<RunOutcome> {
    const queuedAt = performance.now()
    for (let attempt = 0; ; attempt++) {
      // From here until `finish`, the sandbox counts against the tenant's share.
      const acquired = await this.pool.acquire(job)
      const remote = acquired.runtime
      const acquiredAt = performance.now()
      const deadline = acquiredAt + job.timeoutMs
      const cancel = new AbortController()
      const abort = () => cancel.abort()
      job.signal?.addEventListener('abort', abort)
      const runtime: BlockRuntime = {
        loaded: remote.runtime.loaded,
        request: (message, timeoutMs) => remote.runtime.request(message, timeoutMs, cancel.signal),
      }
      // A sandbox that answered (even with a block error) is reusable; one that vanished,
      // stalled or was cancelled mid-run is not.
      let answered = true
      let exitReason: string | undefined
      try {
        const session = await runBlock(runtime, job, deadline, {
          inlineLoad: true,
          settings: {
            cache_size: this.config.blockCacheSize,
            max_capture_bytes: this.config.maxCaptureBytes,
          },
        })
        remote.runs++
        return outcomeOf(session, {
          queuedAt,
          acquiredAt,
          waitedMs: acquired.waitedMs,
          started: acquired.started,
        })
      } catch (error) {
        answered = error instanceof BlockgateError
        exitReason = job.signal?.aborted
          ? 'client_gone'
          : error instanceof RuntimeTimeout
            ? 'timeout'
            : error instanceof SandboxGone
              ? 'gone'
              : 'error'
        // The sandbox vanished under us (E2B ended it, or its runtime died): once, on a new one.
        if (error instanceof SandboxGone && attempt === 0 && !job.signal?.aborted) {
          log.warn('e2b sandbox gone or refused; retrying the run on a new one', {
            sandbox: remote.id,
            error: `${error.name}: ${error.message}`,
          })
          trace.getActiveSpan()?.addEvent('e2b.sandbox_gone', {
            [ATTR.runtimeId]: remote.id,
            'exception.message': error.message,
          })
          continue
        }
        throw this.translate(error, job, remote)
      } finally {
        job.signal?.removeEventListener('abort', abort)
        this.pool.finish(acquired, answered, exitReason)
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true
    for (const timer of this.timers) clearInterval(timer)
    await this.pool.stop()
  }

  /**
   * A sandbox for `workspace`: an idle one another instance of the deployment left, when the
   * registry has one; else a new one.
   */
  private async obtain(workspace: string | null, deadline: number): Promise<RemoteSandbox> {
    if (this.registry && workspace !== null) {
      const left = await this.registry.claimIdle(workspace, LIFETIME_MARGIN_MS)
      if (left) {
        try {
          return await this.adopt(left, workspace, deadline)
        } catch (error) {
          log.warn('e2b: a sandbox another instance left could not be reached; creating one', {
            sandbox: left.id,
            error: (error as Error).message,
          })
          if (await this.registry.drop(left.id, workspace)) void this.lifecycle.kill(left.id)
        }
      }
    }
    return this.create(workspace, deadline)
  }

  /**
   * A place under the deployment's cap for one create (null: Redis is unavailable, the pool's
   * own size is the cap). At the cap, room is made by ending an idle sandbox of another
   * workspace, any instance's, as one pool does; with none, the run waits for room until its
   * deadline.
   */
  private async reserve(
    registry: SandboxRegistry,
    workspace: string | null,
    deadline: number,
  ): Promise<string | null> {
    for (;;) {
      const answer = await registry.reserveCreate(deadline)
      if (answer === null) return null
      if ('reservation' in answer) return answer.reservation
      const evicted = await registry.evictIdle(workspace)
      // Killed before the create: E2B counts a sandbox until its kill lands.
      if (evicted) await this.lifecycle.kill(evicted)
      else if (performance.now() + CAP_RETRY_MS < deadline) await Bun.sleep(CAP_RETRY_MS)
      else
        throw new Overloaded(
          `the deployment holds ${answer.full} E2B sandboxes, its cap (BLOCKGATE_E2B_MAX_SANDBOXES=${this.config.maxSandboxes}), and none is idle`,
          1,
        )
    }
  }

  /** Connects to a sandbox another instance created: this instance holds it from now on. */
  private async adopt(
    left: ClaimedSandbox,
    workspace: string,
    deadline: number,
  ): Promise<RemoteSandbox> {
    const createdAt = fromWallMs(left.createdAtMs)
    const timeoutMs = this.lifecycle.keepAliveMs(performance.now() - createdAt)
    const sandbox = await this.lifecycle.connect(left.id, timeoutMs, deadline)
    const remote = this.remoteOf(sandbox, workspace, createdAt, performance.now() + timeoutMs)
    // Code-interpreter mode: the previous holder prepared it; prepare() finds nothing missing.
    if (remote.runtime instanceof InterpreterRuntime)
      await remote.runtime.prepare(Math.max(1000, deadline - performance.now()))
    log.info('e2b: took over an idle sandbox another instance left', { sandbox: remote.id })
    return remote
  }

  /** Ends a sandbox, unless another instance of the deployment took it meanwhile. */
  private async end(remote: RemoteSandbox): Promise<void> {
    if (this.registry && !(await this.registry.drop(remote.id, remote.workspace))) return
    await this.lifecycle.kill(remote.id)
  }

  /** A new sandbox, its runtime ready (the pool counts it against the cap while it is made). */
  private async create(workspace: string | null, deadline: number): Promise<RemoteSandbox> {
    let sandbox: Sandbox
    // Under the deployment's cap and rate when instances share a registry.
    const reservation = this.registry
      ? await this.reserve(this.registry, workspace, deadline)
      : null
    // E2B counts a sandbox's lifetime from its own start, a little before the create returns.
    const createdAt = performance.now()
    try {
      sandbox = await this.lifecycle.create(workspace ?? UNASSIGNED_WORKSPACE, deadline, {
        spaced: reservation !== null,
      })
    } catch (error) {
      await this.registry?.cancel(reservation)
      throw error instanceof BlockgateError ? error : lifecycleError('create a sandbox', error)
    }
    this.startError = null
    const remote = this.remoteOf(
      sandbox,
      workspace,
      createdAt,
      createdAt + this.lifecycle.keepAliveMs(0),
    )
    // Registered at once, so no instance's sweep takes it for one left behind.
    await this.registry?.register(heldOf(remote), reservation)
    if (remote.runtime instanceof InterpreterRuntime) {
      try {
        await remote.runtime.prepare(Math.max(1000, deadline - performance.now()))
      } catch (error) {
        void this.end(remote)
        throw error instanceof BlockgateError ? error : lifecycleError('create a sandbox', error)
      }
    }
    return remote
  }

  /** A sandbox this instance now holds, with its runtime, not yet run on. */
  private remoteOf(
    sandbox: Sandbox,
    workspace: string | null,
    createdAt: number,
    expiresAt: number,
  ): RemoteSandbox {
    const runtime = this.runtimeFor(sandbox)
    return { id: sandbox.sandboxId, sandbox, runtime, workspace, runs: 0, createdAt, expiresAt }
  }

  /** Template mode talks to the runtime server already up in the sandbox; code-interpreter mode uploads the runtime. */
  private runtimeFor(sandbox: Sandbox): RemoteRuntime {
    if (this.config.mode === 'code-interpreter')
      return new InterpreterRuntime(sandbox as InterpreterSandbox, this.options.maxFrameBytes)
    return HttpRuntime.forSandbox(sandbox, this.config.sandboxUrl, this.options.maxFrameBytes)
  }

  /**
   * Moves E2B's timer past our idle kill when it gets close: off the run's path, and at
   * most about once per idle period, so warm runs make no control-plane call.
   */
  private async keepAlive(remote: RemoteSandbox): Promise<void> {
    const now = performance.now()
    if (remote.expiresAt - now > this.config.idleMs + this.lifecycle.keepAliveMarginMs) return
    const timeoutMs = this.lifecycle.keepAliveMs(now - remote.createdAt)
    remote.expiresAt = now + timeoutMs
    try {
      await this.lifecycle.extend(remote.sandbox, timeoutMs)
    } catch (error) {
      log.warn('e2b keep-alive failed; retiring the sandbox', {
        sandbox: remote.id,
        error: (error as Error).message,
      })
      this.pool.retire(remote)
    }
  }

  private translate(error: unknown, job: RunJob, remote: RemoteSandbox): Error {
    if (error instanceof BlockgateError) return error
    if (error instanceof RuntimeTimeout)
      return new BlockTimeout(job.timeoutMs, { sandbox: remote.id })
    if (job.signal?.aborted) return new Overloaded('the client went away during the run', 1)
    const name = (error as Error)?.name ?? 'Error'
    return new RemoteBackendFailed(
      `E2B sandbox ${remote.id} failed the run (${name}: ${(error as Error)?.message ?? error}); it was replaced`,
    )
  }
}

/** What the registry keeps of a sandbox this instance holds. */
function heldOf(remote: RemoteSandbox): HeldSandbox {
  return {
    id: remote.id,
    workspace: remote.workspace,
    createdAtMs: toWallMs(remote.createdAt),
    expiresAtMs: toWallMs(remote.expiresAt),
    blocks: remote.runtime.loaded,
  }
}
