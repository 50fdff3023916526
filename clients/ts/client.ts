// blockgate's TypeScript client: fetch only (no Node APIs), so it runs on Bun, Node and edge
// runtimes. CBOR by default, with the kind classes of serializers/ (NDArray, WorkflowImage,
// Detections, VideoMetadata) going in and coming back as the same classes.
import { decodeCbor, encodeCbor } from '../../serializers/cbor.ts'
import { decodeKinds } from '../../serializers/index.ts'
import { BlockgateError, errorFrom, Overloaded, ServerError } from './errors.ts'

export interface ClientOptions {
  /** The server, e.g. http://127.0.0.1:8000. */
  url?: string
  /** Sent as `Authorization: Bearer` when the server has keys. */
  apiKey?: string
  /** The HTTP request's own limit (a run's `timeoutMs` plus a margin when that is longer). */
  timeoutMs?: number
  /** 429/503 answers retried at most this often, each after the server's Retry-After. */
  retries?: number
  /** The longest wait before a retry, whatever Retry-After says. */
  maxRetryWaitMs?: number
  /** CBOR (lossless, kinds as classes) or JSON (plain values and the `_type` forms as they are). */
  format?: 'cbor' | 'json'
  /** Another fetch (a worker's service binding, a test's). */
  fetch?: typeof fetch
}

export interface RunOptions {
  initCode?: string
  workspace?: string
  backend?: 'local' | 'e2b'
  /** The run's own budget (capped by the server's maximum). */
  timeoutMs?: number
  runFunctionName?: string
  initFunctionName?: string
  imports?: string[]
  stepName?: string
  signal?: AbortSignal
}

export interface RunResult {
  outputs: Record<string, unknown>
  stdout: string
  stderr: string
  debugTraces: Record<string, unknown>[]
  coldStart: boolean
  timingsMs: { queue: number; acquire: number; execute: number; user_code?: number; total: number }
  backend: string
  blockHash: string
  /** The run's trace when it was sampled (the `traceresponse` header), else null. */
  traceId: string | null
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

export class Client {
  private readonly url: string
  private readonly headers: Record<string, string>
  private readonly timeoutMs: number
  private readonly retries: number
  private readonly maxRetryWaitMs: number
  private readonly format: 'cbor' | 'json'
  private readonly fetch: typeof fetch

  constructor(options: ClientOptions = {}) {
    this.url = (options.url ?? 'http://127.0.0.1:8000').replace(/\/+$/, '')
    this.format = options.format ?? 'cbor'
    this.timeoutMs = options.timeoutMs ?? 60_000
    this.retries = options.retries ?? 3
    this.maxRetryWaitMs = options.maxRetryWaitMs ?? 10_000
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis)
    const type = `application/${this.format}`
    this.headers = { 'content-type': type, accept: type }
    if (options.apiKey) this.headers.authorization = `Bearer ${options.apiKey}`
  }

  /** Runs `runCode`'s run function on `inputs`; a failure throws its typed error. */
  async run(
    runCode: string,
    inputs: Record<string, unknown> = {},
    options: RunOptions = {},
  ): Promise<RunResult> {
    const body = this.encode(requestBody(runCode, inputs, options))
    for (let attempt = 0; ; attempt++) {
      const limit = Math.max(this.timeoutMs, (options.timeoutMs ?? 0) + 10_000)
      const signals = [AbortSignal.timeout(limit), ...(options.signal ? [options.signal] : [])]
      const response = await this.fetch(`${this.url}/v1/run`, {
        method: 'POST',
        headers: this.headers,
        body,
        signal: signals.length === 1 ? signals[0] : AbortSignal.any(signals),
      })
      try {
        return await this.result(response)
      } catch (error) {
        if (!(error instanceof Overloaded) || attempt >= this.retries) throw error
        await sleep(Math.min(error.retryAfterS * 1000, this.maxRetryWaitMs))
      }
    }
  }

  /** GET /healthz. */
  async health(): Promise<{ status: string }> {
    return (await this.fetch(`${this.url}/healthz`)).json() as Promise<{ status: string }>
  }

  /** GET /readyz: whether the default backend has warm runtimes. */
  async ready(): Promise<boolean> {
    const response = await this.fetch(`${this.url}/readyz`)
    await response.body?.cancel()
    return response.status === 200
  }

  private encode(body: Record<string, unknown>): Uint8Array<ArrayBuffer> | string {
    return this.format === 'cbor'
      ? (encodeCbor(body) as Uint8Array<ArrayBuffer>)
      : JSON.stringify(body)
  }

  private async result(response: Response): Promise<RunResult> {
    const type = (response.headers.get('content-type') ?? '').split(';')[0]!.trim()
    let body: Record<string, any>
    try {
      const bytes = new Uint8Array(await response.arrayBuffer())
      body = (
        type === 'application/cbor'
          ? decodeKinds(decodeCbor(bytes), 'response')
          : JSON.parse(new TextDecoder().decode(bytes))
      ) as Record<string, any>
    } catch (error) {
      if (error instanceof BlockgateError) throw error
      // An error without a readable body is typed by its status.
      if (response.status !== 200) throw errorFrom(response.status, null, response.headers.get('retry-after'))
      throw new ServerError(response.status, 'ServerError', `an unreadable ${type} answer: ${(error as Error).message}`, {
        type: 'ServerError',
        message: (error as Error).message,
      })
    }
    if (response.status !== 200) throw errorFrom(response.status, body, response.headers.get('retry-after'))
    return {
      outputs: body.outputs,
      stdout: body.stdout,
      stderr: body.stderr,
      debugTraces: body.debug_traces,
      coldStart: body.cold_start,
      timingsMs: body.timings_ms,
      backend: body.backend,
      blockHash: body.block_hash,
      traceId: response.headers.get('traceresponse')?.split('-')[1] ?? null,
    }
  }
}

function requestBody(
  runCode: string,
  inputs: Record<string, unknown>,
  options: RunOptions,
): Record<string, unknown> {
  const code: Record<string, unknown> = { run_function_code: runCode }
  if (options.runFunctionName) code.run_function_name = options.runFunctionName
  if (options.initCode !== undefined) code.init_function_code = options.initCode
  if (options.initFunctionName) code.init_function_name = options.initFunctionName
  if (options.imports) code.imports = options.imports
  const body: Record<string, unknown> = { code, inputs }
  if (options.workspace !== undefined) body.workspace = options.workspace
  if (options.backend !== undefined) body.backend = options.backend
  if (options.timeoutMs !== undefined) body.timeout_ms = options.timeoutMs
  if (options.stepName !== undefined) body.step_name = options.stepName
  return body
}
