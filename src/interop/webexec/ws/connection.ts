// One client connection of Inference's websocket transport, as Roboflow's server serves it
// (docs/webexec-websocket.md §4-§9): frames are handled strictly one after another; between
// requests the connection may stay silent for the advertised idle time, then it is closed with
// `closing` and 1000 (nothing more is read: the client may resend anything it wrote meanwhile
// anywhere); a frame the transport does not allow gets an error message and 1011. A request's
// run is not tied to the socket: if the client goes away, the run ends and its answer is kept
// for the resend (ledger.ts).
import type { ServerWebSocket } from 'bun'
import {
  context,
  SpanKind,
  SpanStatusCode,
  trace,
  type Context,
  type Span,
} from '@opentelemetry/api'
import { z } from 'zod'
import type { Caller } from '../../../auth/caller.ts'
import type { Quotas } from '../../../auth/quotas.ts'
import { OutputsDocument } from '../../../backends/backend.ts'
import type { SocketSession } from '../../../http/websocket.ts'
import { log } from '../../../log.ts'
import { ATTR, SPAN } from '../../../telemetry/names.ts'
import { inSpan, tracer } from '../../../telemetry/spans.ts'
import {
  callFields,
  executionSeconds,
  failureOf,
  serverFailure,
  type Failure,
  type WebexecRunner,
} from '../run.ts'
import {
  AsFloat,
  CHUNK_TIMEOUT_MS,
  encodeMap,
  encodeMessage,
  FrameError,
  framesOf,
  MessageAssembler,
  Packed,
} from './frames.ts'
import type { ByteBudget } from './budget.ts'
import type { RequestLedger } from './ledger.ts'

export const WEBEXEC_SOCKET_PATH = '/webexec/ws'

/** Messages a client may send ahead of the answer it waits for (it sends none: one at a time). */
const MAX_QUEUED = 2
const MAX_REQUEST_ID = 128
/** A session id longer than this is not remembered (the client's are 32 hex digits). */
const MAX_SESSION_ID = 128

const requestSchema = z.object({
  ...callFields,
  inputs: z.record(z.string(), z.unknown()).default({}),
})

export interface ConnectionOptions {
  runner: WebexecRunner
  ledger: RequestLedger
  /** The process's bytes of unanswered messages, and whose this connection's are. */
  budget: ByteBudget
  holder: string
  quotas: Quotas
  caller: Caller
  workspace: string
  idleTimeoutS: number
  maxConnectionS: number
  /** The largest message this caller may send, chunks put together. */
  maxMessageBytes: number
  /** The upgrade request's trace: the connection span continues it. */
  parent: Context
  onClosed: () => void
  /** How long a peer may leave an answer unread before it is dropped; CHUNK_TIMEOUT_MS. */
  stallTimeoutMs?: number
}

interface Answered {
  packed: Uint8Array
  /** False when the block provably did not start: the request id may run later. */
  ran: boolean
}

export class WebexecConnection implements SocketSession {
  private socket: ServerWebSocket<SocketSession> | null = null
  private readonly assembler: MessageAssembler
  private readonly queue: { message: Record<string, unknown>; bytes: number }[] = []
  /** Bytes taken from the budget: the message being put together, and those queued. */
  private heldBytes = 0
  private assemblingBytes = 0
  private handling = false
  /** Decided to close: nothing more is read. */
  private closing = false
  private gone = false
  private v2 = false
  private sessionId = ''
  private readonly openedAt = performance.now()
  private timer: ReturnType<typeof setTimeout> | null = null
  private drainWaiters: (() => void)[] = []
  private span: Span | null = null
  private messages = 0
  /** Asked to close (a drain): done at the next moment no message is being handled. */
  private closeRequested = false

  constructor(private readonly options: ConnectionOptions) {
    this.assembler = new MessageAssembler(options.maxMessageBytes)
  }

  opened(socket: ServerWebSocket<SocketSession>): void {
    this.socket = socket
    const { caller, workspace, parent } = this.options
    this.span = tracer().startSpan(
      SPAN.socketConnection,
      {
        kind: SpanKind.SERVER,
        attributes: {
          [ATTR.workspace]: workspace,
          ...(caller ? { [ATTR.keyId]: caller.id } : {}),
        },
      },
      parent,
    )
    this.waitForFrame()
  }

