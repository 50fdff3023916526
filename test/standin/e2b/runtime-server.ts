// blockgate's runtime server in a sandbox made from a blockgate runtime template: what the
// template's snapshot holds, a server already answering on its port when the sandbox boots.
// It listens on a Unix socket in the sandbox's private directory, which the stand-in
// reaches from the host to serve the sandbox's port 8000.
import type { Subprocess } from 'bun'
import { join } from 'node:path'
import { launch, type Isolation, type SandboxDirs } from './isolation.ts'
import { killGroup } from './process-tree.ts'
import { StderrTail } from '../../../src/backends/local/stderr-tail.ts'

const SOCKET_NAME = 'runtime.sock'
const HEALTH_POLL_MS = 25

export class RuntimeServer {
  private readonly stderr: StderrTail

  private constructor(
    private readonly proc: Subprocess<'ignore', 'ignore', 'pipe'>,
    /** The server's socket as the host sees it. */
    readonly socketPath: string,
  ) {
    this.stderr = new StderrTail(proc.stderr)
  }

  /** Starts the server and resolves once GET /health answers; kills it and throws if it does not. */
  static async start(
    isolation: Isolation,
    dirs: SandboxDirs,
    timeoutMs: number,
  ): Promise<RuntimeServer> {
    const proc = launch(isolation, dirs, {
      command: (at) => [
        at.python,
        '-m',
        'runtime.server',
        '--unix-socket',
        join(at.socketDir, SOCKET_NAME),
      ],
      stdin: 'ignore',
      stdout: 'ignore',
    }) as Subprocess<'ignore', 'ignore', 'pipe'>
    const server = new RuntimeServer(proc, join(dirs.socketDir, SOCKET_NAME))
    try {
      await server.waitHealthy(timeoutMs)
      return server
    } catch (error) {
      server.kill()
      await proc.exited
      throw error
    }
  }

  get pid(): number {
    return this.proc.pid
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null
  }

  kill(): void {
    killGroup(this.proc)
  }

  async stopped(): Promise<void> {
    await this.proc.exited
  }

  private async waitHealthy(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs
    while (performance.now() < deadline) {
      if (!this.alive)
        throw new Error(
          `the runtime server exited before it was healthy: ${this.stderr.text() || `code ${this.proc.exitCode}`}`,
        )
      try {
        const response = await fetch('http://sandbox/health', {
          unix: this.socketPath,
          signal: AbortSignal.timeout(1000),
        })
        await response.body?.cancel()
        if (response.ok) return
      } catch {
        // not listening yet
      }
      await Bun.sleep(HEALTH_POLL_MS)
    }
    throw new Error(
      `the runtime server did not answer GET /health within ${timeoutMs} ms: ${this.stderr.text()}`,
    )
  }
}
