// Third-party daemons (redis-server, haproxy) that tests run on loopback: started on a port
// the OS says is free, tied to this test process, stopped by their own pid only.
import type { Subprocess } from 'bun'

export type Daemon = Subprocess<'ignore', 'pipe', 'pipe'>

/**
 * Starts `cmd` so that it dies with this process even if the test runner is killed before
 * its cleanup runs (setpriv asks the kernel for SIGKILL when the parent dies, then execs, so
 * the pid stays the daemon's). Returns the daemon and a function giving the tail of its output.
 */
export function spawnDaemon(cmd: string[], cwd?: string): { proc: Daemon; output: () => string } {
  const proc = Bun.spawn({
    cmd: ['setpriv', '--pdeathsig', 'KILL', ...cmd],
    cwd,
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  })
  let output = ''
  const keepTail = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder()
    for await (const chunk of stream) {
      output = (output + decoder.decode(chunk, { stream: true })).slice(-20_000)
    }
  }
  void keepTail(proc.stdout)
  void keepTail(proc.stderr)
  return { proc, output: () => output }
}

export const hasExited = (proc: Daemon): boolean =>
  proc.exitCode !== null || proc.signalCode !== null

/** SIGTERM, then SIGKILL if it is still there after `graceMs`. */
export async function stopDaemon(proc: Daemon, graceMs = 5000): Promise<void> {
  if (hasExited(proc)) return
  proc.kill('SIGTERM')
  proc.kill('SIGCONT') // a paused (SIGSTOPped) daemon handles SIGTERM only once it runs again
  const exited = await Promise.race([
    proc.exited.then(() => true),
    Bun.sleep(graceMs).then(() => false),
  ])
  if (!exited) proc.kill('SIGKILL')
  await proc.exited
}

/** A loopback port nothing listens on right now (the OS picks it; someone may take it before us). */
export function freeLoopbackPort(): number {
  const listener = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
  const { port } = listener
  listener.stop(true)
  return port
}

/** Calls `start` on free ports until one is not taken meanwhile by someone else. */
export async function startOnFreePort<T>(start: (port: number) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start(freeLoopbackPort())
    } catch (error) {
      if (attempt === 5 || !/address already in use/i.test(String(error))) throw error
    }
  }
}

/** Polls `ready` until it says yes; fails early with the daemon's output if it exits. */
export async function waitUntilReady(
  name: string,
  daemon: { proc: Daemon; output: () => string },
  ready: () => Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (performance.now() < deadline) {
    if (hasExited(daemon.proc)) {
      await daemon.proc.exited
      await Bun.sleep(50) // let the last of its output arrive
      throw new Error(`${name} exited at start: ${daemon.output().slice(-2000)}`)
    }
    if (await ready()) return
    await Bun.sleep(50)
  }
  await stopDaemon(daemon.proc)
  throw new Error(`${name} was not ready within ${timeoutMs} ms: ${daemon.output().slice(-2000)}`)
}
