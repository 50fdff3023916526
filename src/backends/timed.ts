// A promise settled from outside, with a deadline: the shape of every wait in the local
// backend (a worker's reply, a fork's connection, a run's place in the queue).

export interface Timed<T> {
  promise: Promise<T>
  /** Settle it; the deadline is cancelled. Later calls do nothing. */
  resolve: (value: T) => void
  reject: (error: Error) => void
}

/** Rejects with `onTimeout()` after `timeoutMs` unless settled first. */
export function timed<T>(timeoutMs: number, onTimeout: () => Error): Timed<T> {
  let resolve!: (value: T) => void
  let reject!: (error: Error) => void
  const promise = new Promise<T>((ok, fail) => {
    resolve = ok
    reject = fail
  })
  const timer = setTimeout(() => reject(onTimeout()), timeoutMs)
  return {
    promise,
    resolve: (value) => {
      clearTimeout(timer)
      resolve(value)
    },
    reject: (error) => {
      clearTimeout(timer)
      reject(error)
    },
  }
}
