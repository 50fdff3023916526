// One stand-in sandbox: what E2B's API says about it, its private directories on the host,
// and the processes its template runs. Pausing freezes every process (SIGSTOP); killing
// ends them all and removes the directories.
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SANDBOX_UID } from '../../../src/backends/local/bubblewrap.ts'
import type { Isolation, SandboxDirs } from './isolation.ts'
import { Kernel } from './kernel.ts'
import { isAlive, isStopped, processTree, signalAll } from './process-tree.ts'
import { RuntimeServer } from './runtime-server.ts'
import type { TemplateKind } from './templates.ts'

/** How long the bwrap launchers get to exit on their own once everything inside is killed. */
const LAUNCHER_EXIT_WAIT_MS = 1000

export type SandboxState = 'running' | 'paused'

/** What a create request asked for, as the stand-in keeps it. */
export interface SandboxSpec {
  templateId: string
  kind: TemplateKind
  metadata: Record<string, string>
  envVars: Record<string, string>
  timeoutSeconds: number
  /** The plan's cap on its life, counted from `lifeStartedAt` (fixed at create, as on E2B). */
  maxLifetimeSeconds: number
  autoPause: boolean
  allowInternetAccess: boolean | null
  network: Record<string, unknown> | null
  envdAccessToken: string | null
  trafficAccessToken: string | null
}

export class StandinSandbox {
  state: SandboxState = 'running'
  readonly startedAt = new Date()
  /** Where its plan's lifetime counts from: its start, or its last resume (a new instance on E2B). */
  lifeStartedAt = this.startedAt
  endAt: Date
  private kernel: Kernel | null = null
  private runtime: RuntimeServer | null = null
  private killed = false

  private constructor(
    readonly id: string,
    readonly spec: SandboxSpec,
    readonly dirs: SandboxDirs & { root: string },
    private readonly isolation: Isolation,
  ) {
    this.endAt = new Date(this.startedAt.getTime() + spec.timeoutSeconds * 1000)
  }

  /** Boots the sandbox: returns once its template's servers answer, as a snapshot would. */
  static async boot(
    id: string,
    spec: SandboxSpec,
    isolation: Isolation,
    startTimeoutMs: number,
  ): Promise<StandinSandbox> {
    const sandbox = new StandinSandbox(id, spec, makeDirs(isolation), isolation)
    try {
      if (spec.kind.kernelAtStart)
        sandbox.kernel = Kernel.start(
          isolation,
          sandbox.dirs,
          spec.envVars,
          spec.kind.kernelEnvironment,
        )
      if (spec.kind.runtimeServer)
        sandbox.runtime = await RuntimeServer.start(isolation, sandbox.dirs, startTimeoutMs)
      if (sandbox.kernel) await sandbox.kernel.ready
      return sandbox
    } catch (error) {
      await sandbox.kill()
      throw error
    }
  }

  /** The kernel behind port 49999, started on first use for templates that do not start it. */
  codeKernel(): Kernel {
    if (!this.kernel?.alive)
      this.kernel = Kernel.start(
        this.isolation,
        this.dirs,
        this.spec.envVars,
        this.spec.kind.kernelEnvironment,
      )
    return this.kernel
  }

  /** The host path of the runtime server's socket, or null if this sandbox has none. */
  get runtimeSocket(): string | null {
    return this.runtime?.socketPath ?? null
  }

  /** Who must own the files the stand-in writes into the home, for the code inside to change them. */
  get fileOwner(): number | null {
    return this.isolation.sandboxed && process.getuid?.() === 0 ? SANDBOX_UID : null
  }

  /** Every live process of the sandbox, its bubblewrap launchers included. */
  pids(): number[] {
    return this.launchers()
      .flatMap((pid) => processTree(pid))
      .filter(isAlive)
  }

  /** Freezes every process; resolves once each is stopped, as E2B answers once paused. */
  async pause(): Promise<void> {
    // Top-down, so no parent starts a child that escapes the freeze.
    const pids = this.pids()
    signalAll(pids, 'SIGSTOP')
    this.state = 'paused'
    // A stop lands asynchronously (later still on a busy machine): wait for it, within a bound.
    for (let waited = 0; waited < 2000 && !pids.every(isStopped); waited += 5) await Bun.sleep(5)
  }

  resume(): void {
    signalAll(this.pids(), 'SIGCONT')
    this.state = 'running'
    this.lifeStartedAt = new Date()
  }

  async kill(): Promise<void> {
    if (this.killed) return
    this.killed = true
    // Inside first, the bwrap we spawned last: it then sees its child die and exits, reaped
    // by us. Killed first, it would orphan its child, which lingers as a zombie on hosts
    // whose init does not reap.
    if (this.kernel) this.kernel.sandboxGone = true
    const launchers = this.launchers()
    const inside = this.pids().filter((pid) => !launchers.includes(pid))
    signalAll(inside, 'SIGKILL') // the code inside runs in sessions of its own
    signalAll([...launchers, ...inside], 'SIGCONT') // a paused launcher must run to exit
    const stopped = Promise.all([this.kernel?.stopped(), this.runtime?.stopped()])
    if (
      (await Promise.race([
        stopped.then(() => true),
        Bun.sleep(LAUNCHER_EXIT_WAIT_MS).then(() => false),
      ])) === false
    ) {
      for (const child of [this.kernel, this.runtime]) child?.kill()
      await stopped
    }
    rmSync(this.dirs.root, { recursive: true, force: true })
  }

  private launchers(): number[] {
    return [this.kernel?.pid, this.runtime?.pid].filter((pid): pid is number => pid !== undefined)
  }
}

/** A private root with the sandbox's home and its socket directory, both writable by the sandbox's user. */
function makeDirs(isolation: Isolation): SandboxDirs & { root: string } {
  const root = mkdtempSync(join(tmpdir(), 'e2b-standin-'))
  chmodSync(root, 0o755)
  const dirs = { root, homeDir: join(root, 'home'), socketDir: join(root, 'run') }
  for (const dir of [dirs.homeDir, dirs.socketDir]) {
    mkdirSync(dir, { mode: 0o755 })
    // As root, bubblewrap runs the code as nobody: that user must own what it writes to.
    if (isolation.sandboxed && process.getuid?.() === 0) chownSync(dir, SANDBOX_UID, SANDBOX_UID)
  }
  return dirs
}
