// One Python runtime serving runs, spoken to in worker frames over a byte channel: the
// Unix socket of a worker the zygote forked, or the pipes of a process of its own (the
// "fresh interpreter" the bench compares against). One request in flight at a time.
import type { Subprocess } from 'bun'
import { dirname } from 'node:path'
import { encodeFrame, FrameReader } from '../framing.ts'
import type { FileRegion } from './region.ts'
import { timed } from '../timed.ts'
import type { BlockRuntime, RuntimeReply } from '../runtime-session.ts'
import { checkFrame, workerReady, type RuntimeRequest } from '../runtime-protocol.ts'
import { lastLineOf, StderrTail } from './stderr-tail.ts'

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

/** A duplex byte stream to one runtime, and how to end it. */
export interface WorkerChannel {
  write(parts: Uint8Array[]): void
  /** Calls back with each chunk read, then once with the exit when the channel ends. */
  listen(onChunk: (chunk: Uint8Array) => void, onEnd: (exit: ExitInfo) => void): void
  kill(): void
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

/** Only what Python needs; nothing of the server's environment (no keys, no tokens). */
export function workerEnvironment(runtimeDir: string): Record<string, string> {
  const env: Record<string, string> = {
    PATH: '/usr/local/bin:/usr/bin:/bin',
    LANG: 'C.UTF-8',
    HOME: '/tmp',
    // The runtime package, and the project root for the serializer plugins' Python halves.
    PYTHONPATH: `${runtimeDir}:${dirname(runtimeDir)}`,
    PYTHONDONTWRITEBYTECODE: '1',
    PYTHONUNBUFFERED: '1',
    ...LARGE_BUFFER_MALLOC,
    // One thread per worker: the pool is the parallelism, and BLAS threads per worker
    // would oversubscribe the cores (and threads do not survive the zygote's fork).
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

let nextWorkerId = 1
export const newWorkerId = () => `w${nextWorkerId++}`

export class Worker implements BlockRuntime {
  /** Block hashes the runtime holds, mirrored from its load/evict replies. */
  readonly loaded = new Set<string>()
  runs = 0
  /** The tenant this worker serves for its whole life; null until its first run. */
  workspace: string | null = null
  /** Resident memory the runtime last reported. */
  rssBytes = 0
  private readonly reader: FrameReader
  private waiting: {
    resolve: (reply: RuntimeReply) => void
    reject: (error: Error) => void
  } | null = null
  private exitInfo: ExitInfo | null = null
  readonly exited: Promise<ExitInfo>

  constructor(
    readonly id: string,
    private readonly channel: WorkerChannel,
    maxFrameBytes: number,
    /** Shared memory for large buffers both ways, if the worker has any. */
    private readonly region: FileRegion | null = null,
  ) {
    this.reader = new FrameReader(maxFrameBytes, region)
    this.exited = new Promise<ExitInfo>((resolveExit) => {
      channel.listen(
        (chunk) => this.receive(chunk),
        (exit) => {
          this.region?.close()
          this.exitInfo = exit
          this.waiting?.reject(new WorkerExited(exit))
          this.waiting = null
          resolveExit(exit)
        },
      )
    })
  }

  get alive(): boolean {
    return this.exitInfo === null
  }

  /** Waits for the runtime's first frame (its greeting), as it arrived. */
  greeting(timeoutMs: number): Promise<RuntimeReply> {
    return this.next(timeoutMs)
  }

  /** Sends one request and waits for its reply, as it arrived; rejects if the worker dies or stalls. */
  request(message: RuntimeRequest, timeoutMs: number): Promise<RuntimeReply> {
    if (this.exitInfo) return Promise.reject(new WorkerExited(this.exitInfo))
    if (this.waiting)
      return Promise.reject(new Error(`worker ${this.id} already has a request in flight`))
    const reply = this.next(timeoutMs)
    this.region?.reset()
    this.channel.write(encodeFrame(message, this.region))
    return reply
  }

  kill(): void {
    if (this.alive) this.channel.kill()
  }

  private next(timeoutMs: number): Promise<RuntimeReply> {
    const reply = timed<RuntimeReply>(timeoutMs, () => {
      this.waiting = null
      return new WorkerUnresponsive(`worker ${this.id} gave no reply within ${timeoutMs} ms`)
    })
    this.waiting = reply
    return reply.promise
  }

  private receive(chunk: Uint8Array): void {
    try {
      for (const frame of this.reader.push(chunk)) {
        const waiting = this.waiting
        this.waiting = null
        if (!waiting) throw new Error(`worker ${this.id} sent a frame nobody asked for`)
        waiting.resolve(frame)
      }
    } catch {
      // A broken protocol stream means this process can no longer be trusted.
      this.kill()
    }
  }
}

/** How to run the runtime, wherever it starts (a process of its own, or the zygote). */
export interface ProcessWorkerOptions {
  python: string
  runtimeDir: string
  blockCacheSize: number
  maxCaptureBytes: number
  maxFrameBytes: number
  startTimeoutMs: number
}

/** A runtime in a fresh interpreter of its own (no zygote, no sandbox): the bench's baseline. */
export async function startProcessWorker(options: ProcessWorkerOptions): Promise<Worker> {
  const proc = Bun.spawn({
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
  const worker = new Worker(newWorkerId(), processChannel(proc), options.maxFrameBytes)
  try {
    checkFrame(
      workerReady,
      await worker.greeting(options.startTimeoutMs),
      `worker ${worker.id}'s greeting`,
    )
    return worker
  } catch (error) {
    worker.kill()
    throw error
  }
}

function processChannel(proc: Subprocess<'pipe', 'pipe', 'pipe'>): WorkerChannel {
  const stderr = new StderrTail(proc.stderr)
  return {
    write(parts) {
      for (const part of parts) proc.stdin.write(part)
      void proc.stdin.flush()
    },
    listen(onChunk, onEnd) {
      void (async () => {
        try {
          for await (const chunk of proc.stdout) onChunk(chunk)
        } catch {
          // the stream broke: the exit below says why
        }
        await proc.exited
        const signal = proc.signalCode
        onEnd({
          code: proc.exitCode,
          signal: signal === null ? null : String(signal),
          stderrTail: stderr.text(),
        })
      })()
    },
    kill() {
      proc.kill('SIGKILL')
    },
  }
}

export function describeExit({ code, signal, stderrTail }: ExitInfo): string {
  const how = signal
    ? `was killed by ${signal}`
    : code === null
      ? 'ended'
      : `exited with code ${code}`
  const lastLine = lastLineOf(stderrTail)
  return lastLine ? `worker ${how} (last stderr line: ${lastLine})` : `worker ${how}`
}
