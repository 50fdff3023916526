// What both backends do with a runtime once they hold one: load the block unless the
// runtime already has it, run it, and turn the runtime's reply into an outcome or a
// typed error. The runtime is a local worker or a remote sandbox; the protocol is the same
// (runtime-protocol.ts), and each reply is checked against it here, before a field is read.
import { OutputsDocument, type RunJob, type RunOutcome } from './backend.ts'
import {
  BadRequest,
  BlockCodeError,
  type BlockgateError,
  OutputTooLarge,
  RuntimeReportedError,
} from '../errors.ts'
import { ATTR, runtimePhaseAttribute, runtimePhaseSpan, SPAN } from '../telemetry/names.ts'
import { inSpan, pastSpan } from '../telemetry/spans.ts'
import {
  checkReply,
  type FailureReply,
  type LoadReply,
  type RunReply,
  type RunRequest,
  type RuntimeSettings,
  type RuntimeRequest,
} from './runtime-protocol.ts'

/**
 * A runtime's answer as its transport delivered it: one decoded frame, not yet trusted.
 * runBlock checks it against the reply of the op it sent (checkReply) before reading it.
 */
export type RuntimeReply = unknown

/** A Python runtime that answers one request at a time, whatever carries the frames. */
export interface BlockRuntime {
  /** Block hashes the runtime holds, mirrored from its load/evict replies. */
  readonly loaded: Set<string>
  request(message: RuntimeRequest, timeoutMs: number): Promise<RuntimeReply>
}

export interface SessionResult {
  reply: RunReply
  /** True when the block had to be loaded first. */
  loadedBlock: boolean
  /** When the load (if any) ended and the run began. */
  runStartedAt: number
}

/**
 * Loads (if needed) and runs `job` on `runtime` before `deadline` (a performance.now() time).
 * With `inlineLoad`, a block the runtime lacks travels with the run itself: one round trip
 * instead of two, for runtimes across a network. `settings` travel with it to a runtime
 * that blockgate did not start with its settings (an E2B sandbox's server).
 */
export async function runBlock(
  runtime: BlockRuntime,
  job: RunJob,
  deadline: number,
  { inlineLoad = false, settings }: { inlineLoad?: boolean; settings?: RuntimeSettings } = {},
): Promise<SessionResult> {
  let loadedBlock = false
  for (let attempt = 0; ; attempt++) {
    const missing = !runtime.loaded.has(job.block.hash)
    if (missing && !inlineLoad) {
      loadedBlock = true
      await loadBlock(runtime, job, deadline)
    }
    const runStartedAt = performance.now()
    const message: RunRequest = {
      op: 'run',
      hash: job.block.hash,
      inputs: job.inputs,
      context: job.context,
      output_format: job.outputFormat,
    }
    if (missing && inlineLoad) {
      Object.assign(message, { code: job.block.code, ...settings })
    }
    const reply = await inSpan(
      SPAN.execute,
      { [ATTR.timeoutMs]: Math.round(remaining(deadline)) },
      async (span) => {
        const sentAt = wallClockMs()
        const reply = checkReply('run', await runtime.request(message, remaining(deadline)))
        if (span.isRecording() && reply.ok) {
          // A cold run's phases are spans (they explain a slow first result); a warm run's
          // are attributes of this span: six spans a warm run, not nine (tracing's cost).
          if (loadedBlock || reply.loaded) addRuntimePhases(reply, sentAt, wallClockMs())
          else
            for (const [phase, ms] of Object.entries(reply.timings_ms))
              span.setAttribute(runtimePhaseAttribute(phase), ms)
        }
        // The runtime may have evicted the block since our mirror last heard: load again once.
        if (isUnknownBlock(reply) && attempt === 0) return reply
        if (!reply.ok) throw blockError(reply)
        return reply
      },
    )
    if (!reply.ok) {
      // The block was unknown: forget it and load it again.
      runtime.loaded.delete(job.block.hash)
      continue
    }
    if (reply.loaded) {
      loadedBlock = true
      noteLoaded(runtime, job.block.hash, reply.loaded.evicted)
    }
    return { reply, loadedBlock, runStartedAt }
  }
}

async function loadBlock(runtime: BlockRuntime, job: RunJob, deadline: number): Promise<void> {
  await inSpan(SPAN.init, { [ATTR.blockHash]: job.block.hash }, async (span) => {
    const sentAt = wallClockMs()
    const reply = checkReply(
      'load',
      await runtime.request(
        { op: 'load', hash: job.block.hash, code: job.block.code },
        remaining(deadline),
      ),
    )
    if (!reply.ok) throw blockError(reply)
    if (span.isRecording()) addRuntimePhases(reply, sentAt, wallClockMs())
    noteLoaded(runtime, job.block.hash, reply.evicted)
  })
}

/** Epoch milliseconds with sub-millisecond precision (Date.now() has whole milliseconds only). */
const wallClockMs = () => performance.timeOrigin + performance.now()

const isUnknownBlock = (reply: RunReply | FailureReply) =>
  !reply.ok && reply.error.type === 'UnknownBlock'

/**
 * The runtime's own phases (decode, load, execute, encode) as child spans, by the wall-clock
 * times it reported, kept inside the request's own interval (a remote clock may be skewed).
 * A block loaded in the same request also gets its `sandbox.init` span.
 */
function addRuntimePhases(
  reply: RunReply | LoadReply,
  sentAtMs: number,
  answeredAtMs: number,
): void {
  const clamp = (ms: number) => Math.min(answeredAtMs, Math.max(sentAtMs, ms))
  const loadedInline = 'loaded' in reply && reply.loaded !== undefined
  for (const [phase, [startNs, endNs]] of Object.entries(reply.phases_ns ?? {})) {
    const [start, end] = [clamp(startNs / 1e6), clamp(endNs / 1e6)]
    if (phase === 'load' && loadedInline)
      pastSpan(SPAN.init, start, end, { [ATTR.inlineInit]: true })
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
export function outcomeOf(
  { reply, loadedBlock, runStartedAt }: SessionResult,
  acquisition: Acquisition,
): RunOutcome {
  const { queuedAt, acquiredAt, waitedMs, started } = acquisition
  return {
    outputs: outputsOf(reply),
    stdout: reply.stdout,
    stderr: reply.stderr,
    debugTraces: reply.debug_traces,
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

function outputsOf(reply: RunReply): unknown {
  const document = reply.outputs_document
  return document ? new OutputsDocument(document.format, document.pieces) : reply.outputs
}

/** The block's own run time as the runtime measured it. */
function userCodeMs(reply: RunReply): number {
  return reply.timings_ms.execute ?? 0
}

function remaining(deadline: number): number {
  return Math.max(1, deadline - performance.now())
}

/** The runtime's failure as a typed error; a type we do not map stays the runtime's (and so the block's) word. */
export function blockError(reply: FailureReply): BlockgateError {
  const { type, message, ...details } = reply.error
  if (type === 'BlockCompileError' || type === 'BlockRuntimeError')
    return new BlockCodeError(type, message, details)
  if (type === 'OutputTooLarge') return new OutputTooLarge(message)
  if (type === 'InvalidInput') return new BadRequest(message)
  return new RuntimeReportedError(type, message)
}
