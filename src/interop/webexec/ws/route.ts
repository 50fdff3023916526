// GET /webexec/ws: Inference's websocket transport (WEBEXEC_TRANSPORT=websocket), at the path
// its client derives from MODAL_WEB_ENDPOINT_URL=http://host/webexec. The credentials are
// checked once, on the upgrade (Modal-Key/Modal-Secret, or a Bearer key), with the workspace
// the key may use; a refusal is a plain HTTP status whose reason is also in a header, since
// the client shows the headers of a failed handshake and not its body. Runs are admitted by
// the key's quota one request at a time, not per connection.
import { context, propagation } from '@opentelemetry/api'
import type { Server } from 'bun'
import type { Hono } from 'hono'
import { presentedKey, workspaceFor, type CallerEnv } from '../../../auth/caller.ts'
import type { KeyRing } from '../../../auth/keys.ts'
import type { Quotas } from '../../../auth/quotas.ts'
import type { WebexecConfig } from '../../../config.ts'
import {
  BadRequest,
  BlockgateError,
  Overloaded,
  Unauthorized,
  UpgradeRequired,
} from '../../../errors.ts'
import type { OpenSockets, SocketSession } from '../../../http/websocket.ts'
import { workspaceName } from '../../../run/request.ts'
import { headerGetter } from '../../../telemetry/http.ts'
import type { WebexecRunner } from '../run.ts'
import { WEBEXEC_SOCKET_PATH, WebexecConnection } from './connection.ts'
import { MAX_MESSAGE_BYTES } from './frames.ts'
import { ByteBudget } from './budget.ts'
import { RequestLedger } from './ledger.ts'

export interface SocketRouteOptions {
  runner: WebexecRunner
  /** The server's open sockets: counted against the limits here, closed together on a drain. */
  sockets: OpenSockets
  keys: KeyRing
  quotas: Quotas
  limits: WebexecConfig['socket']
  maxBodyBytes: number
}

export function registerWebexecSocket(
  app: Hono<CallerEnv>,
  { runner, sockets, keys, quotas, limits, maxBodyBytes }: SocketRouteOptions,
): void {
  // One per app, as one per container on Modal: a restart starts a new dedup scope.
  const ledger = new RequestLedger()
  const maxMessageBytes = Math.min(MAX_MESSAGE_BYTES, maxBodyBytes)
  const budget = ByteBudget.forMessagesOf(maxMessageBytes)

  app.get(WEBEXEC_SOCKET_PATH, (c) => {
    try {
      const request = c.req.raw
      const caller = keys.size === 0 ? null : presentedKey(request.headers, keys, true)
      if (keys.size > 0 && !caller)
        throw new Unauthorized(
          'missing or invalid API key (Modal-Key and Modal-Secret, or Authorization: Bearer)',
        )
      const named = workspaceName.safeParse(c.req.query('workspace_id'))
      if (!named.success) throw new BadRequest(`workspace_id: ${named.error.issues[0]!.message}`)
      const workspace = workspaceFor(caller, named.data)
      // Each socket is a file descriptor and a little memory: no key takes them all.
      const holder = caller ? `key ${caller.id}` : `workspace ${workspace}`
      const held = sockets.heldBy(holder)
      if (sockets.size >= limits.maxConnections)
        throw new Overloaded(
          `${sockets.size} websocket connections are open on this server, its limit (BLOCKGATE_WEBEXEC_WS_MAX_CONNECTIONS)`,
          1,
        )
      if (held >= limits.maxConnectionsPerKey)
        throw new Overloaded(
          `${holder}: ${held} websocket connections are open, its limit (BLOCKGATE_WEBEXEC_WS_MAX_CONNECTIONS_PER_KEY)`,
          1,
          429,
        )
      // Checked last: a plain GET learns what a handshake would have been told.
      if (request.headers.get('upgrade')?.toLowerCase() !== 'websocket')
        throw new UpgradeRequired(
          `${WEBEXEC_SOCKET_PATH} is a websocket (Upgrade: websocket); POST /webexec takes HTTP requests`,
        )
      const connection = new WebexecConnection({
        runner,
        ledger,
        budget,
        holder,
        quotas,
        caller,
        workspace,
        idleTimeoutS: limits.idleTimeoutS,
        maxConnectionS: limits.maxConnectionS,
        maxMessageBytes: Math.min(maxMessageBytes, caller?.limits.maxBodyBytes ?? maxBodyBytes),
        parent: propagation.extract(context.active(), request.headers, headerGetter),
        onClosed: () => sockets.remove(connection),
      })
      const server = c.env as Server<SocketSession> | undefined
      if (!server?.upgrade(request, { data: connection }))
        throw new UpgradeRequired('the websocket handshake could not be completed')
      sockets.add(connection, holder)
      return new Response(null) // Bun has answered the upgrade; this is not sent
    } catch (error) {
      if (!(error instanceof BlockgateError)) throw error
      // websocket clients show the status line and headers of a refused handshake, not the body.
      return Response.json(error.toBody(), {
        status: error.status,
        headers: { ...error.headers, 'X-Blockgate-Error': headerText(error.message) },
      })
    }
  })
}

/** A message as a header value: printable ASCII, one line, bounded. */
function headerText(message: string): string {
  return message.replace(/[^\x20-\x7e]/g, '?').slice(0, 300)
}