  received(frame: string | Uint8Array): void {
    if (this.closing) return // after `closing`, nothing is read: the client resends elsewhere
    this.clearTimer()
    if (typeof frame === 'string') {
      this.fail(new FrameError('a text frame: every message of this transport is binary msgpack'))
      return
    }
    const refused = this.options.budget.take(this.options.holder, frame.byteLength)
    if (refused) {
      this.fail(new FrameError(`a message cannot be held: ${refused}`))
      return
    }
    this.heldBytes += frame.byteLength
    this.assemblingBytes += frame.byteLength
    let assembled: ReturnType<MessageAssembler['push']>
    try {
      assembled = this.assembler.push(frame)
    } catch (error) {
      this.fail(error)
      return
    }
    if ('waiting' in assembled) {
      const { expected, received } = this.assembler.progress
      const waitMs = Math.min(CHUNK_TIMEOUT_MS, this.options.idleTimeoutS * 1000)
      this.arm(waitMs, () =>
        this.fail(
          new FrameError(
            `chunk ${received + 1} of ${expected} did not arrive within ${waitMs / 1000} s`,
          ),
        ),
      )
      return
    }
    if (this.queue.length >= MAX_QUEUED) {
      this.fail(
        new FrameError(
          `more than ${MAX_QUEUED} messages sent ahead of their answers: send one request at a time`,
        ),
      )
      return
    }
    this.messages += 1
    this.queue.push({ message: assembled.message, bytes: this.assemblingBytes })
    this.assemblingBytes = 0
    void this.pump()
  }

  closeWhenIdle(): void {
    this.closeRequested = true
    if (this.idle) this.closeGracefully()
  }

  /** Nothing handled, queued or half received: the moment to wait for a frame, or to close. */
  private get idle(): boolean {
    return !this.handling && !this.assembler.waitingForChunks && this.queue.length === 0
  }

  drained(): void {
    const waiters = this.drainWaiters
    this.drainWaiters = []
    for (const resume of waiters) resume()
  }

  closed(code: number, reason: string): void {
    this.closing = true
    this.gone = true
    this.clearTimer()
    this.queue.length = 0
    this.release(this.heldBytes)
    this.drained() // a send waiting for room gives up
    const span = this.span
    if (span) {
      span.setAttributes({ [ATTR.closeCode]: code, [ATTR.messages]: this.messages })
      if (code === 1011) span.setStatus({ code: SpanStatusCode.ERROR, message: reason })
      span.end()
    }
    this.options.onClosed()
  }

  /** Handles queued messages in order, one at a time; then waits for the next frame. */
  private async pump(): Promise<void> {
    if (this.handling) return
    this.handling = true
    try {
      while (this.queue.length > 0 && !this.closing) {
        // The connection's age is checked between messages only: a run in flight finishes.
        if (this.closeRequested || this.pastLifetime()) {
          this.closeGracefully()
          return
        }
        const { message, bytes } = this.queue.shift()!
        try {
          await this.handle(message)
        } finally {
          this.release(bytes)
        }
      }
    } catch (error) {
      this.fail(error)
    } finally {
      this.handling = false
    }
    if (!this.closing && this.idle) this.waitForFrame()
  }

  private async handle(message: Record<string, unknown>): Promise<void> {
    const kind = message._kind
    if (kind === 'hello') {
      this.v2 = true
      const session = message.session_id
      this.sessionId =
        typeof session === 'string' && session.length <= MAX_SESSION_ID ? session : ''
      await this.send(
        encodeMessage({
          _kind: 'hello',
          proto: 2,
          idle_timeout_s: this.options.idleTimeoutS,
          session_known:
            this.sessionId !== '' && this.options.ledger.knowsSession(this.sessionScope()),
          container_id: this.options.ledger.containerId,
        }),
      )
      return
    }
    if (kind === 'heartbeat') {
      await this.send(encodeMessage({ _kind: 'heartbeat_ack' }))
      return
    }
    await this.request(message)
  }

