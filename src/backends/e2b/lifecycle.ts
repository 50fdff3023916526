// Every call blockgate makes to E2B's control plane, through the e2b SDK: create (spaced
// to the plan's creation rate and retried on 429/503), keep-alive, kill, and the sweep of
// sandboxes a previous run of this deployment left behind. Each call is counted, so the
// bench can show that a warm run makes none.
import { AuthenticationError, NotFoundError, RateLimitError, Sandbox, ServiceBusyError } from 'e2b'
import { Sandbox as InterpreterSandbox } from '@e2b/code-interpreter'
import type { E2BConfig } from '../../config.ts'
import { BlockgateError, Overloaded, RemoteBackendFailed } from '../../errors.ts'
import { log } from '../../log.ts'
import { trace } from '@opentelemetry/api'
import { runtimeVersion } from '../../runtime-template.ts'

export type LifecycleCall = 'create' | 'connect' | 'kill' | 'set_timeout' | 'list'

/** Metadata every sandbox carries: who it serves, what made it, which deployment owns it. */
export const METADATA = {
  workspace: 'workspace',
  version: 'blockgate_version',
  deployment: 'blockgate_deployment',
} as const

/** Unbound pre-warmed sandboxes carry this workspace until a run claims them. */
export const UNASSIGNED_WORKSPACE = '-'

const RETRY_BASE_MS = 250
const RETRY_MAX_MS = 8000

export class Lifecycle {
  readonly calls: Record<LifecycleCall, number> = {
    create: 0,
    connect: 0,
    kill: 0,
    set_timeout: 0,
    list: 0,
  }
  private nextCreateAt = 0

  constructor(private readonly config: E2BConfig) {}

  /**
   * The SDK's connection options, explicit where the SDK would otherwise read the server's
   * environment (E2B_DEBUG, E2B_DOMAIN, E2B_API_URL). Only a sandbox URL cannot be pinned to
   * "none": unset, the SDK reads E2B_SANDBOX_URL, the variable blockgate's config reads too.
   * `retries: 0`: the SDK would retry 429s on its own, under blockgate's own retries (one
   * policy, in `create`, bounded by the run's deadline).
   */
  get connection() {
    const { apiKey, sandboxUrl } = this.config
    const domain = this.config.domain ?? 'e2b.app'
    const apiUrl = this.config.apiUrl ?? `https://api.${domain}`
    return { apiKey, apiUrl, sandboxUrl, domain, debug: false, retries: 0 }
  }

