// What both of Inference's remote-execution transports share (HTTP, http.ts; websocket,
// ws/): the request's fields, the code cache, the run on the /v1/run path (same backends,
// limits, tenants and audit), and the answers in the shapes Inference's client raises from.
// The transports differ only in how inputs arrive and how the result is written.
import { z } from 'zod'
import type { WebexecFailure } from '../../api/schemas.ts'
import { decodeKinds, KindError } from '../../../serializers/index.ts'
import type { AuditLog } from '../../auth/audit.ts'
import { timeoutFor, type Caller } from '../../auth/caller.ts'
import type {
  Backend,
  Backends,
  OutputFormat,
  RunOutcome,
  WorkflowContext,
} from '../../backends/backend.ts'
import type { Config } from '../../config.ts'
import { BadRequest, BlockgateError, InternalError, RuntimeReportedError } from '../../errors.ts'
import { blockText, log } from '../../log.ts'
import { blockOf, type Block } from '../../run/block.ts'
import { pythonName } from '../../run/request.ts'
import { pickBackend } from '../../run/router.ts'
import type { SharedState } from '../../shared/redis.ts'
import { CodeCache, inferenceCodeHash } from '../code-cache.ts'
import { SharedCodeCache } from '../shared-code-cache.ts'

/** The fields every webexec request has, whichever transport carries it. */
export const callFields = {
  code_hash: z.string().nullish(),
  run_function_name: pythonName,
  workflow_context: z.record(z.string(), z.unknown()).nullish(),
  code_str: z.string().nullish(),
  imports: z.array(z.string()).nullish(),
}
const callSchema = z.object(callFields)
export type WebexecCall = z.output<typeof callSchema>

/** A run that failed, in Inference's shape (the document's `WebexecFailure`). */
export type Failure = WebexecFailure

/** What a run gave, for the transport to write; or why it was not run (the block did not start). */
export type Execution =
  | { ran: true; outcome: RunOutcome; backend: Backend; block: Block }
  | { ran: false; failure: Failure }

// Failures the block itself caused; any other failure is blockgate's (`server_error`).
const BLOCK_FAULTS = new Set([
  'BlockCompileError',
  'BlockRuntimeError',
  'BlockTimeout',
  'WorkerCrashed',
  'OutputTooLarge',
])

export interface WebexecRunnerOptions {
  config: Pick<Config, 'defaultBackend' | 'limits' | 'webexec'> &
    Partial<Pick<Config, 'workspaceBackends'>>
  backends: Backends
  audit: AuditLog
  /** The deployment's Redis: code hashes one instance saw are known to all. */
  shared?: SharedState | null
}

export interface RunOptions {
  /** Inputs as the transport read them; `_type` markers are left for the runtime. */
  inputs: unknown
  /** Where the inputs were in the request, for error messages: `inputs_json` (HTTP) or `inputs`. */
  inputsField: string
  workspace: string
  caller: Caller
  outputFormat: OutputFormat
  route: string
  signal?: AbortSignal
}

/** One per app: both transports run through it and share its code cache. */
export class WebexecRunner {
  private readonly codes: SharedCodeCache

  constructor(private readonly options: WebexecRunnerOptions) {
    this.codes = new SharedCodeCache(
      new CodeCache(options.config.webexec.codeCacheBytes),
      options.shared ?? null,
    )
  }

  async execute(call: WebexecCall, run: RunOptions): Promise<Execution> {
    const { config, backends, audit } = this.options
    if (!call.code_str && !call.code_hash)
      return notRun('InvalidRequest', 'the request has neither code_str nor code_hash')
    let inputs: Record<string, unknown>
    try {
      inputs = inputsOf(run.inputs, run.inputsField)
    } catch (error) {
      if (!(error instanceof BadRequest)) throw error
      return notRun(error.type, error.message)
    }
    const sent = call.code_str ? { code: call.code_str, imports: call.imports ?? [] } : null
    // Kept under the hash of what was sent, whatever hash the client named, as Modal does.
    const remembering =
      sent && this.codes.remember(run.workspace, inferenceCodeHash(sent.code, sent.imports), sent)
    const code = sent ?? (await this.codes.recall(run.workspace, call.code_hash!))
    if (!code) {
      return notRun(
        'UnknownCodeHash',
        `no code is held for hash ${JSON.stringify(call.code_hash)} in workspace ${run.workspace}; send code_str`,
      )
    }
    // Inference sends only run_function_code (as code_str): an `init` defined there is found
    // by name and run once per loaded block, as Inference does locally.
    const block = blockOf({
      run_function_code: code.code,
      run_function_name: call.run_function_name,
      init_function_code: null,
      init_function_name: 'init',
      imports: code.imports,
    })
    const backend = pickBackend(undefined, run.workspace, backends, config)
    const job = {
      block,
      inputs,
      workspace: run.workspace,
      keyId: run.caller?.id,
      context: contextOf(call.workflow_context),
      timeoutMs: timeoutFor(run.caller, config.limits.defaultTimeoutMs),
      outputFormat: run.outputFormat,
      signal: run.signal,
    }
    // Stored in Redis while the block runs, and waited for: once Inference has the answer, every
    // instance knows the hash, wherever its next request lands.
    const outcome = await audit.run(backend, job, run.caller, run.route).finally(() => remembering)
    return { ran: true, outcome, backend, block }
  }
}

/** The run's inputs with the server's depth and size caps applied; markers stay for the runtime. */
function inputsOf(inputs: unknown, field: string): Record<string, unknown> {
  if (inputs === null || typeof inputs !== 'object' || Array.isArray(inputs))
    throw new BadRequest(`${field}: must be a map of named inputs`)
  try {
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

function notRun(errorType: string, message: string): Execution {
  return { ran: false, failure: serverFailure(errorType, message) }
}

/** A failure that is blockgate's, not the block's. */
export function serverFailure(errorType: string, message: string): Failure {
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
export function failureOf(thrown: unknown): Failure {
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

/** What Inference bills the block by: the user's function when the runtime measured it. */
export const executionSeconds = (outcome: RunOutcome): number =>
  (outcome.timings.user_code ?? outcome.timings.execute) / 1000
