// The local backend: N long-lived Python workers, each run dispatched to an idle one,
// preferring a worker that already loaded the block. Isolation, limits, the zygote
// and per-workspace workers come with the local-pool issue and slot in here.
import { OutputsDocument, type Backend, type BackendStatus, type RunJob, type RunOutcome } from '../backend.ts'
import {
  BadRequest,
  BlockCodeError,
  BlockgateError,
  BlockTimeout,
  InternalError,
  OutputTooLarge,
  Overloaded,
  WorkerCrashed,
} from '../../errors.ts'
import { describeExit, Worker, WorkerExited, WorkerUnresponsive, type WorkerOptions, type WorkerReply } from './worker.ts'

export interface LocalPoolOptions extends WorkerOptions {
  workers: number
  /** How long a run may wait for a free worker before it is refused with 503. */
  queueTimeoutMs: number
}

interface Waiter {
  hash: string
  resolve: (worker: Worker) => void
  reject: (error: BlockgateError) => void
}

const RESPAWN_BACKOFF_MS = 1000

export class LocalPool implements Backend {
  readonly name = 'local' as const
  private readonly idle: Worker[] = []
  private readonly all = new Set<Worker>()
  private readonly waiters: Waiter[] = []
  private starting = 0
  private stopped = false
  private lastStartError: string | null = null

  constructor(private readonly options: LocalPoolOptions) {}

  async start(): Promise<void> {
    const results = await Promise.allSettled(Array.from({ length: this.options.workers }, () => this.spawn()))
    const failure = results.find((r) => r.status === 'rejected')
    if (failure) {
      await this.stop()
      throw new Error(`local workers failed to start: ${(failure as PromiseRejectedResult).reason}`)
    }
  }

  status(): BackendStatus {
    return {
      ready: !this.stopped && this.all.size > 0,
      workers: this.all.size,
      idle: this.idle.length,
      starting: this.starting,
      queued: this.waiters.length,
      isolation: 'none (process per worker; sandboxing arrives with the local-pool issue)',
      ...(this.lastStartError ? { last_start_error: this.lastStartError } : {}),
    }
  }

  async run(job: RunJob): Promise<RunOutcome> {
    const queuedAt = performance.now()
    const worker = await this.acquire(job.block.hash)
    const acquiredAt = performance.now()
    const deadline = acquiredAt + job.timeoutMs
    // A worker that answered (even with an error) is reusable; one that died, stalled or
    // broke the protocol is not.
    let answered = true
    try {
      let coldStart = false
      let reply: WorkerReply
      for (let attempt = 0; ; attempt++) {
        if (!worker.loaded.has(job.block.hash)) {
          coldStart = true
          await this.load(worker, job, deadline)
        }
        const loadedAt = performance.now()
        reply = await worker.request(
          { op: 'run', hash: job.block.hash, inputs: job.inputs, context: job.context, output_format: job.outputFormat },
          remaining(deadline),
        )
        // The runtime may have evicted the block since our mirror last heard: load again once.
        if (!reply.ok && reply.error?.type === 'UnknownBlock' && attempt === 0) {
          worker.loaded.delete(job.block.hash)
          continue
        }
        if (!reply.ok) throw blockError(reply)
        worker.runs++
        const doneAt = performance.now()
        return {
          outputs: outputsOf(reply),
          stdout: String(reply.stdout ?? ''),
          stderr: String(reply.stderr ?? ''),
          debugTraces: Array.isArray(reply.debug_traces) ? reply.debug_traces : [],
          coldStart,
          timings: { queue: acquiredAt - queuedAt, acquire: loadedAt - acquiredAt, execute: doneAt - loadedAt },
        }
      }
    } catch (error) {
      answered = error instanceof BlockgateError
      throw this.translate(error, job, worker)
    } finally {
      if (answered) this.release(worker)
      else this.retire(worker)
    }
  }

  async stop(): Promise<void> {
    this.stopped = true
    for (const waiter of this.waiters.splice(0)) waiter.reject(new Overloaded('the server is shutting down', 1))
    const exits = [...this.all].map((worker) => {
      worker.kill()
      return worker.exited
    })
    this.all.clear()
    this.idle.length = 0
    await Promise.all(exits)
  }

  /** Worker pids, for tests and diagnostics. */
  pids(): number[] {
    return [...this.all].map((worker) => worker.pid)
  }

