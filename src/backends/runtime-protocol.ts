// The messages between the proxy and a Python runtime (a local worker and the zygote it was
// forked from, or the runtime in an E2B sandbox), declared once: what the proxy sends, and
// what a runtime answers, checked where it arrives. A runtime shares its process with the
// block, so every frame it sends is hostile input: one that does not fit its shape is a
// RuntimeProtocolError naming the field, never a cast. template/runtime/protocol.py is the
// Python twin (the TypedDicts the runtime builds its messages with), and
// test/integration/runtime-protocol.test.ts checks that both declare the same fields.
import { z } from 'zod'
import type { BlockCode } from '../run/block.ts'
import type { OutputFormat, WorkflowContext } from './backend.ts'

/** A frame that decoded but does not fit the protocol: the runtime that sent it is not trusted again. */
export class RuntimeProtocolError extends Error {
  override name = 'RuntimeProtocolError'
}

// --- requests: proxy → runtime ------------------------------------------------------------

/** What a runtime the proxy did not start (an E2B sandbox's server) learns with a block: the deployment's settings. */
export type RuntimeSettings = { cache_size: number; max_capture_bytes: number }

export type LoadRequest = { op: 'load'; hash: string; code: BlockCode } & Partial<RuntimeSettings>
/** `code`: the code of a block the runtime may not hold, loaded first in the same round trip. */
export type RunRequest = {
  op: 'run'
  hash: string
  inputs: Record<string, unknown>
  context: WorkflowContext
  output_format: OutputFormat
  code?: BlockCode
} & Partial<RuntimeSettings>
export type PingRequest = { op: 'ping' }
export type RuntimeRequest = LoadRequest | RunRequest | PingRequest

/** proxy → zygote: fork a worker that proves itself with `token`; end one. */
export type ZygoteRequest =
  | { op: 'spawn'; id: string; token: string; region?: string; region_bytes?: number }
  | { op: 'kill'; id: string }

// --- replies: runtime → proxy, one per request ---------------------------------------------

/** An integer: CBOR integers past 32 bits arrive as BigInt. */
const integer = z
  .union([z.number().int(), z.bigint()], { error: 'expected an integer' })
  .transform(Number)

const captured = {
  stdout: z.string(),
  stderr: z.string(),
  stdout_truncated: z.boolean(),
  stderr_truncated: z.boolean(),
}

/** What a worker adds to any reply when the request left something behind. */
const aftermath = {
  /** Processes the request started that were ended when it finished. */
  stray_processes: integer.optional(),
  /** Why the worker must not serve again (a thread of the block's still runs). */
  retire: z.string().optional(),
}

/** Each phase's duration in milliseconds (load, decode, execute, encode). */
const phaseTimes = z.record(z.string(), z.number())
/** Each phase's wall-clock [start, end] in epoch nanoseconds: they become trace spans. */
const phaseSpans = z.record(z.string(), z.tuple([integer, integer]))

/** A failure as the runtime describes it; every field past `type` and `message` reaches the client as a detail. */
const errorBody = z.object({
  type: z.string(),
  message: z.string(),
  line: z.number().int().nullable().optional(),
  function: z.string().nullable().optional(),
  source: z.string().nullable().optional(),
  snippet: z.string().nullable().optional(),
  traceback: z.string().nullable().optional(),
  /** The user's exception as Python names it (webexec reports the two apart). */
  exception: z.object({ type: z.string(), message: z.string() }).nullable().optional(),
  stdout: z.string().optional(),
  stderr: z.string().optional(),
  stdout_truncated: z.boolean().optional(),
  stderr_truncated: z.boolean().optional(),
})

export const failureReply = z.object({ ok: z.literal(false), error: errorBody, ...aftermath })

export const pingReply = z.object({ ok: z.literal(true), version: z.string(), ...aftermath })

export const loadReply = z.object({
  ok: z.literal(true),
  hash: z.string(),
  /** Blocks the runtime dropped to make room. */
  evicted: z.array(z.string()),
  ...captured,
  timings_ms: phaseTimes,
  /** Absent when the block was already loaded. */
  phases_ns: phaseSpans.optional(),
  ...aftermath,
})

