// The `POST /v1/run` body (README.md, "Run a block"), validated into a RunRequest. Field names follow
// Roboflow's `PythonCode` entity so workflow definitions can be sent as they are.
import { z } from 'zod'
import { decodeKinds, KindError } from '../../serializers/index.ts'
import { BadRequest } from '../errors.ts'
import type { BackendName } from '../backends/backend.ts'
import { blockOf, type Block } from './block.ts'

const required = (what: string) => ({
  error: (issue: { input: unknown }) =>
    issue.input === undefined ? 'is required' : `must be ${what}`,
})

export const pythonName = z
  .string(required('a string'))
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a Python identifier')

/** A tenant's name: runs of different workspaces never share a process. */
export const workspaceName = z
  .string(required('a string'))
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/, 'must be 1-128 letters, digits, "_", "." or "-"')

const codeSchema = z.object(
  {
    run_function_code: z
      .string(required('a string'))
      .refine((s) => s.trim() !== '', 'must not be empty'),
    run_function_name: pythonName.default('run'),
    init_function_code: z.string(required('a string')).nullish(),
    init_function_name: pythonName.default('init'),
    imports: z
      .array(z.string(required('a string')), required('a list of import lines'))
      .default([]),
  },
  required('an object with run_function_code'),
)

// A whole number past what a double holds exactly (JSON's 2147483648 and up arrive as a
// BigInt, CBOR may send 1e20) is as good as "the longest allowed": a requested timeout is
// capped at the configured maximum (BLOCKGATE_MAX_TIMEOUT_MS), so it saturates here and is
// capped below.
function saturate(value: unknown): unknown {
  const limit = Number.MAX_SAFE_INTEGER
  if (typeof value === 'bigint')
    return value > BigInt(limit) ? limit : value < -BigInt(limit) ? -limit : Number(value)
  if (typeof value === 'number' && Number.isInteger(value) && Math.abs(value) > limit)
    return Math.sign(value) * limit
  return value
}

/** The body of POST /v1/run (the API document's `RunRequest`, src/api/openapi.ts). */
export const runRequestSchema = z.object(
  {
    code: codeSchema,
    inputs: z.record(z.string(), z.unknown(), required('an object of named inputs')).default({}),
    backend: z.enum(['local', 'e2b'], required('"local" or "e2b"')).optional(),
    timeout_ms: z
      .preprocess(
        saturate,
        z.number(required('a number')).int('must be a whole number').positive('must be positive'),
      )
      .optional(),
    // Absent: the API key's first workspace, or `default` when runs are anonymous.
    workspace: workspaceName.optional(),
    step_name: z.string(required('a string')).max(256, 'must be at most 256 characters').optional(),
    json_arrays: z.enum(['lists', 'base64'], required('"lists" or "base64"')).default('lists'),
  },
  required('an object'),
)

export interface RunRequest {
  block: Block
  inputs: Record<string, unknown>
  backend: BackendName | undefined
  timeoutMs: number
  workspace: string | undefined
  stepName: string | null
  /** How arrays come back in a JSON response: Roboflow's nested lists, or compact base64. */
  jsonArrays: 'lists' | 'base64'
}

export interface RequestLimits {
  defaultTimeoutMs: number
  maxTimeoutMs: number
}

export function parseRunRequest(body: unknown, limits: RequestLimits): RunRequest {
  const parsed = runRequestSchema.safeParse(body)
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (issue) => `${issue.path.join('.') || 'body'}: ${issue.message}`,
    )
    throw new BadRequest(problems.join('; '), { problems })
  }
  const { code, inputs, backend, timeout_ms, workspace, step_name, json_arrays } = parsed.data
  return {
    block: blockOf({
      run_function_code: code.run_function_code,
      run_function_name: code.run_function_name,
      init_function_code: code.init_function_code ?? null,
      init_function_name: code.init_function_name,
      imports: code.imports,
    }),
    inputs: decodeInputs(inputs),
    backend,
    // A requested timeout is capped by the configured maximum, however large it is.
    timeoutMs: Math.min(timeout_ms ?? limits.defaultTimeoutMs, limits.maxTimeoutMs),
    workspace,
    stepName: step_name ?? null,
    jsonArrays: json_arrays,
  }
}

/** Kinds in a CBOR body become kind values here, validated: a bad one is a 400 naming its path. */
function decodeInputs(inputs: Record<string, unknown>): Record<string, unknown> {
  try {
    return decodeKinds(inputs, 'inputs') as Record<string, unknown>
  } catch (error) {
    if (error instanceof KindError) throw new BadRequest(error.message, { path: error.path })
    throw error
  }
}
