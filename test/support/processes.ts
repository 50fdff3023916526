// How many processes this test process has under it (the pools it started: bubblewrap, the
// zygote, holders, workers, and whatever their blocks started), never every process of a uid
// on the machine: another test run or a bench may have workers of its own.
import { descendants } from './server-process.ts'

export function sandboxProcesses(): number {
  return descendants(process.pid).length
}

/**
 * The count once it stops changing, or once it is at most `atMost` when given (a pool
 * stopped just before, or a killed worker's processes, may still be exiting: the kernel ends
 * 30 of them in about half a second here). Gives up waiting after `withinMs`.
 */
export async function settledProcesses(atMost?: number, withinMs = 5000): Promise<number> {
  let last = sandboxProcesses()
  const deadline = performance.now() + withinMs
  while (performance.now() < deadline) {
    if (atMost !== undefined && last <= atMost) return last
    await Bun.sleep(100)
    const now = sandboxProcesses()
    if (atMost === undefined && now === last) return now
    last = now
  }
  return last
}
