// The TypeScript side of kernel.py: one stateful Python process per sandbox, executions
// queued one at a time, each answered as the NDJSON stream `runCode` reads.
import type { Subprocess } from 'bun'
import { copyFileSync } from 'node:fs'
import { join } from 'node:path'
import { launch, stockIsolation, type Isolation, type SandboxDirs } from './isolation.ts'
import { killGroup } from './process-tree.ts'
import { StderrTail } from '../../../src/backends/local/stderr-tail.ts'
import type { KernelEnvironment } from './templates.ts'

const KERNEL_SOURCE = join(import.meta.dir, 'kernel.py')
const KERNEL_START_TIMEOUT_MS = 30_000
/** Why a response stream is broken off when its sandbox is killed. */
export const SANDBOX_KILLED = 'the sandbox was killed'

type KernelEvent = { type: string } & Record<string, unknown>

export class Kernel {
  readonly ready: Promise<void>
  private readonly stderr: StderrTail
  /** Where the events of the execution in flight go; null between executions. */
  private sink: ((event: KernelEvent) => void) | null = null
  /** The tail of the queue: each execution starts when the one before it has ended. */
  private queue: Promise<void> = Promise.resolve()
  /** Breaks off the response of the execution in flight without ending it properly. */
  private cut: (() => void) | null = null
  private exited = false
  /** Set when the whole sandbox is being killed, not just the kernel dying. */
  sandboxGone = false

  private constructor(private readonly proc: Subprocess<'pipe', 'pipe', 'pipe'>) {
    this.stderr = new StderrTail(proc.stderr)
    let signalReady!: () => void
    let failStart!: (error: Error) => void
    this.ready = new Promise<void>((resolve, reject) => {
      signalReady = resolve
      failStart = reject
    })
    this.ready.catch(() => {}) // a kernel nobody waited for may fail quietly
    const timer = setTimeout(
      () => failStart(new Error(`the kernel did not start within ${KERNEL_START_TIMEOUT_MS} ms`)),
      KERNEL_START_TIMEOUT_MS,
    )
    void this.pumpEvents((event) => {
      if (event.type === 'ready') {
        clearTimeout(timer)
        signalReady()
      } else this.sink?.(event)
    })
    void proc.exited.then(() => {
      this.exited = true
      clearTimeout(timer)
      failStart(
        new Error(
          `the kernel exited: ${this.stderr.text() || `code ${proc.exitCode}, signal ${proc.signalCode}`}`,
        ),
      )
      if (this.sandboxGone) return this.cut?.() // as in E2B: the connection drops with the sandbox
      this.sink?.({
        type: 'error',
        name: 'KernelDied',
        value: `the kernel process exited: ${this.stderr.text()}`,
        traceback: '',
      })
      this.sink?.({ type: 'end_of_execution' })
    })
  }

  static start(
    isolation: Isolation,
    dirs: SandboxDirs,
    envVars: Record<string, string>,
    environment: KernelEnvironment = 'runtime',
  ): Kernel {
    // On the stock environment, as in E2B's code-interpreter-v1, nothing of blockgate's is
    // importable until it is uploaded: no runtime or serializers on PYTHONPATH.
    const stock = environment === 'stock'
    const python = stock ? stockIsolation(isolation) : isolation
    // The kernel's source goes into the sandbox's private directory, the one place outside
    // the read-only system that is bound into it.
    copyFileSync(KERNEL_SOURCE, join(dirs.socketDir, 'kernel.py'))
    const proc = launch(python, dirs, {
      command: (at) => [at.python, join(at.socketDir, 'kernel.py'), '--home', at.home],
      env: stock ? { PYTHONPATH: '', ...envVars } : envVars,
      stdin: 'pipe',
      stdout: 'pipe',
    }) as Subprocess<'pipe', 'pipe', 'pipe'>
    return new Kernel(proc)
  }

  get pid(): number {
    return this.proc.pid
  }

  get alive(): boolean {
    return !this.exited
  }

  /** Queues `code`; the stream carries its events as JSON lines and closes after end_of_execution. */
  execute(code: string, envVars: Record<string, string>): ReadableStream<Uint8Array> {
    const encoder = new TextEncoder()
    let finished!: () => void
    const done = new Promise<void>((resolve) => (finished = resolve))
    const previous = this.queue
    this.queue = previous.then(() => done)
    return new ReadableStream<Uint8Array>({
      start: async (controller) => {
        const emit = (event: KernelEvent) => {
          try {
            controller.enqueue(encoder.encode(`${JSON.stringify(event)}\n`))
          } catch {
            // the client went away; the code runs on, its output is dropped
          }
        }
        const end = () => {
          this.sink = null
          this.cut = null
          try {
            controller.close()
          } catch {
            // already closed by a client that left
          }
          finished()
        }
        await previous
        try {
          await this.ready
        } catch (error) {
          emit({
            type: 'error',
            name: 'KernelUnavailable',
            value: (error as Error).message,
            traceback: '',
          })
          emit({ type: 'end_of_execution' })
          return end()
        }
        this.sink = (event) => {
          emit(event)
          if (event.type === 'end_of_execution') end()
        }
        this.cut = () => {
          this.sink = null
          this.cut = null
          controller.error(new Error(SANDBOX_KILLED))
          finished()
        }
        if (this.exited) {
          emit({
            type: 'error',
            name: 'KernelDied',
            value: 'the kernel process is not running',
            traceback: '',
          })
          emit({ type: 'end_of_execution' })
          return end()
        }
        try {
          this.proc.stdin.write(`${JSON.stringify({ code, env_vars: envVars })}\n`)
          this.proc.stdin.flush()
        } catch {
          // the kernel died just now: its exit handler ends this execution with an error
        }
      },
    })
  }

  kill(): void {
    killGroup(this.proc)
  }

  async stopped(): Promise<void> {
    await this.proc.exited
  }

  private async pumpEvents(onEvent: (event: KernelEvent) => void): Promise<void> {
    const decoder = new TextDecoder()
    let buffered = ''
    for await (const chunk of this.proc.stdout) {
      buffered += decoder.decode(chunk, { stream: true })
      for (let newline = buffered.indexOf('\n'); newline >= 0; newline = buffered.indexOf('\n')) {
        const line = buffered.slice(0, newline)
        buffered = buffered.slice(newline + 1)
        const event = parseEvent(line)
        if (event) onEvent(event)
      }
    }
  }
}

/** An event from the kernel, or null for a line that is not one (the kernel is untrusted). */
function parseEvent(line: string): KernelEvent | null {
  try {
    const value: unknown = JSON.parse(line)
    if (
      typeof value === 'object' &&
      value !== null &&
      typeof (value as { type?: unknown }).type === 'string'
    )
      return value as KernelEvent
  } catch {
    // not JSON
  }
  return null
}
