// The files a local pool keeps while it runs (the worker socket's directory under the temp
// directory, the shared-memory regions' directory in /dev/shm) are named after the server's
// pid, so that a start can remove what an instance killed with SIGKILL left behind, and
// nothing of an instance still running.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const PREFIX = 'blockgate-'
const OWNED = /^blockgate-(\d+)-/

/** A new private directory in `parent`, named after this process. */
export function ownDirectory(parent: string): string {
  return mkdtempSync(join(parent, `${PREFIX}${process.pid}-`))
}

/** Removes the directories that instances no longer running left where a pool keeps them; returns them. */
export function removeLeftovers(parents = [tmpdir(), '/dev/shm']): string[] {
  const removed: string[] = []
  for (const parent of parents) {
    let names: string[]
    try {
      names = readdirSync(parent)
    } catch {
      continue // no such parent here
    }
    for (const name of names) {
      const pid = Number(OWNED.exec(name)?.[1])
      if (!pid || pid === process.pid || isRunning(pid)) continue
      rmSync(join(parent, name), { recursive: true, force: true })
      removed.push(join(parent, name))
    }
  }
  return removed
}

/** Whether a process with this pid runs (another user's included). */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM' // alive, another user's
  }
}
