// E2B's edge: requests to a sandbox's ports, routed the way E2B's proxies route them
// (e2b-dev/infra, packages/shared/pkg/proxy/host.go). A request to a per-sandbox host,
// `<port>-<sandboxId>.<domain>` (what the SDK's getHost builds), is routed by its Host; one to
// an IP, to `localhost` or to the shared `sandbox.<domain>` host (E2B_SANDBOX_URL, and the
// SDK's envd calls on E2B's own domains) by its E2b-Sandbox-Id and E2b-Sandbox-Port headers.
// A sandbox that is gone (or paused) answers 502 like the edge does; the envd port checks the
// envd access token, every other port the traffic access token when the sandbox has one; the
// `edgeAnswers` switch makes the edge answer 403, 409 or 429 itself (edge-answers.ts).
import { timingSafeEqual } from 'node:crypto'
import { isIP } from 'node:net'
import { RUNTIME_PORT } from '../../../src/runtime-template.ts'
import { edgeAnswerResponse, takeEdgeAnswer, trafficTokenRefused } from './edge-answers.ts'
import { envd } from './envd.ts'
import type { Faults } from './faults.ts'
import { forwardToSocket } from './forward.ts'
import { interpreter } from './interpreter.ts'
import type { SandboxRegistry } from './registry.ts'
import type { CallLog } from './calls.ts'

export const ENVD_PORT = 49983
export const INTERPRETER_PORT = 49999

/** Where a request goes, and how the edge found out; or the 400 it gets instead. */
type Target =
  | { sandboxId: string; port: number; routedBy: 'host' | 'headers' }
  | { refused: string }

/** infra's GetTargetFromRequest: headers only on a host that cannot name a sandbox, else the Host. */
export function targetOf(request: Request): Target {
  const host = request.headers.get('host') ?? new URL(request.url).host
  const hostname = hostnameOf(host)
  const byHeaders =
    hostname === 'localhost' || isIP(hostname) !== 0 || /^sandbox\..+/.test(hostname)
  const idHeader = request.headers.get('e2b-sandbox-id') ?? ''
  const portHeader = request.headers.get('e2b-sandbox-port') ?? ''
  let target: { sandboxId: string; portText: string; routedBy: 'host' | 'headers' }
  if (byHeaders && (idHeader || portHeader)) {
    if (!idHeader) return { refused: 'missing header' }
    if (!portHeader) return { refused: 'missing header' }
    target = { sandboxId: idHeader, portText: portHeader, routedBy: 'headers' }
  } else {
    // The left-most label of the Host as it came (a port after it does not matter here).
    const dot = host.indexOf('.')
    if (dot < 0) return { refused: 'Invalid host' }
    const parts = host.slice(0, dot).split('-')
    if (parts.length < 2) return { refused: 'Invalid host' }
    target = { sandboxId: parts[1]!, portText: parts[0]!, routedBy: 'host' }
  }
  // Go's strconv.ParseUint: digits only, and it must fit (a port above 65535 is let through
  // there and reaches nothing; here it is refused the same way).
  if (!/^\d+$/.test(target.portText) || Number(target.portText) > 65535)
    return { refused: 'Invalid sandbox port' }
  if (!/^[a-z0-9]+$/.test(target.sandboxId)) return { refused: 'Invalid sandbox ID' }
  return { sandboxId: target.sandboxId, port: Number(target.portText), routedBy: target.routedBy }
}

export function dataPlane(
  registry: SandboxRegistry,
  faults: Faults,
  calls: CallLog,
): (request: Request) => Promise<Response> {
  return async (request) => {
    const target = targetOf(request)
    if ('refused' in target) {
      calls.countData(0, 'refused')
      // Go's http.Error: a line of text.
      return new Response(`${target.refused}\n`, {
        status: 400,
        headers: {
          'Content-Type': 'text/plain; charset=utf-8',
          'X-Content-Type-Options': 'nosniff',
        },
      })
    }
    const { sandboxId: id, port } = target
    calls.countData(port, target.routedBy)
    const canned = takeEdgeAnswer(faults.edgeAnswers, id, port)
    if (canned) return edgeAnswerResponse(canned, id)
    const sandbox = registry.get(id)
    // A paused sandbox is not running anywhere: the edge finds no route to it (and, as it
    // was not created with auto-resume, does not resume it).
    if (!sandbox || faults.notFoundIds.includes(id) || sandbox.state === 'paused')
      return edgeError({ sandboxId: id, message: 'The sandbox was not found', code: 502 })

    const path = new URL(request.url).pathname
    if (port === ENVD_PORT) {
      // E2B's edge lets envd traffic through and envd checks its token itself, but for
      // /health; here the check stands in front of the stand-in's envd.
      if (
        sandbox.spec.envdAccessToken &&
        path !== '/health' &&
        !tokenMatches(request.headers.get('x-access-token'), sandbox.spec.envdAccessToken)
      ) {
        return Response.json(
          {
            code: 401,
            message:
              'unauthorized access, please provide a valid access token in the X-Access-Token header',
          },
          { status: 401 },
        )
      }
      return envd.fetch(request, { sandbox })
    }
    const token = request.headers.get('e2b-traffic-access-token')
    if (sandbox.spec.trafficAccessToken && !tokenMatches(token, sandbox.spec.trafficAccessToken))
      return trafficTokenRefused(id, token)
    if (port === INTERPRETER_PORT) return interpreter.fetch(request, { sandbox })
    const socket = port === RUNTIME_PORT ? sandbox.runtimeSocket : null
    if (!socket) return portClosed(id, port)
    try {
      return await forwardToSocket(request, socket)
    } catch {
      // The process behind the port died (or never started): the edge cannot reach it.
      return portClosed(id, port)
    }
  }
}

/** The host part of a Host header: no port, no IPv6 brackets. */
function hostnameOf(host: string): string {
  if (host.startsWith('[')) return host.slice(1, host.indexOf(']'))
  const colon = host.lastIndexOf(':')
  return colon >= 0 && host.indexOf(':') === colon ? host.slice(0, colon) : host
}

/** infra's template.NewPortClosedError. */
function portClosed(sandboxId: string, port: number): Response {
  return edgeError({
    sandboxId,
    message: 'The sandbox is running but port is not open',
    port,
    code: 502,
  })
}

/** One of infra's templated errors as the edge sends it to a non-browser client. */
function edgeError(body: { code: number } & Record<string, unknown>): Response {
  return new Response(JSON.stringify(body), {
    status: body.code,
    headers: { 'Content-Type': 'application/json; charset=utf-8' },
  })
}

function tokenMatches(given: string | null, expected: string): boolean {
  if (given === null || given.length !== expected.length) return false
  return timingSafeEqual(Buffer.from(given), Buffer.from(expected))
}
