// The zygote: one sandboxed Python with the CV stack imported, which forks a ready worker
// in milliseconds. The server talks to it over its stdin/stdout (spawn, kill; exit events)
// and to each worker it forks over a Unix socket the worker connects to, proving which
// spawn it is with a one-time token.
import type { Subprocess } from 'bun'
import { randomBytes, timingSafeEqual } from 'node:crypto'
import { chmodSync, existsSync, readFileSync, rmSync } from 'node:fs'
import { createServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { encodeFrame, FrameReader } from '../framing.ts'
import {
  checkFrame,
  workerHello,
  zygoteEvent,
  type ZygoteEvent,
  type ZygoteRequest,
} from '../runtime-protocol.ts'
import { ZYGOTE_CONTROL_FRAME_BYTES } from '../../runtime-template.ts'
import type { WorkerCgroups } from './cgroups.ts'
import { ownDirectory } from './leftovers.ts'
import { FileRegion } from './region.ts'
import { timed } from '../timed.ts'
import { log } from '../../log.ts'
import {
  bubblewrapCommand,
  SANDBOX_PATHS,
  SANDBOX_REGION_DIR,
  SANDBOX_SOCKET_DIR,
} from './bubblewrap.ts'
import { StderrTail } from './stderr-tail.ts'
import {
  newWorkerId,
  Worker,
  workerEnvironment,
  type ExitInfo,
  type ProcessWorkerOptions,
  type WorkerChannel,
} from './worker.ts'

export interface WorkerLimits {
  memoryBytes: number
  cpuSeconds: number
  processes: number
  fileSizeBytes: number
  openFiles: number
  /** CPU time per wall-clock second for a worker and its processes (its cgroup's quota). */
  cpuCores: number
}

export interface ZygoteOptions extends ProcessWorkerOptions {
  limits: WorkerLimits
  cgroups: 'auto' | 'required' | 'off'
  /** bubblewrap around the zygote and namespaces per worker, or nothing (an explicit opt-out). */
  isolation: 'sandboxed' | 'off'
}

interface PendingSpawn {
  token: string
  resolve: (connection: Connection) => void
  reject: (error: Error) => void
}

/** A worker's socket once it proved its token, and its pid as the server sees it. */
interface Connection {
  socket: Socket
  hostPid: number | null
}

/** Each worker's shared-memory region: enough for a 4K frame's round trip. */
const REGION_BYTES = 64 * 1024 * 1024
/** How long a closed socket waits for the zygote to say how its worker ended. */
const EXIT_REPORT_GRACE_MS = 250
/**
 * A connection must prove a pending spawn's token this soon, and only so many may be
 * waiting to: a worker says hello milliseconds after its fork, while anything else that
 * connects only holds one of the server's file descriptors.
 */
const HELLO_DEADLINE_MS = 5000
const UNPROVEN_CONNECTIONS_OVER_PENDING = 16

export class Zygote {
  private readonly pending = new Map<string, PendingSpawn>()
  private readonly exitReports = new Map<
    string,
    (exit: { code: number | null; signal: number | null }) => void
  >()
  /** Each spawn's holder being moved into the worker's cgroup (started when the zygote says it forked). */
  private readonly holdersPlaced = new Map<string, Promise<void>>()
  private readonly control: FrameReader
  private readonly stderr: StderrTail
  private unproven = 0
  private readyWaiter: (() => void) | null = null
  readonly exited: Promise<void>

  private constructor(
    private readonly options: ZygoteOptions,
    private readonly proc: Subprocess<'pipe', 'pipe', 'pipe'>,
    private readonly server: Server,
    private readonly socketDir: string,
    private readonly regionDir: string | null,
    private readonly cgroups: WorkerCgroups | null,
  ) {
    this.control = new FrameReader(ZYGOTE_CONTROL_FRAME_BYTES)
    this.stderr = new StderrTail(proc.stderr)
    this.exited = proc.exited.then(() => {
      for (const spawn of this.pending.values())
        spawn.reject(new Error(`the zygote exited: ${this.lastStderrLine()}`))
      this.pending.clear()
    })
    void this.pumpControl()
  }

  static async start(
    options: ZygoteOptions,
    cgroups: WorkerCgroups | null = null,
  ): Promise<Zygote> {
    const socketDir = ownDirectory(tmpdir())
    chmodSync(socketDir, 0o755) // the sandbox's unprivileged uid must reach the socket
    const socketPath = join(socketDir, 'workers.sock')
    // Shared memory for large buffers: 0711, so a worker opens its own region by its
    // random name but can neither list the others nor create files.
    const regionDir = existsSync('/dev/shm') ? ownDirectory('/dev/shm') : null
    if (regionDir) chmodSync(regionDir, 0o711)
    const server = createServer()
    await new Promise<void>((resolve, reject) =>
      server.once('error', reject).listen(socketPath, resolve),
    )
    chmodSync(socketPath, 0o777) // anyone may connect; only a spawn's token is accepted
    const sandboxed = options.isolation === 'sandboxed'
    // Inside the sandbox the venv and the runtime sit at fixed paths (SANDBOX_PATHS).
    const python = sandboxed
      ? join(SANDBOX_PATHS.venv, 'bin', basename(options.python))
      : options.python
    const env = workerEnvironment(sandboxed ? SANDBOX_PATHS.runtimeDir : options.runtimeDir)
    const zygoteCommand = [
      python,
      '-m',
      'runtime.zygote',
      '--socket',
      sandboxed ? join(SANDBOX_SOCKET_DIR, 'workers.sock') : socketPath,
      ...(regionDir ? ['--region-dir', sandboxed ? SANDBOX_REGION_DIR : regionDir] : []),
      '--block-cache-size',
      String(options.blockCacheSize),
      '--max-capture-bytes',
      String(options.maxCaptureBytes),
      '--max-frame-bytes',
      String(options.maxFrameBytes),
      '--memory-bytes',
      String(options.limits.memoryBytes),
      '--cpu-seconds',
      String(options.limits.cpuSeconds),
      '--processes',
      String(options.limits.processes),
      '--file-size-bytes',
      String(options.limits.fileSizeBytes),
      '--open-files',
      String(options.limits.openFiles),
      ...(options.isolation === 'off' ? ['--no-isolation'] : []),
    ]
    const cmd =
      options.isolation === 'sandboxed'
        ? bubblewrapCommand(
            {
              python: options.python,
              pythonHome: pythonHome(options.python),
              venv: dirname(dirname(options.python)),
              runtimeDir: options.runtimeDir,
              serializersDir: join(dirname(options.runtimeDir), 'serializers'),
              socketDir,
              regionDir,
              proc: 'for-workers',
            },
            zygoteCommand,
            env,
          )
        : zygoteCommand
    // The server alone decides when the sandbox stops, so runs still draining finish: a
    // session of its own keeps a signal to the server's process group (a terminal's Ctrl-C)
    // off it, and ignored TERM, INT, HUP and QUIT (inherited through exec by bubblewrap, the
    // zygote and every worker) keep off systemd's signal to every process of the service
    // (KillMode=control-group). It still ends with the server: bubblewrap's
    // --die-with-parent, SIGKILL from stop(), and the zygote exits when its control pipe closes.
    const proc = Bun.spawn({
      cmd: ['/bin/sh', '-c', 'trap "" TERM INT HUP QUIT; exec "$@"', 'sh', ...cmd],
      cwd: options.runtimeDir,
      env,
      stdin: 'pipe',
      stdout: 'pipe',
      stderr: 'pipe',
      detached: true,
    })
    const zygote = new Zygote(
      options,
      proc,
      server,
      socketDir,
      regionDir,
      sandboxed ? cgroups : null,
    )
    server.on('connection', (socket) => zygote.accept(socket))
    try {
      await zygote.waitReady(options.startTimeoutMs)
      return zygote
    } catch (error) {
      await zygote.stop()
      throw error
    }
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null
  }

  /**
   * Whether new workers can still reach the server: the socket's directory can be removed
   * under a running server (a cleaner of old files in the temp directory), and the sandbox's
   * view of it cannot be mended; a new zygote gets a new one.
   */
  get reachable(): boolean {
    return existsSync(join(this.socketDir, 'workers.sock'))
  }

  /** Ends the zygote and with it every worker (the pool restarts it). */
  kill(): void {
    if (this.alive) this.proc.kill('SIGKILL')
  }

  /** Forks a worker and resolves once it has connected and proved its token. */
  async spawnWorker(): Promise<Worker> {
    if (!this.alive) throw new Error(`the zygote is not running: ${this.lastStderrLine()}`)
    const id = newWorkerId()
    const token = randomBytes(16).toString('hex')
    const connected = timed<Connection>(this.options.startTimeoutMs, () => {
      this.pending.delete(id)
      this.send({ op: 'kill', id })
      return new Error(
        `worker ${id} did not connect within ${this.options.startTimeoutMs} ms: ${this.lastStderrLine()}`,
      )
    })
    this.pending.set(id, { token, resolve: connected.resolve, reject: connected.reject })
    const region = this.regionDir ? FileRegion.create(this.regionDir, REGION_BYTES) : null
    this.send({
      op: 'spawn',
      id,
      token,
      ...(region ? { region: region.name, region_bytes: region.size } : {}),
    })
    let connection: Connection
    try {
      connection = await connected.promise
      await this.holdersPlaced.get(id)
      await this.placeInCgroup(id, 'worker', connection.hostPid)
    } catch (error) {
      this.send({ op: 'kill', id })
      region?.close()
      throw error
    } finally {
      this.holdersPlaced.delete(id)
    }
    region?.unlink() // the worker mapped it before saying hello
    const worker = new Worker(
      id,
      this.socketChannel(id, connection.socket),
      this.options.maxFrameBytes,
      region,
    )
    if (this.cgroups) void worker.exited.then(() => this.cgroups?.remove(id)).catch(() => {})
    return worker
  }

  /**
   * Moves a spawn's holder (as soon as it is forked) and then its worker (once it said hello,
   * before any user code) into the worker's cgroup. On cgroup v1 the first move after a quiet
   * spell waits for an RCU grace period (5–10 ms here); moving the holder first spends that
   * wait while the worker starts, and the worker's own move follows at once.
   */
  private async placeInCgroup(
    id: string,
    role: 'holder' | 'worker',
    hostPid: number | null,
  ): Promise<void> {
    if (!this.cgroups) return
    if (hostPid === null || !isProcessOf(hostPid, this.proc.pid, role)) {
      throw new Error(
        `${role} of worker ${id} reported pid ${hostPid}, which is not one of this sandbox`,
      )
    }
    try {
      await this.cgroups.place(id, hostPid)
    } catch (error) {
      throw new Error(
        `${role} of worker ${id} could not be placed in its cgroup: ${(error as Error).message}`,
      )
    }
  }

  async stop(): Promise<void> {
    if (this.alive) this.proc.kill('SIGKILL') // bubblewrap takes every worker down with it
    await this.proc.exited
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
    rmSync(this.socketDir, { recursive: true, force: true })
    if (this.regionDir) rmSync(this.regionDir, { recursive: true, force: true })
  }

  private accept(socket: Socket): void {
    socket.on('error', () => socket.destroy())
    if (this.unproven >= this.pending.size + UNPROVEN_CONNECTIONS_OVER_PENDING)
      return void socket.destroy()
    this.unproven++
    let proven = false
    const settle = () => {
      if (proven) return
      proven = true
      this.unproven--
      clearTimeout(deadline)
    }
    const deadline = setTimeout(() => {
      settle()
      socket.destroy()
    }, HELLO_DEADLINE_MS)
    socket.once('close', settle)
    // The first frame must be a hello naming a pending spawn and its token.
    const reader = new FrameReader(1 << 12)
    const onData = (chunk: Uint8Array) => {
      let frames: unknown[]
      try {
        frames = reader.push(chunk)
      } catch {
        return socket.destroy()
      }
      if (frames.length === 0) return
      socket.off('data', onData)
      settle()
      const hello = workerHello.safeParse(frames[0])
      const spawn = hello.success ? this.pending.get(hello.data.id) : undefined
      if (
        frames.length !== 1 ||
        !hello.success ||
        !spawn ||
        !sameToken(spawn.token, hello.data.token)
      )
        return socket.destroy()
      this.pending.delete(hello.data.id)
      spawn.resolve({ socket, hostPid: reportedPid(hello.data.host_pid) })
    }
    socket.on('data', onData)
  }

  private socketChannel(id: string, socket: Socket): WorkerChannel {
    const reported = new Promise<{ code: number | null; signal: number | null } | null>(
      (resolve) => {
        this.exitReports.set(id, resolve)
      },
    )
    return {
      write(parts) {
        // One write per part, uncorked: corking made Bun copy and trickle multi-megabyte frames.
        for (const part of parts) socket.write(part)
      },
      listen: (onChunk, onEnd) => {
        socket.on('data', onChunk)
        socket.once('close', async () => {
          const exit = await Promise.race([
            reported,
            Bun.sleep(EXIT_REPORT_GRACE_MS).then(() => null),
          ])
          this.exitReports.delete(id)
          onEnd(exitInfo(exit))
        })
      },
      kill: () => {
        this.send({ op: 'kill', id })
        socket.destroy()
      },
    }
  }

  private send(message: ZygoteRequest): void {
    if (!this.alive) return
    for (const part of encodeFrame(message)) this.proc.stdin.write(part)
    void this.proc.stdin.flush()
  }

  private waitReady(timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(`the zygote was not ready within ${timeoutMs} ms: ${this.lastStderrLine()}`),
          ),
        timeoutMs,
      )
      void this.exited.then(() => {
        clearTimeout(timer)
        reject(new Error(`the zygote exited while starting: ${this.lastStderrLine()}`))
      })
      this.readyWaiter = () => {
        clearTimeout(timer)
        resolve()
      }
    })
  }

  private async pumpControl(): Promise<void> {
    try {
      for await (const chunk of this.proc.stdout) {
        for (const frame of this.control.push(chunk))
          this.onEvent(checkFrame(zygoteEvent, frame, 'a zygote event'))
      }
    } catch (error) {
      log.error('the zygote broke its control stream; killing it', {
        error: (error as Error).message,
      })
      this.proc.kill('SIGKILL') // start over
    }
  }

  private onEvent(event: ZygoteEvent): void {
    if (event.op === 'ready') this.readyWaiter?.()
    else if (event.op === 'spawned' && this.cgroups) {
      const placed = this.placeInCgroup(event.id, 'holder', reportedPid(event.host_pid))
      placed.catch(() => {}) // the spawn awaits it and reports the failure
      this.holdersPlaced.set(event.id, placed)
    } else if (event.op === 'exited') {
      this.exitReports.get(event.id)?.({ code: event.code, signal: event.signal })
      // A worker that ended before it connected: its spawn fails now, not at the start timeout.
      this.pending
        .get(event.id)
        ?.reject(
          new Error(
            `worker ${event.id} ended before it connected (exit code ${event.code ?? 'none'}): ${this.lastStderrLine()}`,
          ),
        )
      this.pending.delete(event.id)
    }
  }

  private lastStderrLine(): string {
    return this.stderr.lastLine() ?? 'no output'
  }
}

