// Run metrics through the same SDK: run duration by backend and outcome, cold starts,
// timeouts, and gauges of queue depth and live runtimes read from the backends' status.
// With no meter provider registered (metrics off), the instruments are the API's no-ops.
import { metrics, type Attributes } from '@opentelemetry/api'
import type { Backend, RunJob, RunOutcome } from '../backends/backend.ts'
import { ATTR, METRIC } from './names.ts'
import { errorType } from './spans.ts'

const meter = () => metrics.getMeter('blockgate')

/** How a run ended, as the `blockgate.outcome` attribute and the audit line name it: `ok`, `block_error`, `timeout`, …. */
export function outcomeLabel(error: unknown): string {
  if (error === undefined) return 'ok'
  const type = errorType(error)
  if (type === 'BlockCompileError' || type === 'BlockRuntimeError') return 'block_error'
  if (type === 'BlockTimeout') return 'timeout'
  if (type === 'Overloaded') return 'overloaded'
  if (type === 'BadRequest' || type === 'OutputTooLarge') return 'bad_request'
  return 'failed'
}

/** The backend, with every run measured: the routes need not know about metrics. */
export function withRunMetrics(backend: Backend): Backend {
  const duration = meter().createHistogram(METRIC.invokeDuration, {
    unit: 's',
    description: 'Run duration, from the backend taking the run to its answer',
  })
  const coldStarts = meter().createCounter(METRIC.coldStarts, {
    description: 'Runs that started a worker or sandbox, or loaded their block',
  })
  const timeouts = meter().createCounter(METRIC.timeouts, {
    description: 'Runs that went past their timeout',
  })
  const record = (startedAt: number, error: unknown, outcome?: RunOutcome) => {
    const attributes: Attributes = {
      [ATTR.backend]: backend.name,
      [ATTR.outcome]: outcomeLabel(error),
    }
    duration.record((performance.now() - startedAt) / 1000, attributes)
    if (outcome?.coldStart) coldStarts.add(1, { [ATTR.backend]: backend.name })
    if (attributes[ATTR.outcome] === 'timeout') timeouts.add(1, { [ATTR.backend]: backend.name })
  }
  return {
    name: backend.name,
    start: () => backend.start(),
    stop: () => backend.stop(),
    status: () => backend.status(),
    async run(job: RunJob): Promise<RunOutcome> {
      const startedAt = performance.now()
      try {
        const outcome = await backend.run(job)
        record(startedAt, undefined, outcome)
        return outcome
      } catch (error) {
        record(startedAt, error)
        throw error
      }
    },
  }
}

/** Gauges read from each backend's status when the SDK collects. */
export function observeBackends(backends: readonly Backend[]): void {
  const queueDepth = meter().createObservableGauge(METRIC.queueDepth, {
    description: 'Runs waiting for a worker or sandbox',
  })
  const live = meter().createObservableGauge(METRIC.liveRuntimes, {
    description: 'Live workers (local) or sandboxes (e2b)',
  })
  queueDepth.addCallback((result) => {
    for (const backend of backends)
      result.observe(backend.status().queued, { [ATTR.backend]: backend.name })
  })
  live.addCallback((result) => {
    for (const backend of backends)
      result.observe(backend.status().live, { [ATTR.backend]: backend.name })
  })
}
