// How many processes the sandbox's user has: leaks show up as a count that does not come back down.
import { SANDBOX_UID } from '../../src/backends/local/sandbox.ts'

export function sandboxProcesses(): number {
  const ps = Bun.spawnSync({ cmd: ['ps', '-u', String(SANDBOX_UID), '-o', 'pid='] })
  return ps.stdout.toString().trim().split('\n').filter(Boolean).length
}

/** The count once it stops changing: processes of pools stopped just before may still be exiting. */
export async function settledProcesses(): Promise<number> {
  let last = sandboxProcesses()
  for (let i = 0; i < 30; i++) {
    await Bun.sleep(100)
    const now = sandboxProcesses()
    if (now === last) return now
    last = now
  }
  return last
}