  /**
   * A new sandbox for `workspace` by `deadline` (performance.now() time): creates are spaced
   * to the plan's rate, a 429 or 503 is retried with backoff at most `createRetries` times,
   * and no attempt runs past the deadline. Throws Overloaded when E2B keeps refusing or time
   * runs out, RemoteBackendFailed otherwise. `spaced`: the first attempt already has its slot
   * of the deployment's rate (the shared registry gave it).
   */
  async create(workspace: string, deadline: number, { spaced = false } = {}): Promise<Sandbox> {
    const SandboxClass = this.sandboxClass
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0 || !spaced) await this.waitForCreateSlot(deadline)
      this.calls.create++
      trace.getActiveSpan()?.addEvent('e2b.create', { 'blockgate.attempt': attempt + 1 })
      try {
        const requestTimeoutMs = Math.floor(deadline - performance.now())
        if (requestTimeoutMs <= 0)
          throw new Overloaded(`no sandbox could be created before this run's deadline`, 1)
        return await SandboxClass.create(this.config.templateId, {
          ...this.connection,
          requestTimeoutMs,
          timeoutMs: this.keepAliveMs(0),
          metadata: {
            [METADATA.workspace]: workspace,
            [METADATA.version]: runtimeVersion(),
            [METADATA.deployment]: this.config.deploymentId,
          },
          // Secrets never travel in envs: the sandbox gets none.
          allowInternetAccess: this.config.allowInternet,
          // Only holders of the traffic token reach the runtime's port.
          network: { allowPublicTraffic: false },
        })
      } catch (error) {
        const retryable = error instanceof RateLimitError || error instanceof ServiceBusyError
        const waitMs =
          Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** attempt) * (0.5 + Math.random() / 2)
        if (
          retryable &&
          attempt < this.config.createRetries &&
          performance.now() + waitMs < deadline
        ) {
          log.warn('e2b refused a create; retrying', {
            error: (error as Error).name,
            attempt: attempt + 1,
            wait_ms: Math.round(waitMs),
          })
          trace.getActiveSpan()?.addEvent('e2b.retry', {
            'error.type': (error as Error).name,
            'blockgate.attempt': attempt + 1,
            'blockgate.wait_ms': Math.round(waitMs),
          })
          await Bun.sleep(waitMs)
          continue
        }
        // The attempt was cut at the run's deadline: the SDK's request timeout (an e2b
        // TimeoutError, or the fetch's own DOMException of that name).
        if ((error as Error)?.name === 'TimeoutError' && performance.now() >= deadline - 50) {
          throw new Overloaded('E2B did not create a sandbox before this run stopped waiting', 1)
        }
        throw lifecycleError('create a sandbox', error)
      }
    }
  }

  /** A sandbox another instance of the deployment created, connected to (its timer moved to `timeoutMs`). */
  async connect(sandboxId: string, timeoutMs: number, deadline: number): Promise<Sandbox> {
    this.calls.connect++
    const requestTimeoutMs = Math.max(1, Math.floor(deadline - performance.now()))
    return this.sandboxClass.connect(sandboxId, { ...this.connection, timeoutMs, requestTimeoutMs })
  }

  private get sandboxClass(): typeof Sandbox {
    return this.config.mode === 'code-interpreter' ? InterpreterSandbox : Sandbox
  }

  /**
   * How long E2B should keep a sandbox after now: past our own idle kill (so E2B's timer
   * is only the backstop if blockgate dies), never past the sandbox's hard lifetime or the
   * plan's (E2B clamps a timeout to the plan's lifetime from the sandbox's start).
   */
  keepAliveMs(ageMs: number): number {
    const { idleMs, lifetimeMs, planMaxLifetimeMs } = this.config
    const wanted = 2 * idleMs + this.keepAliveMarginMs
    return Math.max(1000, Math.min(wanted, lifetimeMs - ageMs, planMaxLifetimeMs - ageMs))
  }

  /** How far E2B's timer must stay past our idle kill: time for a kill call to arrive. */
  get keepAliveMarginMs(): number {
    return Math.min(5000, this.config.idleMs / 2)
  }

  async extend(sandbox: Sandbox, timeoutMs: number): Promise<void> {
    this.calls.set_timeout++
    await sandbox.setTimeout(timeoutMs)
  }

  async kill(sandboxId: string): Promise<void> {
    this.calls.kill++
    try {
      await Sandbox.kill(sandboxId, this.connection)
    } catch (error) {
      // Already gone is fine; anything else is logged, E2B's own timeout ends it later.
      if (!(error instanceof NotFoundError))
        log.warn('e2b kill failed', { sandbox: sandboxId, error: (error as Error).message })
    }
  }

  /**
   * Kills every sandbox this deployment owns (left behind by a crash or an unclean stop) but
   * those in `except` and those younger than `graceMs` (another instance may be about to
   * register one it just created).
   */
  async sweep(except: ReadonlySet<string> = new Set(), graceMs = 0): Promise<string[]> {
    const paginator = Sandbox.list({
      ...this.connection,
      query: { metadata: { [METADATA.deployment]: this.config.deploymentId } },
    })
    const found: string[] = []
    while (paginator.hasNext) {
      this.calls.list++
      for (const info of await paginator.nextItems())
        if (!except.has(info.sandboxId) && Date.now() - info.startedAt.getTime() >= graceMs)
          found.push(info.sandboxId)
    }
    await Promise.all(found.map((id) => this.kill(id)))
    return found
  }

  /** Spaces creates evenly at the plan's creation rate (E2B answers 429 beyond it). */
  private async waitForCreateSlot(deadline: number): Promise<void> {
    const now = performance.now()
    const at = Math.max(now, this.nextCreateAt)
    if (at > deadline)
      throw new Overloaded(
        `the E2B creation rate (${this.config.createsPerSecond}/s) leaves no slot before this run's deadline`,
        Math.ceil((at - now) / 1000),
      )
    this.nextCreateAt = at + 1000 / this.config.createsPerSecond
    if (at > now) await Bun.sleep(at - now)
  }
}

/** An SDK failure as the client should see it: overloaded (retry later) or a 502 naming E2B's error class. */
export function lifecycleError(what: string, error: unknown): BlockgateError {
  if (error instanceof BlockgateError) return error
  const name = (error as Error)?.name ?? 'Error'
  const message = (error as Error)?.message ?? String(error)
  if (error instanceof RateLimitError || error instanceof ServiceBusyError) {
    return new Overloaded(`E2B could not ${what} (${name}: ${message})`, 5)
  }
  if (error instanceof AuthenticationError)
    return new RemoteBackendFailed(
      `E2B refused the API key while trying to ${what} (${name}); check E2B_API_KEY`,
    )
  return new RemoteBackendFailed(`E2B could not ${what} (${name}: ${message})`)
}
