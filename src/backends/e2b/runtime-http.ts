// Template mode: the runtime server (template/runtime/server.py) is already running in the
// sandbox when it boots; each request is one worker frame POSTed to it, the reply one frame
// back. One HTTP round trip per request and no control-plane call.
import type { Sandbox } from 'e2b'
import { Overloaded } from '../../errors.ts'
import { encodeFrame, FrameReader } from '../framing.ts'
import { RuntimeProtocolError, type RuntimeRequest } from '../runtime-protocol.ts'
import type { BlockRuntime, RuntimeReply } from '../runtime-session.ts'
import { FRAME_CONTENT_TYPE, RUNTIME_PORT } from '../../runtime-template.ts'

/** The sandbox is gone or its server is not answering (E2B's edge answers 502). */
export class SandboxGone extends Error {
  override name = 'SandboxGone'
}

/**
 * E2B's edge refused our traffic token for this sandbox (403): it will refuse every retry
 * with the same token, and only a new sandbox brings a new one. A SandboxGone, so the pool
 * does what it does for a vanished sandbox: retires this one and runs again on a new one, once.
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
 * What an answer that E2B's edge gives itself means, by status. The runtime server never
 * answers 403, 409 or 429 (template/runtime/server.py), so these come from the edge, which
 * gave them before forwarding: the request did not reach the sandbox and may be sent again.
 * From e2b-dev/infra, packages/shared/pkg/proxy (handler.go, template/*.go), the client
 * proxy and the orchestrator's proxy:
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
 * 404 on this port comes from the server behind it (no /frame route): not our runtime, so
 * the sandbox is treated as gone.
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

export interface RuntimeEndpoint {
  url: string
  headers: Record<string, string>
}

/**
 * How to reach a port of a sandbox: through `sandboxUrl` with routing headers when one is
 * configured (E2B's single-host mode, and the offline stand-in), else its own host name.
 */
function endpointOf(
  sandbox: Sandbox,
  port: number,
  sandboxUrl: string | undefined,
): RuntimeEndpoint {
  const headers: Record<string, string> = {}
  if (sandbox.trafficAccessToken) headers['e2b-traffic-access-token'] = sandbox.trafficAccessToken
  if (sandboxUrl) {
    headers['E2b-Sandbox-Id'] = sandbox.sandboxId
    headers['E2b-Sandbox-Port'] = String(port)
    return { url: sandboxUrl.replace(/\/$/, ''), headers }
  }
  return { url: `https://${sandbox.getHost(port)}`, headers }
}

export class HttpRuntime implements BlockRuntime {
  readonly loaded = new Set<string>()
  private readonly frameUrl: string
  private readonly headers: Record<string, string>

  constructor(
    endpoint: RuntimeEndpoint,
    private readonly maxFrameBytes: number,
  ) {
    this.frameUrl = `${endpoint.url}/frame`
    this.headers = { ...endpoint.headers, 'content-type': FRAME_CONTENT_TYPE }
  }

  static forSandbox(
    sandbox: Sandbox,
    sandboxUrl: string | undefined,
    maxFrameBytes: number,
  ): HttpRuntime {
    return new HttpRuntime(endpointOf(sandbox, RUNTIME_PORT, sandboxUrl), maxFrameBytes)
  }

  async request(
    message: RuntimeRequest,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<RuntimeReply> {
    const budgetEnds = performance.now() + timeoutMs
    const deadline = AbortSignal.timeout(timeoutMs)
    const stop = signal ? AbortSignal.any([deadline, signal]) : deadline
    const body = new Blob(encodeFrame(message))
    for (let refusals = 0; ; refusals++) {
      let response: Response
      try {
        response = await fetch(this.frameUrl, {
          method: 'POST',
          headers: this.headers,
          body,
          signal: stop,
        })
      } catch (error) {
        if (deadline.aborted)
          throw new RuntimeTimeout(`the sandbox gave no reply within ${timeoutMs} ms`)
        if (signal?.aborted) throw error
        throw new SandboxGone(
          `the sandbox's runtime could not be reached: ${(error as Error).message}`,
        )
      }
      if (!response.ok) {
        const action = EDGE_ANSWERS[response.status]
        const text = (await response.text().catch(() => '')).slice(0, 300)
        const answered = `HTTP ${response.status}: ${text}`
        if (action === 'gone') throw new SandboxGone(`the sandbox's runtime is gone (${answered})`)
        if (action === 'refused')
          throw new SandboxRefused(`E2B's edge refused the sandbox's traffic token (${answered})`)
        if (action !== 'wait') throw new Error(`the sandbox's runtime answered ${answered}`)
        const waitMs =
          retryAfterMs(response.headers.get('retry-after')) ??
          Math.min(EDGE_BACKOFF_MAX_MS, EDGE_BACKOFF_FIRST_MS * 2 ** refusals) *
            (0.8 + 0.4 * Math.random())
        const left = budgetEnds - performance.now()
        if (left - waitMs < Math.min(EDGE_WAIT_RESERVE_MS, timeoutMs / 2))
          throw new EdgeBusy(
            response.status,
            `E2B's edge kept refusing the request to the sandbox (${refusals + 1} times, last ${answered}); the sandbox is kept`,
            Math.max(1, Math.ceil(waitMs / 1000)),
          )
        await sleep(waitMs, stop)
        if (deadline.aborted)
          throw new RuntimeTimeout(`the sandbox gave no reply within ${timeoutMs} ms`)
        if (signal?.aborted) throw signal.reason
        continue
      }
      let reply: Uint8Array
      try {
        reply = new Uint8Array(await response.arrayBuffer())
      } catch (error) {
        if (deadline.aborted)
          throw new RuntimeTimeout(`the sandbox gave no reply within ${timeoutMs} ms`)
        throw new SandboxGone(`the sandbox's reply broke off: ${(error as Error).message}`)
      }
      return onlyFrame(reply, this.maxFrameBytes)
    }
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

/** The single reply frame a body must hold (what it says is checked by the session, against the op sent). */
export function onlyFrame(body: Uint8Array, maxFrameBytes: number): RuntimeReply {
  const frames = new FrameReader(maxFrameBytes).push(body)
  if (frames.length !== 1)
    throw new RuntimeProtocolError(
      `the sandbox's runtime answered ${frames.length} frames, not one reply`,
    )
  return frames[0]
}