  private async load(worker: Worker, job: RunJob, deadline: number): Promise<void> {
    const reply = await worker.request({ op: 'load', hash: job.block.hash, code: job.block.code }, remaining(deadline))
    if (!reply.ok) throw blockError(reply)
    worker.loaded.add(job.block.hash)
    for (const evicted of (reply.evicted as string[] | undefined) ?? []) worker.loaded.delete(evicted)
  }

  private acquire(hash: string): Promise<Worker> {
    if (this.stopped) return Promise.reject(new Overloaded('the server is shutting down', 1))
    const index = this.bestIdle(hash)
    if (index >= 0) return Promise.resolve(this.idle.splice(index, 1)[0]!)
    return new Promise<Worker>((resolve, reject) => {
      const waiter: Waiter = { hash, resolve, reject }
      const timer = setTimeout(() => {
        const at = this.waiters.indexOf(waiter)
        if (at >= 0) this.waiters.splice(at, 1)
        reject(new Overloaded(`no worker became free within ${this.options.queueTimeoutMs} ms`, 1))
      }, this.options.queueTimeoutMs)
      waiter.resolve = (worker) => {
        clearTimeout(timer)
        resolve(worker)
      }
      waiter.reject = (error) => {
        clearTimeout(timer)
        reject(error)
      }
      this.waiters.push(waiter)
    })
  }

  private bestIdle(hash: string): number {
    const warm = this.idle.findIndex((worker) => worker.loaded.has(hash))
    return warm >= 0 ? warm : this.idle.length - 1
  }

  private release(worker: Worker): void {
    if (this.stopped || !worker.alive) return this.retire(worker)
    // Hand the worker to the first waiter for a block it holds, else to the oldest waiter.
    const warm = this.waiters.findIndex((waiter) => worker.loaded.has(waiter.hash))
    const waiter = this.waiters.splice(warm >= 0 ? warm : 0, 1)[0]
    if (waiter) waiter.resolve(worker)
    else this.idle.push(worker)
  }

  /** Kills a worker whose state can no longer be trusted and starts a replacement. */
  private retire(worker: Worker): void {
    worker.kill()
    this.all.delete(worker)
    const at = this.idle.indexOf(worker)
    if (at >= 0) this.idle.splice(at, 1)
    if (!this.stopped) this.replace()
  }

  /** Starts one more worker, retrying while it fails (a broken venv shows in status()). */
  private replace(): void {
    this.spawn().catch(() => {
      if (!this.stopped) setTimeout(() => this.replace(), RESPAWN_BACKOFF_MS)
    })
  }

  private async spawn(): Promise<Worker> {
    this.starting++
    try {
      const worker = await Worker.start(this.options)
      if (this.stopped) {
        worker.kill()
        return worker
      }
      this.all.add(worker)
      this.lastStartError = null
      // A worker that dies while idle is replaced too.
      void worker.exited.then(() => {
        if (this.all.has(worker) && this.idle.includes(worker)) this.retire(worker)
      })
      this.release(worker)
      return worker
    } catch (error) {
      this.lastStartError = (error as Error).message
      throw error
    } finally {
      this.starting--
    }
  }

  private translate(error: unknown, job: RunJob, worker: Worker): Error {
    if (error instanceof BlockgateError) return error
    if (error instanceof WorkerUnresponsive) return new BlockTimeout(job.timeoutMs)
    if (error instanceof WorkerExited) {
      return new WorkerCrashed(`the block's ${describeExit(error.exit)}; it was replaced`, {
        exit_code: error.exit.code,
        signal: error.exit.signal,
      })
    }
    return new InternalError(`local worker ${worker.id} failed: ${(error as Error).message}`, error)
  }
}

function outputsOf(reply: WorkerReply): unknown {
  const document = reply.outputs_document as { format: 'cbor' | 'json'; pieces: Uint8Array[] } | undefined
  return document ? new OutputsDocument(document.format, document.pieces) : reply.outputs
}

function remaining(deadline: number): number {
  return Math.max(1, deadline - performance.now())
}

function blockError(reply: WorkerReply): BlockgateError {
  const { type = 'InternalError', message = 'the runtime gave no message', ...details } = reply.error ?? {}
  if (type === 'BlockCompileError' || type === 'BlockRuntimeError') return new BlockCodeError(type, message, details)
  if (type === 'OutputTooLarge') return new OutputTooLarge(message)
  if (type === 'InvalidInput') return new BadRequest(message)
  return new InternalError(`the runtime answered ${type}: ${message}`)
}
