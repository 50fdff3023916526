// Template mode: the runtime server (template/runtime/server.py) is already running in the
// sandbox when it boots; each request is one worker frame POSTed to it, the reply one frame
// back. One HTTP round trip per request and no control-plane call.
import type { Sandbox } from 'e2b'
import { encodeFrame, FrameReader } from '../framing.ts'
import { RuntimeProtocolError, type RuntimeRequest } from '../runtime-protocol.ts'
import type { BlockRuntime, RuntimeReply } from '../runtime-session.ts'
import { FRAME_CONTENT_TYPE, RUNTIME_PORT } from '../../runtime-template.ts'
import { EdgeRetry, RuntimeTimeout, SandboxGone } from './edge.ts'

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
    const edge = new EdgeRetry(budgetEnds, timeoutMs)
    for (;;) {
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
        const text = (await response.text().catch(() => '')).slice(0, 300)
        const answered = `HTTP ${response.status}: ${text}`
        const retryAfter = response.headers.get('retry-after')
        if (!(await edge.waitToResend(response.status, answered, retryAfter, stop)))
          throw new Error(`the sandbox's runtime answered ${answered}`)
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

/** The single reply frame a body must hold (what it says is checked by the session, against the op sent). */
export function onlyFrame(body: Uint8Array, maxFrameBytes: number): RuntimeReply {
  const frames = new FrameReader(maxFrameBytes).push(body)
  if (frames.length !== 1)
    throw new RuntimeProtocolError(
      `the sandbox's runtime answered ${frames.length} frames, not one reply`,
    )
  return frames[0]
}
