// Runs waiting for a worker or sandbox, shared by both pools: bounded (full → 429),
// each wait bounded in time (→ 503), left when the client goes away, and served in order
// except that a freed runtime goes to a waiter of its own workspace, one whose block it
// holds first.
import { Overloaded } from '../errors.ts'
import { timed } from './local/timed.ts'

export interface Waiter<T> {
  workspace: string
  hash: string
  resolve: (runtime: T) => void
  reject: (error: Error) => void
}

export class RunQueue<T> {
  private readonly waiters: Waiter<T>[] = []

  constructor(
    private readonly maxQueue: number,
    private readonly timeoutMs: number,
    /** What is busy, for the messages: "all 8 workers", "all 20 E2B sandboxes". */
    private readonly busy: () => string,
  ) {}

  get length(): number {
    return this.waiters.length
  }

  /** Waits for a runtime of `workspace`; rejects with Overloaded when full, late or abandoned. */
  wait(workspace: string, hash: string, signal: AbortSignal | undefined): Promise<T> {
    if (this.waiters.length >= this.maxQueue) {
      return Promise.reject(new Overloaded(`${this.busy()} are busy and ${this.maxQueue} runs are waiting`, 1, 429))
    }
    const leave = () => {
      const at = this.waiters.indexOf(waiter)
      if (at >= 0) this.waiters.splice(at, 1)
    }
    const place = timed<T>(this.timeoutMs, () => {
      leave()
      return new Overloaded(`none of ${this.busy()} became free within ${this.timeoutMs} ms`, 1)
    })
    const waiter: Waiter<T> = { workspace, hash, resolve: place.resolve, reject: place.reject }
    const onAbort = () => {
      leave()
      place.reject(new Overloaded('the client went away while the run waited', 1))
    }
    signal?.addEventListener('abort', onAbort)
    const stopListening = () => signal?.removeEventListener('abort', onAbort)
    place.promise.then(stopListening, stopListening)
    this.waiters.push(waiter)
    return place.promise
  }

  /** The waiter a freed runtime of `workspace` should serve, taken off the queue. */
  takeFor(workspace: string | null, holds: (hash: string) => boolean): Waiter<T> | undefined {
    const sameWorkspace = this.waiters.filter((w) => w.workspace === workspace)
    const waiter = sameWorkspace.find((w) => holds(w.hash)) ?? sameWorkspace[0]
    if (waiter) this.waiters.splice(this.waiters.indexOf(waiter), 1)
    return waiter
  }

  /** The longest-waiting run, taken off the queue. */
  shift(): Waiter<T> | undefined {
    return this.waiters.shift()
  }

  rejectAll(error: Error): void {
    for (const waiter of this.waiters.splice(0)) waiter.reject(error)
  }
}
