// Span, attribute and metric names. They are published (README.md, "Traces and metrics"):
// dashboards and tests find spans by them, so they do not change. The `sandbox.*` spans name
// the lifecycle of any runtime a run uses, a local worker as much as an E2B sandbox (init is
// the block's load, execute the run, release or kill its end); `worker.spawn` and
// `sandbox.create` are the two ways of starting one. Stable semantic conventions come from
// the package; incubating ones are written here, as the package advises, so an upgrade cannot
// rename them under us.

export const SPAN = {
  decode: 'blockgate.decode',
  acquire: 'blockgate.acquire',
  workerSpawn: 'worker.spawn',
  sandboxCreate: 'sandbox.create',
  init: 'sandbox.init',
  execute: 'sandbox.execute',
  encode: 'blockgate.encode',
  release: 'sandbox.release',
  kill: 'sandbox.kill',
  /** Inference's websocket transport: one span per connection, one per request under it. */
  socketConnection: 'blockgate.webexec.connection',
  socketRequest: 'blockgate.webexec.request',
} as const

/** A call to the deployment's Redis, by operation: `blockgate.redis.quota_admit`, …. */
export const redisSpan = (op: string) => `blockgate.redis.${op}`

/** Spans the runtime reports from inside a worker or sandbox, by its phase names. */
export const runtimePhaseSpan = (phase: string) => `runtime.${phase}`

/** A warm run's runtime phase, in milliseconds, as an attribute of its `sandbox.execute` span. */
export const runtimePhaseAttribute = (phase: string) => `blockgate.runtime.${phase}_ms`

export const ATTR = {
  // Incubating semantic conventions (faas.*, process.*).
  coldStart: 'faas.coldstart',
  invocationId: 'faas.invocation_id',
  processPid: 'process.pid',
  // blockgate's own.
  backend: 'blockgate.backend',
  workspace: 'blockgate.workspace',
  /** The API key's id, never the key. */
  keyId: 'blockgate.key.id',
  blockHash: 'blockgate.block.hash',
  stepName: 'blockgate.step_name',
  runtimeId: 'blockgate.runtime.id',
  inputBytes: 'blockgate.input.bytes',
  outputBytes: 'blockgate.output.bytes',
  timeoutMs: 'blockgate.timeout_ms',
  queueMs: 'blockgate.queue_ms',
  exitReason: 'blockgate.exit_reason',
  outcome: 'blockgate.outcome',
  inlineInit: 'blockgate.init.inline',
  attempt: 'blockgate.attempt',
  requestId: 'blockgate.webexec.request_id',
  closeCode: 'blockgate.webexec.close_code',
  messages: 'blockgate.webexec.messages',
} as const

export const METRIC = {
  // Incubating semantic conventions.
  invokeDuration: 'faas.invoke_duration',
  coldStarts: 'faas.coldstarts',
  timeouts: 'faas.timeouts',
  // blockgate's own.
  queueDepth: 'blockgate.queue.depth',
  liveRuntimes: 'blockgate.runtimes.live',
  /** 1 while Redis is configured but not answering. */
  sharedDegraded: 'blockgate.shared.degraded',
  redisErrors: 'blockgate.redis.errors',
  quotaRejections: 'blockgate.quota.rejections',
  registrySize: 'blockgate.e2b.registry.size',
  leasesTakenOver: 'blockgate.e2b.leases.taken_over',
} as const
