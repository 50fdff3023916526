// A sandbox's processes, found by parentage: bubblewrap starts the code in a new session
// inside a PID namespace, so the process group of the bwrap we spawned does not hold them
// all. Pausing stops every one of them; killing kills every one.
import { readdirSync, readFileSync } from 'node:fs'

/** The fields of /proc/<pid>/stat after the command (state first, then the parent); null once it is gone. */
function statFields(pid: number | string): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The command name may hold spaces and parentheses: fields resume after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  } catch {
    return null // the process exited while we looked
  }
}

/** The parent of each live process, read from /proc. */
function parents(): Map<number, number> {
  const parentOf = new Map<number, number>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const fields = statFields(entry)
    if (fields) parentOf.set(Number(entry), Number(fields[1]))
  }
  return parentOf
}

/** `root` and every process below it, parents before children. */
export function processTree(root: number): number[] {
  const childrenOf = new Map<number, number[]>()
  for (const [pid, parent] of parents()) {
    const siblings = childrenOf.get(parent)
    if (siblings) siblings.push(pid)
    else childrenOf.set(parent, [pid])
  }
  const tree: number[] = []
  const queue = [root]
  while (queue.length > 0) {
    const pid = queue.shift()!
    tree.push(pid)
    queue.push(...(childrenOf.get(pid) ?? []))
  }
  return tree
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Whether `pid` is stopped by a signal (or gone): SIGSTOP lands asynchronously. */
export function isStopped(pid: number): boolean {
  const state = statFields(pid)?.[0]
  return state === undefined || ['T', 't', 'Z', 'X'].includes(state)
}

/** Sends `signal` to each pid that is still there. */
export function signalAll(pids: number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal)
    } catch {
      // already gone
    }
  }
}

/** SIGKILLs a sandbox process with its whole process group (it leads a session of its own). */
export function killGroup(proc: {
  pid: number
  kill(signal?: number | NodeJS.Signals): void
}): void {
  try {
    process.kill(-proc.pid, 'SIGKILL')
  } catch {
    proc.kill('SIGKILL')
  }
}
