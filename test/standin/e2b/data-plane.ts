// The sandbox URL: E2B's edge as the SDK reaches it when E2B_SANDBOX_URL is set, routing
// each request by its E2b-Sandbox-Id and E2b-Sandbox-Port headers. A sandbox that is gone
// (or paused) answers 502 like the edge does; the envd port checks the envd access token,
// every other port the traffic access token, when the sandbox has one.
import { timingSafeEqual } from 'node:crypto'
import { RUNTIME_PORT } from '../../../src/runtime-template.ts'
import { envd } from './envd.ts'
import type { Faults } from './faults.ts'
import { forwardToSocket } from './forward.ts'
import { interpreter } from './interpreter.ts'
import type { SandboxRegistry } from './registry.ts'
import type { CallLog } from './calls.ts'

export const ENVD_PORT = 49983
export const INTERPRETER_PORT = 49999

export function dataPlane(
  registry: SandboxRegistry,
  faults: Faults,
  calls: CallLog,
): (request: Request) => Promise<Response> {
  return async (request) => {
    const id = request.headers.get('e2b-sandbox-id')
    const port = Number(request.headers.get('e2b-sandbox-port'))
    calls.countData(port)
    if (!id || !Number.isInteger(port) || port < 1 || port > 65535) {
      return edgeError(
        400,
        'the E2b-Sandbox-Id and E2b-Sandbox-Port headers name the sandbox and port',
        id,
        port,
      )
    }
    const sandbox = registry.get(id)
    if (!sandbox || faults.notFoundIds.includes(id))
      return edgeError(502, 'The sandbox was not found', id, port)
    if (sandbox.state === 'paused') return edgeError(502, 'The sandbox is paused', id, port)

    const path = new URL(request.url).pathname
    if (port === ENVD_PORT) {
      // envd's health check is open, as in E2B; the rest needs the token.
      if (
        sandbox.spec.envdAccessToken &&
        path !== '/health' &&
        !tokenMatches(request.headers.get('x-access-token'), sandbox.spec.envdAccessToken)
      ) {
        return edgeError(
          401,
          'unauthorized access, please provide a valid access token in the X-Access-Token header',
          id,
          port,
        )
      }
      return envd.fetch(request, { sandbox })
    }
    if (
      sandbox.spec.trafficAccessToken &&
      !tokenMatches(
        request.headers.get('e2b-traffic-access-token'),
        sandbox.spec.trafficAccessToken,
      )
    ) {
      return edgeError(
        403,
        'the sandbox does not allow public traffic: send its traffic access token in the e2b-traffic-access-token header',
        id,
        port,
      )
    }
    if (port === INTERPRETER_PORT) return interpreter.fetch(request, { sandbox })
    const socket = port === RUNTIME_PORT ? sandbox.runtimeSocket : null
    if (!socket)
      return edgeError(
        502,
        `The sandbox is running but no service is listening on port ${port}`,
        id,
        port,
      )
    try {
      return await forwardToSocket(request, socket)
    } catch (error) {
      // The process behind the port died (or never started): the edge cannot reach it.
      return edgeError(
        502,
        `The sandbox is running but no service answers on port ${port}: ${(error as Error).message}`,
        id,
        port,
      )
    }
  }
}

function edgeError(
  status: number,
  message: string,
  sandboxId: string | null,
  port: number,
): Response {
  return Response.json({ code: status, message, sandboxId, port }, { status })
}

function tokenMatches(given: string | null, expected: string): boolean {
  if (given === null || given.length !== expected.length) return false
  return timingSafeEqual(Buffer.from(given), Buffer.from(expected))
}
