// What both backends do with a runtime once they hold one: load the block unless the
// runtime already has it, run it, and turn the runtime's reply into an outcome or a
// typed error. The runtime is a local worker or a remote sandbox; the protocol is the same.
import { OutputsDocument, type RunJob, type RunOutcome } from './backend.ts'
import { BadRequest, BlockCodeError, BlockgateError, OutputTooLarge, RuntimeReportedError } from '../errors.ts'
import { ATTR, runtimePhaseSpan, SPAN } from '../telemetry/names.ts'
import { inSpan, pastSpan } from '../telemetry/spans.ts'

/** What every runtime reply carries; ops add their own fields. */
export interface RuntimeReply {
  ok: boolean
  error?: { type: string; message: string } & Record<string, unknown>
  [field: string]: unknown
}

/** A Python runtime that answers one request at a time, whatever carries the frames. */
export interface BlockRuntime {
  /** Block hashes the runtime holds, mirrored from its load/evict replies. */
  readonly loaded: Set<string>
  request(message: Record<string, unknown>, timeoutMs: number): Promise<RuntimeReply>
}

export interface SessionResult {
  reply: RuntimeReply
  /** True when the block had to be loaded first. */
  loadedBlock: boolean
  /** When the load (if any) ended and the run began. */
  runStartedAt: number
}

/**
 * Loads (if needed) and runs `job` on `runtime` before `deadline` (a performance.now() time).
 * With `inlineLoad`, a block the runtime lacks travels with the run itself: one round trip
 * instead of two, for runtimes across a network. `cacheSize` travels with it to a runtime
 * that blockgate did not start with its settings (an E2B sandbox's server).
 */
export async function runBlock(runtime: BlockRuntime, job: RunJob, deadline: number, { inlineLoad = false, cacheSize }: { inlineLoad?: boolean; cacheSize?: number } = {}): Promise<SessionResult> {
  let loadedBlock = false
  for (let attempt = 0; ; attempt++) {
    const missing = !runtime.loaded.has(job.block.hash)
    if (missing && !inlineLoad) {
      loadedBlock = true
      await loadBlock(runtime, job, deadline)
    }
    const runStartedAt = performance.now()
    const message: Record<string, unknown> = { op: 'run', hash: job.block.hash, inputs: job.inputs, context: job.context, output_format: job.outputFormat }
    if (missing && inlineLoad) {
      message.code = job.block.code
      if (cacheSize !== undefined) message.cache_size = cacheSize
    }
    const reply = await inSpan(SPAN.execute, { [ATTR.timeoutMs]: Math.round(remaining(deadline)) }, async (span) => {
      const sentAt = wallClockMs()
      const reply = await runtime.request(message, remaining(deadline))
      if (span.isRecording()) addRuntimePhases(reply, sentAt, wallClockMs())
      // The runtime may have evicted the block since our mirror last heard: load again once.
      if (isUnknownBlock(reply) && attempt === 0) return reply
      if (!reply.ok) throw blockError(reply)
      return reply
    })
    if (isUnknownBlock(reply)) {
      runtime.loaded.delete(job.block.hash)
      continue
    }
    const loadedNow = reply.loaded as { evicted?: string[] } | undefined
    if (loadedNow) {
      loadedBlock = true
      noteLoaded(runtime, job.block.hash, loadedNow.evicted)
    }
    return { reply, loadedBlock, runStartedAt }
  }
}

async function loadBlock(runtime: BlockRuntime, job: RunJob, deadline: number): Promise<void> {
  await inSpan(SPAN.init, { [ATTR.blockHash]: job.block.hash }, async (span) => {
    const sentAt = wallClockMs()
    const reply = await runtime.request({ op: 'load', hash: job.block.hash, code: job.block.code }, remaining(deadline))
    if (span.isRecording()) addRuntimePhases(reply, sentAt, wallClockMs())
    if (!reply.ok) throw blockError(reply)
    noteLoaded(runtime, job.block.hash, reply.evicted as string[] | undefined)
  })
}

/** Epoch milliseconds with sub-millisecond precision (Date.now() has whole milliseconds only). */
const wallClockMs = () => performance.timeOrigin + performance.now()

const isUnknownBlock = (reply: RuntimeReply) => !reply.ok && reply.error?.type === 'UnknownBlock'

/**
 * The runtime's own phases (decode, load, execute, encode) as child spans, by the wall-clock
 * times it reported, kept inside the request's own interval (a remote clock may be skewed).
 * A block loaded in the same request also gets its `sandbox.init` span.
 */
function addRuntimePhases(reply: RuntimeReply, sentAtMs: number, answeredAtMs: number): void {
  const phases = reply.phases_ns as Record<string, [number, number]> | undefined
  if (!phases || typeof phases !== 'object') return
  const clamp = (ms: number) => Math.min(answeredAtMs, Math.max(sentAtMs, ms))
  for (const [phase, times] of Object.entries(phases)) {
    if (!Array.isArray(times) || times.length !== 2) continue
    const [start, end] = [clamp(Number(times[0]) / 1e6), clamp(Number(times[1]) / 1e6)]
    if (phase === 'load' && reply.loaded) pastSpan(SPAN.init, start, end, { [ATTR.inlineInit]: true })
    pastSpan(runtimePhaseSpan(phase), start, end)
  }
}

function noteLoaded(runtime: BlockRuntime, hash: string, evicted: string[] = []): void {
  runtime.loaded.add(hash)
  for (const gone of evicted) runtime.loaded.delete(gone)
}

/** When a run was queued and got its runtime, and whether that runtime was started for it. */
export interface Acquisition {
  queuedAt: number
  acquiredAt: number
  waitedMs: number
  started: boolean
}

/** The run's outcome from its session, timed from queueing to the reply. */
export function outcomeOf({ reply, loadedBlock, runStartedAt }: SessionResult, acquisition: Acquisition): RunOutcome {
  const { queuedAt, acquiredAt, waitedMs, started } = acquisition
  return {
    outputs: outputsOf(reply),
    stdout: String(reply.stdout ?? ''),
    stderr: String(reply.stderr ?? ''),
    debugTraces: Array.isArray(reply.debug_traces) ? reply.debug_traces : [],
    coldStart: started || loadedBlock,
    timings: {
      queue: waitedMs,
      // Starting a runtime (outside the wait) and loading the block.
      acquire: acquiredAt - queuedAt - waitedMs + (runStartedAt - acquiredAt),
      execute: performance.now() - runStartedAt,
      user_code: userCodeMs(reply),
    },
  }
}

function outputsOf(reply: RuntimeReply): unknown {
  const document = reply.outputs_document as { format: 'cbor' | 'json'; pieces: Uint8Array[] } | undefined
  return document ? new OutputsDocument(document.format, document.pieces) : reply.outputs
}

/** The block's own run time as the runtime measured it. */
export function userCodeMs(reply: RuntimeReply): number {
  return (reply.timings_ms as { execute?: number } | undefined)?.execute ?? 0
}

export function remaining(deadline: number): number {
  return Math.max(1, deadline - performance.now())
}

/** The runtime's failure as a typed error; a type we do not map stays the runtime's (and so the block's) word. */
export function blockError(reply: RuntimeReply): BlockgateError {
  const { type = 'InternalError', message = 'the runtime gave no message', ...details } = reply.error ?? {}
  if (type === 'BlockCompileError' || type === 'BlockRuntimeError') return new BlockCodeError(type, message, details)
  if (type === 'OutputTooLarge') return new OutputTooLarge(message)
  if (type === 'InvalidInput') return new BadRequest(message)
  return new RuntimeReportedError(String(type), String(message))
}