const SIGNAL_NAMES: Record<number, string> = {
  4: 'SIGILL',
  6: 'SIGABRT',
  7: 'SIGBUS',
  8: 'SIGFPE',
  9: 'SIGKILL',
  11: 'SIGSEGV',
  24: 'SIGXCPU',
  25: 'SIGXFSZ',
}

function exitInfo(report: { code: number | null; signal: number | null } | null): ExitInfo {
  const signal = report?.signal ?? null
  return {
    code: report?.code ?? null,
    signal: signal === null ? null : (SIGNAL_NAMES[signal] ?? `signal ${signal}`),
    stderrTail: '',
  }
}

function sameToken(expected: string, given: unknown): boolean {
  if (typeof given !== 'string' || given.length !== expected.length) return false
  return timingSafeEqual(Buffer.from(expected), Buffer.from(given))
}

/** A pid a holder or worker reported, if it is one at all (isProcessOf checks whose it is). */
const reportedPid = (pid: number | null): number | null =>
  pid !== null && Number.isSafeInteger(pid) && pid > 0 ? pid : null

/**
 * Whether `pid` is a holder or a worker of the sandbox whose bubblewrap process is
 * `sandboxPid`: descended from that bubblewrap within a few generations (bubblewrap → its
 * init → the zygote → a holder → the worker), and a worker is PID 1 of a namespace of its own.
 */
function isProcessOf(pid: number, sandboxPid: number, role: 'holder' | 'worker'): boolean {
  const status = (p: number) => {
    try {
      return readFileSync(`/proc/${p}/status`, 'utf8')
    } catch {
      return ''
    }
  }
  const field = (text: string, name: string) =>
    text
      .match(new RegExp(`^${name}:\\s*(.*)$`, 'm'))?.[1]
      ?.trim()
      .split(/\s+/) ?? []
  const nsPids = field(status(pid), 'NSpid')
  if (nsPids.length < 2 || (role === 'worker' && nsPids.at(-1) !== '1')) return false
  let current = pid
  for (let generation = 0; generation < 6; generation++) {
    const parent = Number(field(status(current), 'PPid')[0])
    if (!parent) return false
    if (parent === sandboxPid) return true
    current = parent
  }
  return false
}

/** The interpreter's `sys.base_prefix`: the standard library the sandbox must see. */
function pythonHome(python: string): string {
  const result = Bun.spawnSync({ cmd: [python, '-c', 'import sys; print(sys.base_prefix)'] })
  if (result.exitCode !== 0)
    throw new Error(`${python} did not run: ${result.stderr.toString().trim()}`)
  return result.stdout.toString().trim()
}
