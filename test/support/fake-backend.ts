// A Backend double for API-layer tests: records each job and answers with what the
// test scripted, so routes can be tested without Python.
import type { Backend, BackendStatus, RunJob, RunOutcome } from '../../src/backends/backend.ts'

export class FakeBackend implements Backend {
  readonly name = 'local' as const
  readonly jobs: RunJob[] = []
  ready = true

  constructor(
    private readonly answer: (job: RunJob) => RunOutcome | Promise<RunOutcome> = echoInputs,
  ) {}

  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  status(): BackendStatus {
    return { ready: this.ready, queued: 0, live: 0, by_workspace: {} }
  }
  async run(job: RunJob): Promise<RunOutcome> {
    this.jobs.push(job)
    return this.answer(job)
  }
}

function echoInputs(job: RunJob): RunOutcome {
  return {
    outputs: { echoed: job.inputs },
    stdout: '',
    stderr: '',
    debugTraces: [],
    coldStart: false,
    timings: { queue: 0, acquire: 0, execute: 0 },
  }
}
