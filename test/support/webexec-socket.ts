// A client of blockgate's websocket transport (GET /webexec/ws) as Inference's speaks it:
// binary msgpack frames, chunked past 1 MiB, one request at a time; plus the raw sends a
// hostile peer makes. Messages are read with the server's own reader, so a whole float
// comes back as a Float64.
import type { Hono } from 'hono'
import { websocketHandler } from '../../src/http/websocket.ts'
import { encodeMessage, framesOf, MessageAssembler } from '../../src/interop/webexec/ws/frames.ts'
import { md5 } from './webexec.ts'

export interface Closed {
  code: number
  reason: string
}

export class SocketClient {
  private readonly assembler = new MessageAssembler()
  private readonly messages: Record<string, unknown>[] = []
  private waiting: ((message: Record<string, unknown> | null) => void) | null = null
  /** Every frame received, as it came (a chunked answer is several). */
  readonly frames: Uint8Array[] = []
  readonly closed: Promise<Closed>

  private constructor(private readonly socket: WebSocket) {
    socket.binaryType = 'arraybuffer'
    socket.onmessage = (event) => {
      const frame =
        typeof event.data === 'string'
          ? new TextEncoder().encode(event.data)
          : new Uint8Array(event.data as ArrayBuffer)
      this.frames.push(frame)
      const assembled = this.assembler.push(frame)
      if ('message' in assembled) this.deliver(assembled.message)
    }
    this.closed = new Promise((resolve) => {
      socket.onclose = (event) => {
        resolve({ code: event.code, reason: event.reason })
        this.waiting?.(null)
        this.waiting = null
      }
    })
  }

  /** Connects, or rejects with the refused handshake's status. */
  static async open(url: string, headers: Record<string, string> = {}): Promise<SocketClient> {
    const socket = new WebSocket(url, { headers } as unknown as string[])
    const client = new SocketClient(socket)
    await new Promise<void>((resolve, reject) => {
      socket.onopen = () => resolve()
      socket.onerror = () => reject(new Error(`websocket to ${url} failed`))
    })
    return client
  }

  /** A message, chunked as the client chunks it. */
  send(message: Record<string, unknown> | Uint8Array): void {
    const packed = message instanceof Uint8Array ? message : encodeMessage(message)
    for (const frame of framesOf(packed)) this.socket.send(frame)
  }

  /** One frame exactly as given (a text frame when a string). */
  sendRaw(frame: Uint8Array | string): void {
    this.socket.send(frame)
  }

  /** The next whole message, or null once the socket closed; rejects after `timeoutMs`. */
  next(timeoutMs = 20_000): Promise<Record<string, unknown> | null> {
    const queued = this.messages.shift()
    if (queued) return Promise.resolve(queued)
    if (this.socket.readyState >= WebSocket.CLOSING) return Promise.resolve(null)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = null
        reject(new Error(`no message within ${timeoutMs} ms`))
      }, timeoutMs)
      this.waiting = (message) => {
        clearTimeout(timer)
        resolve(message)
      }
    })
  }

  /** Sends a request and reads its answer. */
  async request(message: Record<string, unknown>): Promise<Record<string, unknown>> {
    this.send(message)
    const answer = await this.next()
    if (!answer) throw new Error('the socket closed before the answer')
    return answer
  }

  close(code = 1000): void {
    this.socket.close(code)
  }

  private deliver(message: Record<string, unknown>): void {
    if (this.waiting) {
      const resolve = this.waiting
      this.waiting = null
      resolve(message)
    } else this.messages.push(message)
  }
}

/** `app` on a real Bun server on loopback, with its websocket routes (as src/server.ts serves it). */
export function serveApp(app: () => Hono<any>) {
  return Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    fetch: (request, server) => app().fetch(request, server),
    websocket: websocketHandler,
  })
}

/** A request frame as Inference's client builds it (full code unless `hashOnly`). */
export function runFrame(
  code: string,
  inputs: Record<string, unknown> = {},
  { hashOnly = false, requestId = crypto.randomUUID().replaceAll('-', ''), step = 'step' } = {},
): Record<string, unknown> {
  return {
    code_hash: md5(code),
    run_function_name: 'run',
    inputs,
    workflow_context: { step_name: step, step_selector: `$steps.${step}`, block_type: 'Test' },
    request_id: requestId,
    ...(hashOnly ? {} : { code_str: code, imports: [] }),
  }
}
