// What the routes answer, as schemas: the API document (openapi.ts) is generated from these
// and from the request schemas the routes validate with (run/request.ts, interop/webexec).
// The routes type what they send with them, and test/support/contract.ts holds every answer
// of the end-to-end suite to the document, so neither can drift from the server.
import { z } from 'zod'
import { value } from './kinds.ts'

const ms = z.number().nonnegative()

export const runResponse = z
  .object({
    outputs: z.record(z.string(), value).meta({
      description:
        "The block's outputs by name; in a CBOR answer, kinds are tagged CBOR (see each form's description).",
    }),
    stdout: z.string(),
    stderr: z.string(),
    debug_traces: z.array(z.record(z.string(), z.unknown())),
    backend: z.enum(['local', 'e2b']),
    cold_start: z
      .boolean()
      .meta({ description: 'The run paid for a runtime new to its workspace or a block load.' }),
    block_hash: z.string().meta({ description: "The block's cache key (its code's hash)." }),
    timings_ms: z.object({
      queue: ms.meta({ description: 'Waiting for a free worker or sandbox.' }),
      acquire: ms.meta({ description: 'A start or a block load.' }),
      execute: ms.meta({ description: 'The round trip of the run, user code included.' }),
      user_code: ms.optional().meta({ description: "The block's own code." }),
      total: ms,
    }),
  })
  .meta({ id: 'RunResponse' })

/** Every `type` an error body may carry (src/errors.ts). */
export const ERROR_TYPES = [
  'BadRequest',
  'Unauthorized',
  'Forbidden',
  'NotFound',
  'PayloadTooLarge',
  'OutputTooLarge',
  'UnsupportedMediaType',
  'UpgradeRequired',
  'BlockCompileError',
  'BlockRuntimeError',
  'BlockTimeout',
  'Overloaded',
  'WorkerCrashed',
  'InternalError',
  'RemoteBackendFailed',
] as const

export const errorResponse = z
  .object({
    error: z.looseObject({
      type: z.enum(ERROR_TYPES),
      message: z.string(),
      problems: z
        .array(z.string())
        .optional()
        .meta({ description: 'BadRequest: each field that did not fit, with its path.' }),
      path: z
        .string()
        .optional()
        .meta({ description: 'BadRequest: the input that did not fit its kind.' }),
      line: z
        .int()
        .nullable()
        .optional()
        .meta({ description: 'The line in your own code (1 = the first of run_function_code).' }),
      function: z.string().nullable().optional(),
      source: z.string().nullable().optional(),
      snippet: z.string().nullable().optional(),
      traceback: z.string().nullable().optional(),
      stdout: z.string().optional(),
      stderr: z.string().optional(),
    }),
  })
  .meta({ id: 'Error', description: "Every failure, in the request's format." })

export const healthResponse = z.object({ status: z.literal('ok') }).meta({ id: 'Health' })

export const readinessResponse = z
  .object({
    ready: z.boolean(),
    default_backend: z.enum(['local', 'e2b']),
    backends: z.record(
      z.string(),
      z.looseObject({ ready: z.boolean() }).meta({
        description:
          "Without a key, only `ready`; with one (or on a server without keys) the pool's detail.",
      }),
    ),
    shared: z.looseObject({ mode: z.string() }),
  })
  .meta({ id: 'Readiness' })

// --- Roboflow Inference's remote-execution protocol (POST /webexec) ------------------------

export const webexecSuccess = z
  .object({
    success: z.literal(true),
    result: z
      .string()
      .meta({ description: "The outputs as JSON text with Inference's `_type` markers." }),
    stdout: z.string().nullable(),
    stderr: z.string().nullable(),
    execution_time_seconds: z.number().nonnegative(),
    blockgate: z
      .object({
        backend: z.string(),
        cold_start: z.boolean(),
        block_hash: z.string(),
        timings_ms: runResponse.shape.timings_ms,
      })
      .meta({ description: "blockgate's own detail; Inference ignores it." }),
  })
  .meta({ id: 'WebexecSuccess' })

export const webexecFailure = z
  .object({
    success: z.literal(false),
    error: z.string(),
    error_type: z.string(),
    line_number: z.int().nullable(),
    function_name: z.string().nullable(),
    stdout: z.string().nullable(),
    stderr: z.string().nullable(),
    server_error: z
      .literal(true)
      .optional()
      .meta({ description: 'blockgate failed, not the block (Inference resends code only then).' }),
  })
  .meta({ id: 'WebexecFailure' })

export type RunResponse = z.output<typeof runResponse>
export type ErrorResponse = z.output<typeof errorResponse>
export type WebexecSuccess = z.output<typeof webexecSuccess>
export type WebexecFailure = z.output<typeof webexecFailure>
