// E2B's edge: the proxies between blockgate and a sandbox's ports. What it answers itself,
// before a request reaches the sandbox, and what each runtime does about it: the same policy
// whether the request is a frame POSTed to the runtime server (template mode) or an SDK call
// to envd or the code interpreter (code-interpreter mode).
import { Overloaded } from '../../errors.ts'

/** The sandbox is gone or its server is not answering (E2B's edge answers 502). */
export class SandboxGone extends Error {
  override name = 'SandboxGone'
}

/**
 * E2B's edge refused our token for this sandbox (403): it will refuse every retry with the
 * same token, and only a new sandbox brings a new one. A SandboxGone, so the pool does what
 * it does for a vanished sandbox: retires this one and runs again on a new one, once.
 */
export class SandboxRefused extends SandboxGone {
  override name = 'SandboxRefused'
}

/**
 * E2B's edge kept answering 429 or 409 until the run's budget could not cover another wait.
 * The request never reached the sandbox, which is fine and stays in the pool (this is a
 * BlockgateError: the pool counts the sandbox as having answered); the client gets a 503
 * with Retry-After.
 */
export class EdgeBusy extends Overloaded {
  constructor(
    readonly edgeStatus: number,
    message: string,
    retryAfterS: number,
  ) {
    super(message, retryAfterS)
  }
}

/** The run did not answer within its budget. */
export class RuntimeTimeout extends Error {
  override name = 'RuntimeTimeout'
}

/**
 * What an answer that E2B's edge gives itself means, by status. Neither the runtime server
 * (template/runtime/server.py), envd's file API (its spec) nor the code interpreter's server
 * answers 403, 409 or 429, so these come from the edge, which gave them before forwarding: the
 * request did not reach the sandbox and may be sent again. From e2b-dev/infra,
 * packages/shared/pkg/proxy (handler.go, template/*.go), the client proxy and the
 * orchestrator's proxy:
 * - 502: the sandbox was not found, or the port is not open: it is gone.
 * - 403: the traffic token is missing or invalid (orchestrator proxy), or an auto-resume was
 *   denied with the credentials sent (client proxy): our token will not get through.
 * - 409: "The sandbox is still transitioning. Try again in a moment." (a pause or snapshot
 *   under way when the edge tried to resume it): wait briefly, it will be running.
 * - 429: too many concurrent connections to the sandbox (orchestrator proxy), the team's
 *   sandbox limit hit while resuming it (client proxy), or the load balancer's limit of
 *   requests per IP (Cloud Armor, iac/provider-gcp/nomad-cluster/network/main.tf: 60,000 a
 *   minute since infra#1556, 40,000 before): back off and send again. None of these sends
 *   Retry-After; one is honoured if present.
 * 404 on the runtime's port comes from a server without its /frame route: not our runtime,
 * so the sandbox is treated as gone (code-interpreter mode sorts the SDK's 404s itself).
 */
const EDGE_ANSWERS: Record<number, 'gone' | 'refused' | 'wait'> = {
  502: 'gone',
  404: 'gone',
  403: 'refused',
  409: 'wait',
  429: 'wait',
}

/** The first wait after a 409 or 429 without Retry-After; each next one doubles, up to the cap. */
const EDGE_BACKOFF_FIRST_MS = 200
const EDGE_BACKOFF_MAX_MS = 4000
/** A wait must leave the run this much of its budget (or half of it, if less) to run in. */
const EDGE_WAIT_RESERVE_MS = 1000

/**
 * One request's way through the edge: after each 409 or 429 it waits (Retry-After if given,
 * else a doubling backoff) and lets the caller send again, while the run's budget can cover
 * the wait and leave time to run.
 */
export class EdgeRetry {
  private refusals = 0

  constructor(
    /** When the run's budget ends (performance.now() time). */
    private readonly budgetEnds: number,
    private readonly timeoutMs: number,
  ) {}

  /**
   * Acts on an answer of `status`: waits and returns true when the request may be sent again;
   * throws SandboxGone, SandboxRefused or EdgeBusy when it may not; returns false at once when
   * the edge does not give that status itself (the answer is the sandbox's own).
   */
  async waitToResend(
    status: number,
    answered: string,
    retryAfter: string | null,
    stop: AbortSignal,
  ): Promise<boolean> {
    const action = EDGE_ANSWERS[status]
    if (action === undefined) return false
    if (action === 'gone') throw new SandboxGone(`the sandbox is gone (${answered})`)
    if (action === 'refused')
      throw new SandboxRefused(`E2B's edge refused our token for the sandbox (${answered})`)
    const waitMs =
      retryAfterMs(retryAfter) ??
      Math.min(EDGE_BACKOFF_MAX_MS, EDGE_BACKOFF_FIRST_MS * 2 ** this.refusals) *
        (0.8 + 0.4 * Math.random())
    this.refusals++
    const left = this.budgetEnds - performance.now()
    if (left - waitMs < Math.min(EDGE_WAIT_RESERVE_MS, this.timeoutMs / 2))
      throw new EdgeBusy(
        status,
        `E2B's edge kept refusing the request to the sandbox (${this.refusals} times, last ${answered}); the sandbox is kept`,
        Math.max(1, Math.ceil(waitMs / 1000)),
      )
    await sleep(waitMs, stop)
    return true
  }
}

/** Retry-After as milliseconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3); null if absent or unreadable. */
export function retryAfterMs(header: string | null): number | null {
  if (header === null || header.trim() === '') return null
  const seconds = Number(header)
  if (Number.isFinite(seconds)) return seconds >= 0 ? seconds * 1000 : null
  const at = Date.parse(header)
  return Number.isNaN(at) ? null : Math.max(0, at - Date.now())
}

/** Resolves after `ms`, or at once when `signal` aborts (the caller checks which). */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const done = () => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done)
  })
}
