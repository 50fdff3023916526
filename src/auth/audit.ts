// The audit trail: one structured line per run (time, workspace, key id — never the key —,
// block hash, backend, outcome, duration). Lines are queued and written on the next turn
// of the event loop, so a run's answer never waits for the log.
import type { Backend, RunJob, RunOutcome } from '../backends/backend.ts'
import { log } from '../log.ts'
import { outcomeLabel } from '../telemetry/metrics.ts'
import type { Caller } from './caller.ts'

interface AuditEntry {
  time: string
  workspace: string
  key_id: string | null
  block_hash: string
  backend: string
  route: string
  outcome: string
  cold_start?: boolean
  duration_ms: number
}

export class AuditLog {
  private pending: AuditEntry[] = []

  constructor(
    private readonly write: (entry: AuditEntry) => void = (entry) => log.info('run', { ...entry }),
  ) {}

  /** Runs `job` on `backend` and records how it went, whether it answered or threw. */
  async run(backend: Backend, job: RunJob, caller: Caller, route: string): Promise<RunOutcome> {
    const time = new Date().toISOString()
    const startedAt = performance.now()
    const entry = (outcome: string, cold?: boolean): AuditEntry => ({
      time,
      workspace: job.workspace,
      key_id: caller?.id ?? null,
      block_hash: job.block.hash,
      backend: backend.name,
      route,
      outcome,
      ...(cold === undefined ? {} : { cold_start: cold }),
      duration_ms: Math.round((performance.now() - startedAt) * 1000) / 1000,
    })
    try {
      const outcome = await backend.run(job)
      this.record(entry('ok', outcome.coldStart))
      return outcome
    } catch (error) {
      this.record(entry(outcomeLabel(error)))
      throw error
    }
  }

  private record(entry: AuditEntry): void {
    this.pending.push(entry)
    if (this.pending.length === 1) setImmediate(() => this.flush())
  }

  flush(): void {
    for (const entry of this.pending.splice(0)) this.write(entry)
  }
}
