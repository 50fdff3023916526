// Roboflow Inference's remote-execution protocol, so a stock Inference server runs its custom
// Python blocks here: the HTTP transport of its Modal executor (WORKFLOWS_CUSTOM_PYTHON_EXECUTION_MODE=modal,
// MODAL_WEB_ENDPOINT_URL pointing at this route).
//
//   POST /webexec?workspace_id=<ws>   Modal-Key, Modal-Secret, Content-Encoding: gzip
//   {code_hash, run_function_name, inputs_json, workflow_context, code_str?, imports?}
//   → 200 {success: true, result: "<JSON text>", stdout, stderr}
//   → 200 {success: false, error, error_type, line_number, function_name, stdout, stderr}
//
// A run takes the /v1/run path: the same backends, limits and tenants (workspace_id is the
// workspace). Problems with the HTTP request itself (credentials, size, encoding) are HTTP
// errors; everything after that is the protocol's 200 with `success: false`, which Inference
// turns into its own error message.
import { gunzip } from 'node:zlib'
import { promisify } from 'node:util'
import type { Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { z } from 'zod'
import { decodeKinds, KindError } from '../../serializers/index.ts'
import { OutputsDocument, type RunTimings, type WorkflowContext } from '../backends/backend.ts'
import type { AuditLog } from '../auth/audit.ts'
import { callerOf, timeoutFor, workspaceFor, type Caller, type CallerEnv } from '../auth/caller.ts'
import type { Config } from '../config.ts'
import {
  BadRequest,
  BlockgateError,
  InternalError,
  PayloadTooLarge,
  RuntimeReportedError,
  UnsupportedMediaType,
} from '../errors.ts'
import { encodeBody, parseJson } from '../http/wire.ts'
import { blockText, log } from '../log.ts'
import { blockOf } from '../run/block.ts'
import { pythonName, workspaceName } from '../run/request.ts'
import type { Backends } from '../backends/backend.ts'
import { pickBackend } from '../run/router.ts'
import { CodeCache, inferenceCodeHash } from './code-cache.ts'
import { SharedCodeCache } from './shared-code-cache.ts'
import type { SharedState } from '../shared/redis.ts'

const WEBEXEC_PATH = '/webexec'

export interface WebexecOptions {
  config: Pick<Config, 'defaultBackend' | 'limits' | 'webexec'> &
    Partial<Pick<Config, 'workspaceBackends'>>
  backends: Backends
  audit: AuditLog
  /** The deployment's Redis: code hashes one instance saw are known to all. */
  shared?: SharedState | null
}

const requestSchema = z.object({
  code_hash: z.string().nullish(),
  run_function_name: pythonName,
  inputs_json: z.string().default('{}'),
  workflow_context: z.record(z.string(), z.unknown()).nullish(),
  code_str: z.string().nullish(),
  imports: z.array(z.string()).nullish(),
})
type WebexecRequest = z.output<typeof requestSchema>

interface Success {
  success: true
  /** The block's outputs as JSON text with Inference's `_type` markers. */
  result: string
  stdout: string | null
  stderr: string | null
  /** Inference bills the block by this when the remote runtime reports it. */
  execution_time_seconds: number
  /** Ours; Inference ignores it. */
  blockgate: {
    backend: string
    cold_start: boolean
    block_hash: string
    timings_ms: RunTimings & { total: number }
  }
}

interface Failure {
  success: false
  error: string
  error_type: string
  /** Counted in run_function_code (Inference's `code_str`), or null when the failure is not there. */
  line_number: number | null
  function_name: string | null
  stdout: string | null
  stderr: string | null
  /** Set when blockgate, not the block, failed: Inference resends code only for such an UnknownCodeHash. */
  server_error?: true
}

// Failures the block itself caused; any other failure is blockgate's (`server_error`).
const BLOCK_FAULTS = new Set([
  'BlockCompileError',
  'BlockRuntimeError',
  'BlockTimeout',
  'WorkerCrashed',
  'OutputTooLarge',
])

export function registerWebexec(
  app: Hono<CallerEnv>,
  { config, backends, audit, shared = null }: WebexecOptions,
): void {
  const codes = new SharedCodeCache(new CodeCache(config.webexec.codeCacheBytes), shared)
  const maxBytes = config.limits.maxBodyBytes

  app.post(
    WEBEXEC_PATH,
    bodyLimit({
      maxSize: maxBytes,
      onError: () => {
        throw new PayloadTooLarge(
          `body: larger than the ${maxBytes}-byte limit (BLOCKGATE_MAX_BODY_BYTES)`,
        )
      },
    }),
    async (c) => {
      const caller = callerOf(c)
      const named = workspaceName.safeParse(c.req.query('workspace_id'))
      if (!named.success) throw new BadRequest(`workspace_id: ${named.error.issues[0]!.message}`)
      const workspace = workspaceFor(caller, named.data)
      const body = await readBody(
        c.req.raw,
        Math.min(maxBytes, caller?.limits.maxBodyBytes ?? maxBytes),
      )

      const startedAt = performance.now()
      let answer: Success | Failure
      try {
        const request = requestSchema.safeParse(body)
        if (!request.success) {
          const problems = request.error.issues.map(
            (issue) => `${issue.path.join('.') || 'body'}: ${issue.message}`,
          )
          answer = serverFailure('InvalidRequest', problems.join('; '))
        } else {
          answer = await execute(request.data, workspace, caller, c.req.raw.signal, startedAt)
        }
      } catch (thrown) {
        answer = failureOf(thrown)
      }
      return c.json(answer)
    },
  )

  async function execute(
    request: WebexecRequest,
    workspace: string,
    caller: Caller,
    signal: AbortSignal,
    startedAt: number,
  ): Promise<Success | Failure> {
    if (!request.code_str && !request.code_hash)
      return serverFailure('InvalidRequest', 'the request has neither code_str nor code_hash')
    const sent = request.code_str
      ? { code: request.code_str, imports: request.imports ?? [] }
      : null
    // Kept under the hash of what was sent, whatever hash the client named, as Modal does.
    const remembering =
      sent && codes.remember(workspace, inferenceCodeHash(sent.code, sent.imports), sent)
    const code = sent ?? (await codes.recall(workspace, request.code_hash!))
    if (!code) {
      return serverFailure(
        'UnknownCodeHash',
        `no code is held for hash ${JSON.stringify(request.code_hash)} in workspace ${workspace}; send code_str`,
      )
    }
    // Inference sends only run_function_code (as code_str): an `init` defined there is found
    // by name and run once per loaded block, as Inference does locally.
    const block = blockOf({
      run_function_code: code.code,
      run_function_name: request.run_function_name,
      init_function_code: null,
      init_function_name: 'init',
      imports: code.imports,
    })
    const backend = pickBackend(undefined, workspace, backends, config)
    const job = {
      block,
      inputs: inputsOf(request.inputs_json),
      workspace,
      keyId: caller?.id,
      context: contextOf(request.workflow_context),
      timeoutMs: timeoutFor(caller, config.limits.defaultTimeoutMs),
      // Written as Modal writes it (json.dumps: NaN and Infinity as bare tokens).
      outputFormat: 'json-webexec' as const,
      signal,
    }
    // Stored in Redis while the block runs, and waited for: once Inference has the answer, every
    // instance knows the hash, wherever its next hash-only request lands.
    const outcome = await audit.run(backend, job, caller, WEBEXEC_PATH).finally(() => remembering)
    return {
      success: true,
      result: resultText(outcome.outputs),
      stdout: outcome.stdout || null,
      stderr: outcome.stderr || null,
      execution_time_seconds: (outcome.timings.user_code ?? outcome.timings.execute) / 1000,
      blockgate: {
        backend: backend.name,
        cold_start: outcome.coldStart,
        block_hash: block.hash,
        timings_ms: { ...outcome.timings, total: performance.now() - startedAt },
      },
    }
  }
}

const gunzipAsync = promisify(gunzip)

/** The JSON body, gunzipped when it says so; a body over the limit once decompressed is a 413. */
async function readBody(request: Request, maxBytes: number): Promise<unknown> {
  const type = (request.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase()
  if (type !== '' && type !== 'application/json')
    throw new UnsupportedMediaType(`Content-Type ${JSON.stringify(type)}: send application/json`)
  const encoding = (request.headers.get('content-encoding') ?? 'identity').trim().toLowerCase()
  if (encoding !== 'gzip' && encoding !== 'identity')
    throw new UnsupportedMediaType(
      `Content-Encoding ${JSON.stringify(encoding)}: send gzip or none`,
    )
  let bytes: Uint8Array = new Uint8Array(await request.arrayBuffer())
  if (encoding === 'gzip') {
    try {
      // The cap stops inflating at the limit: a small bomb never becomes a large buffer.
      bytes = await gunzipAsync(bytes, { maxOutputLength: maxBytes })
    } catch (error) {
      if ((error as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
        throw new PayloadTooLarge(
          `body: larger than the ${maxBytes}-byte limit once decompressed (BLOCKGATE_MAX_BODY_BYTES)`,
        )
      }
      throw new BadRequest(`body: not valid gzip (${(error as Error).message})`)
    }
  }
  if (bytes.byteLength === 0) throw new BadRequest('body: empty; expected a webexec request')
  return parseJson(new TextDecoder().decode(bytes), 'body')
}

function inputsOf(inputsJson: string): Record<string, unknown> {
  // Read as Inference's Python json.loads reads it (floats stay floats, NaN is read).
  const inputs = parseJson(inputsJson, 'inputs_json', 'root')
  if (inputs === null || typeof inputs !== 'object' || Array.isArray(inputs))
    throw new BadRequest('inputs_json: must be a JSON object of named inputs')
  try {
    // `_type` markers stay as they are for the runtime to decode; this applies the depth and size caps.
    return decodeKinds(inputs, 'inputs') as Record<string, unknown>
  } catch (error) {
    if (error instanceof KindError) throw new BadRequest(error.message)
    throw error
  }
}

/** What Inference's block would have answered to get_workflow_context(), kept as sent. */
function contextOf(sent: Record<string, unknown> | null | undefined): WorkflowContext {
  const text = (value: unknown) => (typeof value === 'string' ? value : null)
  return {
    ...sent,
    step_name: text(sent?.step_name),
    step_selector: text(sent?.step_selector),
    block_type: text(sent?.block_type) ?? 'custom_python_block',
    workflow_execution_id: text(sent?.workflow_execution_id) ?? crypto.randomUUID(),
  }
}

function resultText(outputs: unknown): string {
  // The runtime's JSON document is the result as it is: Inference gets it byte for byte, as a string.
  if (outputs instanceof OutputsDocument) return Buffer.concat(outputs.pieces).toString('utf8')
  const { body } = encodeBody(outputs, 'json')
  return typeof body === 'string' ? body : Buffer.from(body).toString('utf8')
}

function serverFailure(errorType: string, message: string): Failure {
  return {
    success: false,
    error: message,
    error_type: errorType,
    line_number: null,
    function_name: null,
    stdout: null,
    stderr: null,
    server_error: true,
  }
}

/** A failed run in Inference's terms: the user's exception by its Python name, its line in code_str. */
function failureOf(thrown: unknown): Failure {
  const error =
    thrown instanceof BlockgateError
      ? thrown
      : new InternalError('an unexpected error occurred inside blockgate', thrown)
  // What the runtime reported is the block's text: a warning in its own field, not blockgate's error.
  if (error instanceof RuntimeReportedError)
    log.warn('webexec run failed in the runtime', { block_error: blockText(error.message) })
  else if (error instanceof InternalError) log.error('webexec run failed', { error: thrown })
  const details = error.details
  const exception = details.exception as { type: string; message: string } | null | undefined
  // Inference quotes code_str at line_number: a line in the imports would point at the wrong text.
  const inRunCode = details.source === 'run_function_code' && typeof details.line === 'number'
  const text = (value: unknown) => (typeof value === 'string' && value !== '' ? value : null)
  const failure: Failure = {
    success: false,
    error: exception?.message ?? error.message,
    error_type: exception?.type ?? error.type,
    line_number: inRunCode ? (details.line as number) : null,
    function_name: inRunCode ? text(details.function) : null,
    stdout: text(details.stdout),
    stderr: text(details.stderr),
  }
  if (!BLOCK_FAULTS.has(error.type)) failure.server_error = true
  return failure
}
