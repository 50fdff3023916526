// One long-lived Python runtime process (`python -m runtime.worker`), spoken to in
// length-prefixed CBOR frames over its stdin/stdout. One request in flight at a time.
import type { Subprocess } from 'bun'
import { dirname } from 'node:path'
import { encodeFrame, FrameReader } from './framing.ts'

export interface WorkerOptions {
  python: string
  runtimeDir: string
  blockCacheSize: number
  maxCaptureBytes: number
  maxFrameBytes: number
  startTimeoutMs: number
}

/** What every runtime reply carries; ops add their own fields. */
export interface WorkerReply {
  ok: boolean
  error?: { type: string; message: string } & Record<string, unknown>
  [field: string]: unknown
}

export type ExitInfo = { code: number | null; signal: string | null; stderrTail: string }

export class WorkerExited extends Error {
  override name = 'WorkerExited'
  constructor(readonly exit: ExitInfo) {
    super(describeExit(exit))
  }
}

export class WorkerUnresponsive extends Error {
  override name = 'WorkerUnresponsive'
}

/**
 * glibc hands every allocation over 128 KiB a fresh mmap and unmaps it on free, so each
 * frame of an image pays ~1,500 page faults per 6 MB (a 1080p frame decodes 10x slower).
 * These keep freed frame buffers in the worker's heap for the next run instead.
 */
export const LARGE_BUFFER_MALLOC = {
  MALLOC_MMAP_THRESHOLD_: String(512 * 1024 * 1024),
  MALLOC_TRIM_THRESHOLD_: String(1024 * 1024 * 1024),
} as const

// Only what Python needs; nothing of the server's environment (no keys, no tokens).
function workerEnvironment(runtimeDir: string): Record<string, string> {
  const env: Record<string, string> = {
    PATH: '/usr/local/bin:/usr/bin:/bin',
    LANG: 'C.UTF-8',
    HOME: '/tmp',
    // The runtime package, and the project root for the serializer plugins' Python halves.
    PYTHONPATH: `${runtimeDir}:${dirname(runtimeDir)}`,
    PYTHONDONTWRITEBYTECODE: '1',
    PYTHONUNBUFFERED: '1',
    PYTHONHASHSEED: 'random',
    // One thread per worker: the pool is the parallelism, and BLAS threads per worker
    // would oversubscribe the cores.
    ...LARGE_BUFFER_MALLOC,
    OMP_NUM_THREADS: '1',
    OPENBLAS_NUM_THREADS: '1',
    MKL_NUM_THREADS: '1',
  }
  // Some hosts need these for OpenBLAS to pick a kernel that works on their CPU.
  for (const name of ['OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE']) {
    const value = process.env[name]
    if (value) env[name] = value
  }
  return env
}

const STDERR_TAIL_BYTES = 4096
let nextWorkerId = 1

export class Worker {
  readonly id = `w${nextWorkerId++}`
  /** Block hashes the runtime holds, mirrored from its load/evict replies. */
  readonly loaded = new Set<string>()
  runs = 0
  private readonly proc: Subprocess<'pipe', 'pipe', 'pipe'>
  private readonly reader: FrameReader
  private waiting: { resolve: (reply: WorkerReply) => void; reject: (error: Error) => void } | null = null
  private stderrTail = ''
  private exitInfo: ExitInfo | null = null
  readonly exited: Promise<ExitInfo>

  private constructor(options: WorkerOptions) {
    this.reader = new FrameReader(options.maxFrameBytes)
    this.proc = Bun.spawn({
      cmd: [
        options.python,
        '-m',
        'runtime.worker',
        '--block-cache-size',
        String(options.blockCacheSize),
        '--max-capture-bytes',
        String(options.maxCaptureBytes),
        '--max-frame-bytes',
        String(options.maxFrameBytes),
      ],
      cwd: options.runtimeDir,
      env: workerEnvironment(options.runtimeDir),
      stdin: 'pipe',
      stdout: 'pipe',
      stderr: 'pipe',
    })
    this.exited = this.proc.exited.then(() => {
      const exit = this.pendingExit()
      this.exitInfo = exit
      this.waiting?.reject(new WorkerExited(exit))
      this.waiting = null
      return exit
    })
    void this.pumpStdout()
    void this.pumpStderr()
  }

  /** Starts a worker and resolves once its runtime has imported everything and said ready. */
  static async start(options: WorkerOptions): Promise<Worker> {
    const worker = new Worker(options)
    try {
      const ready = await worker.next(options.startTimeoutMs)
      if (ready.op !== 'ready') throw new Error(`worker ${worker.id} greeted with ${JSON.stringify(ready)}`)
      return worker
    } catch (error) {
      worker.kill()
      throw error
    }
  }

  get pid(): number {
    return this.proc.pid
  }

  get alive(): boolean {
    return this.exitInfo === null && !this.proc.killed
  }

  /** Sends one request and waits for its reply; rejects if the worker dies or stalls. */
  request(message: Record<string, unknown>, timeoutMs: number): Promise<WorkerReply> {
    if (!this.alive) return Promise.reject(new WorkerExited(this.exitInfo ?? this.pendingExit()))
    if (this.waiting) return Promise.reject(new Error(`worker ${this.id} already has a request in flight`))
    const reply = this.next(timeoutMs)
    for (const part of encodeFrame(message)) this.proc.stdin.write(part)
    void this.proc.stdin.flush()
    return reply
  }

  kill(): void {
    if (this.alive) this.proc.kill('SIGKILL')
  }

  private next(timeoutMs: number): Promise<WorkerReply> {
    return new Promise<WorkerReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = null
        reject(new WorkerUnresponsive(`worker ${this.id} gave no reply within ${timeoutMs} ms`))
      }, timeoutMs)
      this.waiting = {
        resolve: (reply) => {
          clearTimeout(timer)
          resolve(reply)
        },
        reject: (error) => {
          clearTimeout(timer)
          reject(error)
        },
      }
    })
  }

  private async pumpStdout(): Promise<void> {
    try {
      for await (const chunk of this.proc.stdout) {
        for (const frame of this.reader.push(chunk)) {
          const waiting = this.waiting
          this.waiting = null
          if (!waiting) throw new Error(`worker ${this.id} sent a frame nobody asked for`)
          waiting.resolve(frame as WorkerReply)
        }
      }
    } catch (error) {
      // A broken protocol stream means this process can no longer be trusted.
      this.stderrTail += `\n[blockgate] ${(error as Error).message}`
      this.kill()
    }
  }

  private async pumpStderr(): Promise<void> {
    const decoder = new TextDecoder()
    for await (const chunk of this.proc.stderr) {
      this.stderrTail = (this.stderrTail + decoder.decode(chunk, { stream: true })).slice(-STDERR_TAIL_BYTES)
    }
  }

  private pendingExit(): ExitInfo {
    const signal = this.proc.signalCode
    return { code: this.proc.exitCode, signal: signal === null ? null : String(signal), stderrTail: this.stderrTail }
  }
}

export function describeExit({ code, signal, stderrTail }: ExitInfo): string {
  const how = signal ? `was killed by ${signal}` : `exited with code ${code}`
  const lastLine = stderrTail.trim().split('\n').filter(Boolean).at(-1)
  return lastLine ? `worker ${how} (last stderr line: ${lastLine.slice(0, 300)})` : `worker ${how}`
}
