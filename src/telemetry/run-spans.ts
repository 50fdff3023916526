// The spans every backend opens around a run, the same way: acquiring a runtime, and
// handing it back or killing it. (A cold start's worker.spawn or sandbox.create is an
// inSpan inside the acquire.)
import type { Attributes } from '@opentelemetry/api'
import type { BackendName, RunJob } from '../backends/backend.ts'
import { ATTR, SPAN } from './names.ts'
import { inSpan, mark } from './spans.ts'

export interface Acquired {
  /** A runtime was started for this run (spawned, created, or a fresh spare). */
  cold: boolean
  runtimeId: string
  waitedMs: number
}

/** `blockgate.acquire` around getting a runtime for `job`. */
export function traceAcquire<T>(
  backend: BackendName,
  job: RunJob,
  acquire: () => Promise<T>,
  describe: (acquired: T) => Acquired,
): Promise<T> {
  const attributes: Attributes = {
    [ATTR.backend]: backend,
    [ATTR.workspace]: job.workspace,
    [ATTR.blockHash]: job.block.hash,
  }
  return inSpan(SPAN.acquire, attributes, async (span) => {
    const acquired = await acquire()
    const { cold, runtimeId, waitedMs } = describe(acquired)
    span.setAttributes({
      [ATTR.coldStart]: cold,
      [ATTR.runtimeId]: runtimeId,
      [ATTR.queueMs]: Math.round(waitedMs * 1000) / 1000,
    })
    return acquired
  })
}

/** `sandbox.release` when the runtime goes back to the pool, `sandbox.kill` (with why) when it does not. */
export function traceEnd(runtimeId: string, kept: boolean, exitReason?: string): void {
  if (kept) mark(SPAN.release, { [ATTR.runtimeId]: runtimeId })
  else mark(SPAN.kill, { [ATTR.runtimeId]: runtimeId, [ATTR.exitReason]: exitReason ?? 'error' })
}
