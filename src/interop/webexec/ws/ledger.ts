// What this process remembers between a client's websocket connections, so the client's
// retries are safe (docs/webexec-websocket.md §8, §10). The client resends a request it may
// have delivered, with the same request id, only to the same `container_id` (this ledger's
// id): a request id that started here never runs twice. Its answer is sent again from here
// while it is kept; one still running is awaited; one whose answer is gone gets
// ResponseNoLongerAvailable. Per process: another instance has another container id, and the
// client does not resend there.
import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'

/** A request id is remembered this long after it started. */
const REQUEST_TTL_MS = 3600_000
const MAX_REQUESTS = 32_768
/** Answers kept for resends: at most this many, this many bytes in all, this long. */
const MAX_ANSWERS = 128
const MAX_ANSWER_BYTES = 64 * 1024 * 1024
const ANSWER_TTL_MS = 900_000
/** A session that had a success is known for this long after its last one. */
const SESSION_TTL_MS = 7200_000
const MAX_SESSIONS = 4096

interface Entry {
  startedAt: number
  /** Set while the request runs: a resend waits for it. */
  running?: Promise<Uint8Array>
  /** The packed answer, while it is kept. */
  answer?: Uint8Array
  answeredAt?: number
}

/** What a request id finds here. */
export type Seen =
  | { state: 'new' }
  | { state: 'running'; answer: Promise<Uint8Array> }
  | { state: 'answered'; answer: Uint8Array }
  | { state: 'gone' }

export class RequestLedger {
  /** Advertised in the handshake: the scope within which a request id runs once. */
  readonly containerId = `bg-${hostname()}-${randomUUID().replaceAll('-', '')}`
  private readonly requests = new Map<string, Entry>()
  private answerBytes = 0
  private answers = 0
  private readonly sessions = new Map<string, number>()

  constructor(private readonly now: () => number = Date.now) {}

  seen(key: string): Seen {
    this.expire()
    const entry = this.requests.get(key)
    if (!entry) return { state: 'new' }
    if (entry.running) return { state: 'running', answer: entry.running }
    if (entry.answer) return { state: 'answered', answer: entry.answer }
    return { state: 'gone' }
  }

  /** Records that `key` starts now, running `answer`; settle() says how it ended. */
  start(key: string, answer: Promise<Uint8Array>): void {
    this.requests.set(key, { startedAt: this.now(), running: answer })
    // The oldest finished ids go first; a running one is never forgotten.
    for (const [old, entry] of this.requests) {
      if (this.requests.size <= MAX_REQUESTS) break
      if (!entry.running) this.forget(old, entry)
    }
  }

  /**
   * The request ended: `ran` false when it provably did not start (the id may then be sent
   * again and run), else its packed answer is kept for a resend while there is room.
   */
  settle(key: string, answer: Uint8Array | null, ran: boolean): void {
    const entry = this.requests.get(key)
    if (!entry) return
    entry.running = undefined
    if (!ran) {
      this.forget(key, entry)
      return
    }
    if (!answer || answer.byteLength > MAX_ANSWER_BYTES / 2) return
    entry.answer = answer
    entry.answeredAt = this.now()
    this.answerBytes += answer.byteLength
    this.answers += 1
    for (const [old, other] of this.requests) {
      if (this.answers <= MAX_ANSWERS && this.answerBytes <= MAX_ANSWER_BYTES) break
      if (other.answer && old !== key) this.dropAnswer(other)
    }
  }

  /** Whether this process had a success for the client's session (the handshake says so). */
  knowsSession(scope: string): boolean {
    const until = this.sessions.get(scope)
    return until !== undefined && until > this.now()
  }

  rememberSession(scope: string): void {
    this.sessions.delete(scope)
    this.sessions.set(scope, this.now() + SESSION_TTL_MS)
    for (const old of this.sessions.keys()) {
      if (this.sessions.size <= MAX_SESSIONS) break
      this.sessions.delete(old)
    }
  }

  private expire(): void {
    const now = this.now()
    // Insertion order is age order: stop at the first entry still young enough.
    for (const [key, entry] of this.requests) {
      if (entry.answer && now - entry.answeredAt! > ANSWER_TTL_MS) this.dropAnswer(entry)
      if (now - entry.startedAt <= REQUEST_TTL_MS) break
      if (!entry.running) this.forget(key, entry)
    }
  }

  private forget(key: string, entry: Entry): void {
    this.dropAnswer(entry)
    this.requests.delete(key)
  }

  private dropAnswer(entry: Entry): void {
    if (!entry.answer) return
    this.answerBytes -= entry.answer.byteLength
    this.answers -= 1
    entry.answer = undefined
  }
}
