// A real redis-server for a test, on loopback, keeping nothing on disk. Tests that check how
// blockgate lives through a Redis outage stop, crash, pause and restart it; it comes back on
// the same port, so clients keep their URL.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RedisClient } from 'bun'
import { type Daemon, spawnDaemon, startOnFreePort, stopDaemon, waitUntilReady } from './daemon.ts'

export interface RedisServer {
  /** redis://127.0.0.1:<port>, the same across restarts. */
  url: string
  port: number
  /** The running redis-server's pid (a new one after each restart). */
  pid(): number
  /** The tail of what the running redis-server logged. */
  log(): string
  /** Shuts it down (SIGTERM, SIGKILL after a bound) and removes its directory. */
  stop(): Promise<void>
  /** Crashes it (SIGKILL): no shutdown, its connections just close. */
  kill9(): Promise<void>
  /** Starts it again on the same port, empty (stopping it first if it runs). */
  restart(): Promise<void>
  /** Freezes it (SIGSTOP): connections stay open but nothing answers, as with a hung server. */
  pause(): void
  resume(): void
}

export interface RedisOptions {
  /** More redis-server arguments, e.g. ['--maxmemory', '10mb']. */
  args?: string[]
  readyTimeoutMs?: number
}

export async function startRedis({
  args = [],
  readyTimeoutMs = 10_000,
}: RedisOptions = {}): Promise<RedisServer> {
  let running = await startOnFreePort((port) => launch(port, args, readyTimeoutMs))
  const { port } = running
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    pid: () => running.daemon.proc.pid,
    log: () => running.daemon.output(),
    stop: () => stopDaemon(running.daemon.proc),
    async kill9() {
      running.daemon.proc.kill('SIGKILL')
      await running.daemon.proc.exited
    },
    async restart() {
      await stopDaemon(running.daemon.proc)
      running = await launch(port, args, readyTimeoutMs)
    },
    pause: () => running.daemon.proc.kill('SIGSTOP'),
    resume: () => running.daemon.proc.kill('SIGCONT'),
  }
}

interface Running {
  port: number
  daemon: { proc: Daemon; output: () => string }
}

async function launch(port: number, args: string[], readyTimeoutMs: number): Promise<Running> {
  // Its working directory, removed whenever it exits (stopped, crashed or killed by anyone).
  const dir = mkdtempSync(join(tmpdir(), 'blockgate-redis-'))
  const daemon = spawnDaemon(
    [
      'redis-server',
      ...['--port', String(port), '--bind', '127.0.0.1', '--protected-mode', 'yes'],
      ...['--save', '', '--appendonly', 'no', '--dir', dir],
      ...args,
    ],
    dir,
  )
  void daemon.proc.exited.then(() => rmSync(dir, { recursive: true, force: true }))
  await waitUntilReady('redis-server', daemon, () => answersPing(port), readyTimeoutMs)
  return { port, daemon }
}

async function answersPing(port: number): Promise<boolean> {
  const client = new RedisClient(`redis://127.0.0.1:${port}`, {
    autoReconnect: false,
    enableOfflineQueue: false,
    connectionTimeout: 1000,
  })
  try {
    await client.connect()
    return (await client.ping()) === 'PONG'
  } catch {
    return false
  } finally {
    client.close()
  }
}