  private async request(message: Record<string, unknown>): Promise<void> {
    const id = message.request_id
    if (
      id !== undefined &&
      (typeof id !== 'string' || id.length < 1 || id.length > MAX_REQUEST_ID)
    ) {
      // Without a usable id the answer cannot name its request: the client drops the socket.
      await this.answer(
        answerOf(
          serverFailure(
            'InvalidRequest',
            `request_id must be text of 1 to ${MAX_REQUEST_ID} characters; the block was not run`,
          ),
        ),
      )
      return
    }
    if (typeof message._kind === 'string') {
      await this.answer(
        answerOf(
          serverFailure(
            'InvalidRequest',
            `unknown _kind ${JSON.stringify(message._kind.slice(0, 40))}: expected hello, heartbeat or a run request`,
          ),
          id,
        ),
      )
      return
    }
    if (id === undefined) {
      await this.answer((await this.run(message, undefined)).packed)
      return
    }
    const { ledger, caller, workspace } = this.options
    // Scoped to the caller: an id another tenant used is never this one's answer.
    const key = `${caller?.id ?? ''}\0${workspace}\0${id}`
    const seen = ledger.seen(key)
    if (seen.state === 'answered') return this.answer(seen.answer, id)
    if (seen.state === 'running') return this.answer(await seen.answer, id)
    if (seen.state === 'gone') {
      return this.answer(
        answerOf(
          serverFailure(
            'ResponseNoLongerAvailable',
            `request ${id} already ran on this server and its answer is no longer kept; it was not run again`,
          ),
          id,
        ),
      )
    }
    const running = this.run(message, id)
    ledger.start(
      key,
      running.then((answered) => answered.packed),
    )
    const answered = await running
    ledger.settle(key, answered.packed, answered.ran)
    await this.answer(answered.packed, id)
  }

  /** Runs one request to its packed answer; never throws (a failure is an answer too). */
  private run(message: Record<string, unknown>, id: string | undefined): Promise<Answered> {
    const { runner, quotas, caller, workspace } = this.options
    const parent = this.span ? trace.setSpan(context.active(), this.span) : context.active()
    return context.with(parent, () =>
      inSpan(SPAN.socketRequest, id ? { [ATTR.requestId]: id } : {}, async (span) => {
        const parsed = requestSchema.safeParse(message)
        if (!parsed.success) {
          const problems = parsed.error.issues.map(
            (issue) => `${issue.path.join('.') || 'request'}: ${issue.message}`,
          )
          return {
            packed: answerOf(serverFailure('InvalidRequest', problems.join('; ')), id),
            ran: false,
          }
        }
        let release = () => {}
        try {
          if (caller) release = await quotas.admit(caller)
        } catch (error) {
          return { packed: answerOf(failureOf(error), id), ran: false }
        }
        const startedAt = performance.now()
        try {
          const execution = await runner.execute(parsed.data, {
            inputs: parsed.data.inputs,
            inputsField: 'inputs',
            workspace,
            caller,
            outputFormat: 'msgpack-webexec',
            route: WEBEXEC_SOCKET_PATH,
          })
          if (!execution.ran) {
            span.setAttribute(ATTR.outcome, execution.failure.error_type)
            return { packed: answerOf(execution.failure, id), ran: false }
          }
          const { outcome, backend, block } = execution
          if (this.sessionId) this.options.ledger.rememberSession(this.sessionScope())
          span.setAttribute(ATTR.outcome, 'ok')
          const packed = encodeMap({
            success: true,
            result: resultOf(outcome.outputs),
            stdout: outcome.stdout || null,
            stderr: outcome.stderr || null,
            execution_time_seconds: new AsFloat(executionSeconds(outcome)),
            request_id: id,
            // Ours; Inference ignores it.
            blockgate: {
              backend: backend.name,
              cold_start: outcome.coldStart,
              block_hash: block.hash,
              timings_ms: { ...outcome.timings, total: performance.now() - startedAt },
            },
          })
          return { packed, ran: true }
        } catch (thrown) {
          const failure = failureOf(thrown)
          span.setAttribute(ATTR.outcome, failure.error_type)
          return { packed: answerOf(failure, id), ran: true }
        } finally {
          release()
        }
      }),
    )
  }

