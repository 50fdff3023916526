// Code-interpreter mode, for users who cannot build a template: E2B's stock code-interpreter
// sandbox, the runtime uploaded into it once, each request a frame file written with
// `files.write`, handled by `runtime.interpreter.run_frame_file` through `runCode`, and the
// reply frame read back with `files.read`. Data travels as files, never through `envs`
// (which breaks on quotes) nor as code text. Three data-plane calls per request: the
// baseline the template mode is measured against.
import { Glob } from 'bun'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import type { Sandbox } from '@e2b/code-interpreter'
import { PROJECT_ROOT } from '../../config.ts'
import { encodeFrame } from '../framing.ts'
import type { RuntimeRequest } from '../runtime-protocol.ts'
import type { BlockRuntime, RuntimeReply } from '../runtime-session.ts'
import { onlyFrame, RuntimeTimeout, SandboxGone } from './runtime-http.ts'

/** Where the runtime lives inside the sandbox (the home of E2B's default user). */
const SANDBOX_ROOT = '/home/user/blockgate'

/** The files the runtime needs (its Python and protocol.json), relative to the project root: no tests, no vectors. */
export function runtimeFiles(root = PROJECT_ROOT): string[] {
  const patterns = [
    'template/runtime/*.py',
    'template/runtime/*.json',
    'serializers/*.py',
    'serializers/*/*.py',
  ]
  const files = patterns.flatMap((pattern) => [...new Glob(pattern).scanSync({ cwd: root })])
  return [
    ...files.filter((file) => !/(^|\/)(test_[^/]*|conftest|make_vectors)\.py$/.test(file)),
    'template/requirements.txt',
  ].sort()
}

export class InterpreterRuntime implements BlockRuntime {
  readonly loaded = new Set<string>()
  private uploaded = false

  constructor(
    private readonly sandbox: Sandbox,
    private readonly maxFrameBytes: number,
  ) {}

  /** Uploads the runtime and imports it (installing missing requirements once). */
  async prepare(timeoutMs: number): Promise<void> {
    const entries = runtimeFiles().map((file) => ({
      path: `${SANDBOX_ROOT}/${file}`,
      data: new Blob([readFileSync(resolve(PROJECT_ROOT, file))]),
    }))
    await this.sandbox.files.write(entries, { requestTimeoutMs: timeoutMs })
    await this.execute(
      [
        'import sys',
        `sys.path[:0] = [${JSON.stringify(`${SANDBOX_ROOT}/template`)}, ${JSON.stringify(SANDBOX_ROOT)}]`,
        'from runtime.interpreter import ensure_requirements, run_frame_file',
        `ensure_requirements(${JSON.stringify(`${SANDBOX_ROOT}/template/requirements.txt`)})`,
      ].join('\n'),
      timeoutMs,
    )
    this.uploaded = true
  }

  async request(message: RuntimeRequest, timeoutMs: number): Promise<RuntimeReply> {
    if (!this.uploaded) throw new Error('the runtime was not uploaded to this sandbox')
    const deadline = performance.now() + timeoutMs
    const left = () => Math.max(1, deadline - performance.now())
    // One request at a time per sandbox: the same two files serve every request, so nothing piles up.
    const name = `${SANDBOX_ROOT}/io/frame`
    await this.call(deadline, () =>
      this.sandbox.files.write(`${name}.in`, new Blob(encodeFrame(message)), {
        requestTimeoutMs: left(),
      }),
    )
    await this.execute(
      `run_frame_file(${JSON.stringify(`${name}.in`)}, ${JSON.stringify(`${name}.out`)}, ${this.maxFrameBytes})`,
      left(),
    )
    const reply = await this.call(deadline, () =>
      this.sandbox.files.read(`${name}.out`, { format: 'bytes', requestTimeoutMs: left() }),
    )
    return onlyFrame(reply, this.maxFrameBytes)
  }

  private async execute(code: string, timeoutMs: number): Promise<void> {
    const execution = await this.call(performance.now() + timeoutMs, () =>
      this.sandbox.runCode(code, { timeoutMs, requestTimeoutMs: timeoutMs }),
    )
    // run_frame_file answers every block error in its reply frame; an error here is the runtime's own.
    if (execution.error)
      throw new Error(
        `the code interpreter raised ${execution.error.name}: ${execution.error.value}`,
      )
  }

  /**
   * One data-plane call, its SDK errors sorted: the SDK reports a vanished sandbox (E2B's
   * edge answers 502) as a TimeoutError too, so a timeout before our deadline means "gone".
   */
  private async call<T>(deadline: number, operation: () => Promise<T>): Promise<T> {
    try {
      return await operation()
    } catch (error) {
      const { name, message } = error as Error
      if (name === 'NotFoundError' || name === 'SandboxNotFoundError')
        throw new SandboxGone(message)
      if (name === 'TimeoutError') {
        if (performance.now() >= deadline - 5)
          throw new RuntimeTimeout(`the code interpreter gave no reply in time (${message})`)
        throw new SandboxGone(`the sandbox stopped answering (${name}: ${message})`)
      }
      throw error
    }
  }
}
