// Bun's native WebSocket server, for the routes that upgrade (GET /webexec/ws). A route
// authenticates in Hono as any other, then upgrades with a SocketSession as the socket's
// data; the one handler below hands each event to it. (hono/bun's own helper has no `drain`
// event, which a large answer needs to wait for the socket instead of being dropped.)
import type { ServerWebSocket, WebSocketHandler } from 'bun'

export interface SocketSession {
  opened(socket: ServerWebSocket<SocketSession>): void
  received(frame: string | Uint8Array): void
  /** The socket can take more after a send reported backpressure. */
  drained(): void
  closed(code: number, reason: string): void
  /** Close as soon as nothing is in flight (a drain, a restart): no request is cut. */
  closeWhenIdle(): void
}

/**
 * The sockets a server holds, counted by who holds them (an API key, a workspace), so a
 * route can refuse a new one past its limits, and a drain can close them all.
 */
export class OpenSockets {
  private readonly sessions = new Map<SocketSession, string>()
  private readonly byHolder = new Map<string, number>()
  private readonly emptied: (() => void)[] = []

  get size(): number {
    return this.sessions.size
  }

  heldBy(holder: string): number {
    return this.byHolder.get(holder) ?? 0
  }

  add(session: SocketSession, holder: string): void {
    this.sessions.set(session, holder)
    this.byHolder.set(holder, this.heldBy(holder) + 1)
  }

  remove(session: SocketSession): void {
    const holder = this.sessions.get(session)
    if (holder === undefined) return
    this.sessions.delete(session)
    const left = this.heldBy(holder) - 1
    if (left > 0) this.byHolder.set(holder, left)
    else this.byHolder.delete(holder)
    if (this.sessions.size === 0) for (const resume of this.emptied.splice(0)) resume()
  }

  /** Every socket closes once nothing is in flight on it; resolves when all are closed, or after `timeoutMs`. */
  async closeAll(timeoutMs: number): Promise<void> {
    for (const session of this.sessions.keys()) session.closeWhenIdle()
    if (this.sessions.size === 0) return
    let timer: ReturnType<typeof setTimeout> | undefined
    await Promise.race([
      new Promise<void>((resume) => this.emptied.push(resume)),
      new Promise<void>((resume) => {
        timer = setTimeout(resume, timeoutMs)
      }),
    ])
    clearTimeout(timer)
  }
}

/** The largest frame Bun reads; a larger one closes the socket (1009). Sessions check their own limits below it. */
const MAX_PAYLOAD_BYTES = 2 * 1024 * 1024

export const websocketHandler: WebSocketHandler<SocketSession> = {
  open: (socket) => socket.data.opened(socket),
  message: (socket, frame) => socket.data.received(frame),
  drain: (socket) => socket.data.drained(),
  close: (socket, code, reason) => socket.data.closed(code, reason),
  maxPayloadLength: MAX_PAYLOAD_BYTES,
  // Sessions time their own silence (the protocol's idle timeout runs only between
  // requests, and a run may be long): Bun's own idle close and pings are off.
  idleTimeout: 0,
  sendPings: false,
  perMessageDeflate: false,
}