  /** Sends a packed answer, chunked when large; one too large for the transport becomes an error. */
  private async answer(packed: Uint8Array, id?: string): Promise<void> {
    let frames: Uint8Array[]
    try {
      frames = framesOf(packed)
    } catch (error) {
      if (!(error instanceof FrameError)) throw error
      frames = [answerOf(serverFailure('ResponseTooLarge', `the answer is ${error.message}`), id)]
    }
    for (const frame of frames) await this.send(frame)
  }

  /**
   * One frame; waits while the socket has no room, so a large answer is never dropped. A peer
   * that stops reading (30 s) is dropped with 1011: it would hold its socket and turn forever.
   */
  private async send(frame: Uint8Array): Promise<void> {
    if (this.gone || !this.socket) return
    const status = this.socket.send(frame)
    if (status === 0) this.gone = true
    if (status !== -1) return
    let timer: ReturnType<typeof setTimeout> | undefined
    const drained = await Promise.race([
      new Promise<boolean>((resume) => this.drainWaiters.push(() => resume(true))),
      new Promise<boolean>((resume) => {
        timer = setTimeout(() => resume(false), this.options.stallTimeoutMs ?? CHUNK_TIMEOUT_MS)
      }),
    ])
    clearTimeout(timer)
    if (!drained) {
      this.gone = true
      this.closing = true
      this.socket.close(1011, 'the client stopped reading')
    }
  }

  private waitForFrame(): void {
    if (this.closeRequested) {
      this.closeGracefully()
      return
    }
    const leftMs = this.options.maxConnectionS * 1000 - (performance.now() - this.openedAt)
    if (leftMs <= 0) {
      this.closeGracefully()
      return
    }
    this.arm(Math.min(this.options.idleTimeoutS * 1000, leftMs), () => this.closeGracefully())
  }

  private pastLifetime(): boolean {
    return performance.now() - this.openedAt >= this.options.maxConnectionS * 1000
  }

  /** Idle or old: `closing` (to a client that said hello) and 1000; nothing more is read. */
  private closeGracefully(): void {
    if (this.closing) return
    this.closing = true
    this.clearTimer()
    if (this.v2) this.socket?.send(encodeMessage({ _kind: 'closing' }))
    this.socket?.close(1000, 'closing')
  }

  /** A frame the transport does not allow: an error message, then 1011 (as Roboflow's server). */
  private fail(error: unknown): void {
    if (this.closing) return
    this.closing = true
    this.clearTimer()
    if (!(error instanceof FrameError)) log.error('webexec websocket connection failed', { error })
    const text = error instanceof Error ? error.message : String(error)
    this.span?.recordException(error instanceof Error ? error : text)
    this.socket?.send(
      encodeMessage({
        success: false,
        error: `websocket handler failed: ${text}`,
        error_type: error instanceof FrameError ? 'FrameError' : 'InternalError',
        server_error: true,
      }),
    )
    this.socket?.close(1011, error instanceof FrameError ? 'protocol error' : 'server error')
  }

  private release(bytes: number): void {
    const given = Math.min(bytes, this.heldBytes)
    this.heldBytes -= given
    this.options.budget.give(this.options.holder, given)
  }

  private arm(ms: number, then: () => void): void {
    this.clearTimer()
    this.timer = setTimeout(then, ms)
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
  }

  private sessionScope(): string {
    return `${this.options.caller?.id ?? ''}\0${this.options.workspace}\0${this.sessionId}`
  }
}

/** A failure as the message the client reads, naming its request when it had an id. */
function answerOf(failure: Failure, id?: string): Uint8Array {
  return encodeMessage({ ...failure, ...(id === undefined ? {} : { request_id: id }) })
}

/** The runtime's msgpack document as it is (plain values, from a test runtime, are packed here). */
function resultOf(outputs: unknown): unknown {
  if (!(outputs instanceof OutputsDocument)) return outputs
  if (outputs.format !== 'msgpack')
    throw new Error(`the runtime answered a ${outputs.format} document to a msgpack run`)
  return new Packed(
    outputs.pieces.length === 1 ? outputs.pieces[0]! : Buffer.concat(outputs.pieces),
  )
}