export const runReply = z.object({
  ok: z.literal(true),
  /** Plain values: from a runtime that does not send a finished document (the runtime's own tests). */
  outputs: z.unknown().optional(),
  /** The outputs as one finished CBOR or JSON document in pieces, passed to the client as they are. */
  outputs_document: z
    .object({
      format: z.enum(['cbor', 'json', 'msgpack']),
      pieces: z.array(z.instanceof(Uint8Array)),
    })
    .optional(),
  ...captured,
  debug_traces: z.array(z.record(z.string(), z.unknown())),
  timings_ms: phaseTimes,
  phases_ns: phaseSpans,
  /** The runtime's resident memory after the run: a worker past its mark is recycled. */
  rss_bytes: integer,
  /** The run loaded its block first (its code came with it): what that evicted. */
  loaded: z.object({ evicted: z.array(z.string()), load_ms: z.number() }).optional(),
  ...aftermath,
})

export type FailureReply = z.output<typeof failureReply>
export type PingReply = z.output<typeof pingReply>
export type LoadReply = z.output<typeof loadReply>
export type RunReply = z.output<typeof runReply>

// --- the zygote and its workers -----------------------------------------------------------

/** zygote → proxy: ready once, then a worker's holder forked (`host_pid` as the proxy sees it), or a worker ended. */
export const zygoteEvent = z.discriminatedUnion('op', [
  z.object({ op: z.literal('ready'), pid: z.number().int() }),
  z.object({
    op: z.literal('spawned'),
    id: z.string(),
    pid: z.number().int(),
    host_pid: z.number().int().nullable(),
  }),
  z.object({
    op: z.literal('exited'),
    id: z.string(),
    code: z.number().int().nullable(),
    signal: z.number().int().nullable(),
  }),
])

/** worker → proxy, first on its socket and before any user code: which spawn it is. */
export const workerHello = z.object({
  op: z.literal('hello'),
  id: z.string(),
  token: z.string(),
  pid: z.number().int(),
  host_pid: z.number().int().nullable(),
})

/** A worker on its own pipes (`python -m runtime.worker`), first: it is warm. */
export const workerReady = z.object({
  op: z.literal('ready'),
  version: z.string(),
  pid: z.number().int(),
})

export type ZygoteEvent = z.output<typeof zygoteEvent>

// --- checking ------------------------------------------------------------------------------

/** `frame` as `schema` declares it, or a RuntimeProtocolError saying which fields do not fit. */
export function checkFrame<Schema extends z.ZodType>(
  schema: Schema,
  frame: unknown,
  what: string,
): z.output<Schema> {
  const result = schema.safeParse(frame)
  if (result.success) return result.data
  const issues = result.error.issues
    .slice(0, 3)
    .map((issue) => `${issue.path.join('.') || '(the frame)'}: ${issue.message}`)
  const more =
    result.error.issues.length > issues.length
      ? `; and ${result.error.issues.length - issues.length} more`
      : ''
  throw new RuntimeProtocolError(
    `${what} does not fit the runtime protocol: ${issues.join('; ')}${more}`,
  )
}

const SUCCESS = { load: loadReply, run: runReply, ping: pingReply } as const

/** The runtime's reply to a request of `op`: a failure, or that op's own reply. */
export function checkReply(op: 'load', reply: unknown): LoadReply | FailureReply
export function checkReply(op: 'run', reply: unknown): RunReply | FailureReply
export function checkReply(op: 'ping', reply: unknown): PingReply | FailureReply
export function checkReply(
  op: RuntimeRequest['op'],
  reply: unknown,
): LoadReply | RunReply | PingReply | FailureReply
export function checkReply(
  op: RuntimeRequest['op'],
  reply: unknown,
): LoadReply | RunReply | PingReply | FailureReply {
  const failed = typeof reply === 'object' && reply !== null && 'ok' in reply && reply.ok === false
  return checkFrame(failed ? failureReply : SUCCESS[op], reply, `the runtime's reply to ${op}`)
}
