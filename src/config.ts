// Every environment variable blockgate reads, with its default, validated once at start.
// The rest of the app receives a Config. One exception reads process.env itself:
// backends/local/worker.ts passes the host's OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE on to
// workers as they are (a CPU quirk of the machine, not a setting of blockgate's).
import { availableParallelism, hostname } from 'node:os'
import { resolve } from 'node:path'
import { z } from 'zod'
import {
  CODE_INTERPRETER_TEMPLATE,
  defaultTemplateId,
  RUNTIME_DEFAULTS,
  runtimeVersion,
} from './runtime-template.ts'
import type { TelemetryConfig } from './telemetry/setup.ts'
import type { SharedConfig } from './shared/redis.ts'
import { keyFileSchema, KeyRing } from './auth/keys.ts'
import { readFileSync } from 'node:fs'
import { LOG_LEVELS, type LogLevel } from './log.ts'

export const PROJECT_ROOT = resolve(import.meta.dir, '..')

const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`))

const flag = z
  .enum(['0', '1', 'true', 'false'], { error: 'must be 1/true or 0/false' })
  .transform((v) => v === '1' || v === 'true')
const optionalText = z.string().trim().min(1).optional()
const url = z.url({ error: 'must be a URL' }).optional()

/** `acme=e2b,beta=local`: workspaces whose runs go to a given backend unless the request names one. */
const workspacePolicy = z
  .string()
  .trim()
  .transform((text, ctx) => {
    const policy: Record<string, 'local' | 'e2b'> = {}
    for (const entry of text
      .split(',')
      .map((e) => e.trim())
      .filter(Boolean)) {
      const [workspace, backend] = entry.split('=').map((part) => part.trim())
      if (!workspace || (backend !== 'local' && backend !== 'e2b')) {
        ctx.addIssue({
          code: 'custom',
          message: `"${entry}" is not workspace=local or workspace=e2b`,
        })
        return z.NEVER
      }
      policy[workspace] = backend
    }
    return policy
  })

/** Root traces kept when OTEL_TRACES_SAMPLER is not set (see src/telemetry/setup.ts). */
const DEFAULT_TRACE_SAMPLE_RATIO = 0.1

const executionMode = z
  .enum(['local', 'remote', 'e2b'], { error: 'must be one of local, remote, e2b' })
  .transform((mode) => (mode === 'remote' ? 'e2b' : mode))

/** One row per variable: its schema and default. The README's table mirrors this list. */
const variables = {
  PORT: int(0, 65535).default(8000), // 0: the OS picks a free port (the `listening` log line names it)
  HOST: z.string().trim().min(1, 'must not be empty').default('127.0.0.1'),
  BLOCKGATE_LOG_LEVEL: z
    .enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` })
    .default('info'),
  WORKFLOWS_CUSTOM_PYTHON_EXECUTION_MODE: executionMode.default('local'),
  BLOCKGATE_MIN_WARM_WORKERS: int(0, 256).default(2),
  BLOCKGATE_MAX_WORKERS: int(1, 1024).default(Math.max(4, 2 * availableParallelism())),
  BLOCKGATE_MAX_QUEUE: int(0).default(256),
  // Defaults derived from the pool's size and the queue's bound, below.
  BLOCKGATE_TENANT_MAX_WORKERS: int(1, 1024).optional(),
  BLOCKGATE_TENANT_MAX_QUEUE: int(0).optional(),
  BLOCKGATE_WORKER_MAX_RUNS: int(1).default(10_000),
  BLOCKGATE_WORKER_MAX_RSS_BYTES: int(64 * 1024 * 1024).default(1536 * 1024 * 1024),
  BLOCKGATE_MEMORY_LIMIT_BYTES: int(256 * 1024 * 1024).default(2 * 1024 * 1024 * 1024),
  BLOCKGATE_CPU_LIMIT_SECONDS: int(1).default(3600),
  BLOCKGATE_PROCESS_LIMIT: int(1).default(64),
  BLOCKGATE_FILE_SIZE_LIMIT_BYTES: int(0).default(64 * 1024 * 1024),
  BLOCKGATE_OPEN_FILES_LIMIT: int(16).default(256),
  BLOCKGATE_WORKER_CPU_CORES: z
    .string()
    .trim()
    .regex(/^\d+(\.\d+)?$/, 'must be a positive number')
    .transform(Number)
    .pipe(z.number().min(0.01, 'must be at least 0.01'))
    .default(1),
  BLOCKGATE_CGROUPS: z
    .enum(['auto', 'required', 'off'], { error: 'must be auto, required or off' })
    .default('auto'),
  BLOCKGATE_ALLOW_UNSANDBOXED: flag.default(false),
  BLOCKGATE_PYTHON: z
    .string()
    .trim()
    .min(1, 'must not be empty')
    .default(resolve(PROJECT_ROOT, '.venv/bin/python')),
  BLOCKGATE_MAX_BODY_BYTES: int(1024).default(64 * 1024 * 1024),
  BLOCKGATE_DEFAULT_TIMEOUT_MS: int(1).default(10_000),
  BLOCKGATE_MAX_TIMEOUT_MS: int(1).default(60_000),
  BLOCKGATE_MAX_CAPTURE_BYTES: int(0).default(RUNTIME_DEFAULTS.maxCaptureBytes),
  BLOCKGATE_BLOCK_CACHE_SIZE: int(1, RUNTIME_DEFAULTS.maxBlockCacheSize).default(
    RUNTIME_DEFAULTS.blockCacheSize,
  ),
  BLOCKGATE_WORKER_START_TIMEOUT_MS: int(100).default(60_000),
  BLOCKGATE_QUEUE_TIMEOUT_MS: int(1).default(30_000),
  BLOCKGATE_WORKSPACE_BACKENDS: workspacePolicy.default({}),
  BLOCKGATE_API_KEYS_FILE: optionalText,
  BLOCKGATE_API_KEYS: optionalText,
  BLOCKGATE_ALLOW_OPEN_BIND: flag.default(false),
  // GET /playground: unset, on when HOST is loopback.
  BLOCKGATE_PLAYGROUND: flag.optional(),
  // A link from a run to its trace, `{trace_id}` replaced (Jaeger: http://host:16686/trace/{trace_id}).
  BLOCKGATE_TRACE_URL_TEMPLATE: z
    .string()
    .trim()
    .refine((text) => text.includes('{trace_id}'), 'must contain {trace_id}')
    .optional(),
  BLOCKGATE_WEBEXEC_CODE_CACHE_BYTES: int(0).default(32 * 1024 * 1024),
  // Inference's websocket transport (GET /webexec/ws): what the server advertises and allows.
  BLOCKGATE_WEBEXEC_WS_IDLE_TIMEOUT_S: int(1, 300).default(10),
  BLOCKGATE_WEBEXEC_WS_MAX_CONNECTION_S: int(1).default(600),
  BLOCKGATE_WEBEXEC_WS_MAX_CONNECTIONS: int(1).default(1024),
  BLOCKGATE_WEBEXEC_WS_MAX_CONNECTIONS_PER_KEY: int(1).default(64),
  // OpenTelemetry: the standard variables. These decide whether telemetry starts; the SDK
  // itself reads the rest of OTEL_* (sampler, batch sizes, headers, resource attributes).
  OTEL_EXPORTER_OTLP_ENDPOINT: url,
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: url,
  OTEL_EXPORTER_OTLP_PROTOCOL: z
    .literal('http/protobuf', { error: 'only http/protobuf is supported' })
    .optional(),
  OTEL_SDK_DISABLED: z
    .enum(['true', 'false'], { error: 'must be true or false' })
    .default('false')
    .transform((v) => v === 'true'),
  OTEL_SERVICE_NAME: z.string().trim().min(1, 'must not be empty').default('blockgate'),
  OTEL_METRIC_EXPORT_INTERVAL: int(100).default(60_000),
  // Only whether it is set: the SDK reads it (and OTEL_TRACES_SAMPLER_ARG) itself.
  OTEL_TRACES_SAMPLER: optionalText,
  E2B_API_KEY: optionalText,
  E2B_API_URL: url,
  E2B_SANDBOX_URL: url,
  E2B_DOMAIN: optionalText,
  E2B_TEMPLATE_ID: optionalText,
  E2B_SANDBOX_TIMEOUT: int(10, 86_400).default(300),
  E2B_SANDBOX_IDLE_TIMEOUT: int(5, 86_400).default(60),
  // E2B's plan caps a sandbox's lifetime: Hobby 1 h, Pro 24 h. Past it, E2B refuses the create.
  BLOCKGATE_E2B_PLAN_MAX_LIFETIME: int(10, 86_400).default(3600),
  BLOCKGATE_E2B_MODE: z
    .enum(['template', 'code-interpreter'], { error: 'must be template or code-interpreter' })
    .default('template'),
  BLOCKGATE_E2B_MIN_WARM: int(0, 100).default(0),
  BLOCKGATE_E2B_MAX_SANDBOXES: int(1, 10_000).default(20),
  BLOCKGATE_E2B_TENANT_MAX_SANDBOXES: int(1, 10_000).optional(),
  BLOCKGATE_E2B_MAX_QUEUE: int(0).default(256),
  BLOCKGATE_E2B_CREATES_PER_SECOND: z
    .string()
    .trim()
    .regex(/^\d+(\.\d+)?$/, 'must be a positive number')
    .transform(Number)
    .pipe(z.number().positive('must be a positive number'))
    .default(1),
  BLOCKGATE_E2B_CREATE_RETRIES: int(0, 20).default(3),
  BLOCKGATE_E2B_ALLOW_INTERNET: flag.default(false),
  BLOCKGATE_REDIS_URL: z
    .url({
      protocol: /^(redis|rediss|valkey|valkeys)$/,
      error: 'must be a redis://, rediss://, valkey:// or valkeys:// URL',
    })
    .optional(),
  BLOCKGATE_REDIS_TIMEOUT_MS: int(1, 10_000).default(100),
  BLOCKGATE_REDIS_LEASE_MS: int(1000, 3_600_000).default(15_000),
  BLOCKGATE_SHARED_CODE_CACHE_BYTES: int(0).default(8 * 1024 * 1024),
  BLOCKGATE_DEPLOYMENT_ID: z
    .string()
    .trim()
    .regex(/^[\w.-]{1,64}$/, 'must be 1-64 letters, digits, dots, dashes or underscores')
    .default(
      hostname()
        .replace(/[^\w.-]/g, '-')
        .slice(0, 64) || 'blockgate',
    ),
} as const

/** Values never echoed in an error message: they hold credentials. */
const SECRET_VARIABLES: ReadonlySet<string> = new Set(['E2B_API_KEY', 'BLOCKGATE_REDIS_URL'])

type Variables = typeof variables
export type VariableName = keyof Variables
export const VARIABLE_NAMES = Object.keys(variables) as VariableName[]

export interface Config {
  port: number
  host: string
  logLevel: LogLevel
  defaultBackend: 'local' | 'e2b'
  local: {
    minWarm: number
    maxWorkers: number
    maxQueue: number
    /** Workers one tenant (an API key, else a workspace) may hold at once; its further runs wait for one of its own. */
    tenantMaxWorkers: number
    /** Runs of one tenant waiting at most; beyond it that tenant's runs are refused with 429. */
    tenantMaxQueue: number
    maxRunsPerWorker: number
    maxRssBytes: number
    python: string
    runtimeDir: string
    blockCacheSize: number
    maxCaptureBytes: number
    startTimeoutMs: number
    limits: {
      memoryBytes: number
      cpuSeconds: number
      processes: number
      fileSizeBytes: number
      openFiles: number
      cpuCores: number
    }
    /** A cgroup per worker: where the machine allows it (auto), always (required), or never. */
    cgroups: 'auto' | 'required' | 'off'
    /** Run without bubblewrap: only when asked for explicitly. */
    allowUnsandboxed: boolean
  }
  /** Where each workspace's runs go when the request does not say. */
  workspaceBackends: Record<string, 'local' | 'e2b'>
  /** Null when no E2B_API_KEY is set: the e2b backend is then off. */
  e2b: E2BConfig | null
  /** Roboflow Inference's remote-execution endpoint (POST /webexec). */
  webexec: WebexecConfig
  /** What instances of one deployment share through Redis (nothing without BLOCKGATE_REDIS_URL). */
  shared: SharedConfig
  /** GET /playground, and where its trace links go. */
  playground: { enabled: boolean; traceUrlTemplate: string | null }
  /** API keys; an empty ring means anonymous runs, on a loopback-only bind. */
  auth: { keys: KeyRing; openBind: boolean }
  telemetry: TelemetryConfig
  limits: {
    maxBodyBytes: number
    defaultTimeoutMs: number
    maxTimeoutMs: number
    queueTimeoutMs: number
  }
}

export interface E2BConfig {
  apiKey: string
  /** The SDK's own connection settings; unset means E2B's cloud. */
  apiUrl?: string
  sandboxUrl?: string
  domain?: string
  mode: 'template' | 'code-interpreter'
  templateId: string
  /** Hard lifetime of a sandbox, from its creation. */
  lifetimeMs: number
  /** A sandbox unused this long is killed. */
  idleMs: number
  /** The longest E2B's plan keeps a sandbox, from its start: a longer timeout is clamped (set_timeout) or refused (create). */
  planMaxLifetimeMs: number
  minWarm: number
  maxSandboxes: number
  /** Sandboxes one tenant may hold at once. */
  tenantMaxSandboxes: number
  /** Runs waiting for a sandbox at most, all tenants together and per tenant; beyond them a run is refused with 429. */
  maxQueue: number
  tenantMaxQueue: number
  /** Blocks each sandbox's runtime keeps loaded (BLOCKGATE_BLOCK_CACHE_SIZE, as for workers). */
  blockCacheSize: number
  /** stdout and stderr each sandbox's runtime keeps per run (BLOCKGATE_MAX_CAPTURE_BYTES, as for workers). */
  maxCaptureBytes: number
  createsPerSecond: number
  createRetries: number
  allowInternet: boolean
  /** Tags this deployment's sandboxes, so a restart can find and kill what it left behind. */
  deploymentId: string
}

export interface WebexecConfig {
  /** Code remembered per (workspace, code hash) so hash-only requests run, in bytes of code. */
  codeCacheBytes: number
  /** The websocket transport (GET /webexec/ws). */
  socket: {
    /** Advertised in the handshake: a connection silent this long between requests is closed. */
    idleTimeoutS: number
    /** A connection is closed (between requests) once this old; the client reconnects. */
    maxConnectionS: number
    /** Open connections this process holds at most, and per API key (per workspace without keys). */
    maxConnections: number
    maxConnectionsPerKey: number
  }
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

/** Reads and validates the environment; throws ConfigError naming every bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const problems: string[] = []
  const read = <K extends VariableName>(name: K): z.output<Variables[K]> => {
    const raw = env[name]
    const parsed = variables[name].safeParse(raw === '' ? undefined : raw)
    if (parsed.success) return parsed.data as z.output<Variables[K]>
    const shown = SECRET_VARIABLES.has(name) ? '(secret, not shown)' : JSON.stringify(raw)
    problems.push(`${name}=${shown}: ${parsed.error.issues.map((i) => i.message).join('; ')}`)
    return undefined as never
  }
  const values = Object.fromEntries(VARIABLE_NAMES.map((name) => [name, read(name)])) as {
    [K in VariableName]: z.output<Variables[K]>
  }
  if (
    problems.length === 0 &&
    values.BLOCKGATE_DEFAULT_TIMEOUT_MS > values.BLOCKGATE_MAX_TIMEOUT_MS
  ) {
    problems.push('BLOCKGATE_DEFAULT_TIMEOUT_MS: must not exceed BLOCKGATE_MAX_TIMEOUT_MS')
  }
  if (problems.length === 0 && values.BLOCKGATE_MIN_WARM_WORKERS > values.BLOCKGATE_MAX_WORKERS) {
    problems.push('BLOCKGATE_MIN_WARM_WORKERS: must not exceed BLOCKGATE_MAX_WORKERS')
  }
  // A tenant's share: half the pool (so two tenants fit side by side), at least one.
  const tenantMaxWorkers =
    values.BLOCKGATE_TENANT_MAX_WORKERS ?? Math.max(1, Math.floor(values.BLOCKGATE_MAX_WORKERS / 2))
  const tenantMaxSandboxes =
    values.BLOCKGATE_E2B_TENANT_MAX_SANDBOXES ??
    Math.max(1, Math.floor(values.BLOCKGATE_E2B_MAX_SANDBOXES / 2))
  // A tenant's waiting runs: a quarter of the queue, at least one (unless the queue holds none).
  const quarterOf = (queue: number) => Math.min(queue, Math.max(1, Math.floor(queue / 4)))
  const tenantMaxQueue = values.BLOCKGATE_TENANT_MAX_QUEUE ?? quarterOf(values.BLOCKGATE_MAX_QUEUE)
  if (problems.length === 0 && tenantMaxWorkers > values.BLOCKGATE_MAX_WORKERS) {
    problems.push('BLOCKGATE_TENANT_MAX_WORKERS: must not exceed BLOCKGATE_MAX_WORKERS')
  }
  if (problems.length === 0 && tenantMaxSandboxes > values.BLOCKGATE_E2B_MAX_SANDBOXES) {
    problems.push('BLOCKGATE_E2B_TENANT_MAX_SANDBOXES: must not exceed BLOCKGATE_E2B_MAX_SANDBOXES')
  }
  if (problems.length === 0 && tenantMaxQueue > values.BLOCKGATE_MAX_QUEUE) {
    problems.push('BLOCKGATE_TENANT_MAX_QUEUE: must not exceed BLOCKGATE_MAX_QUEUE')
  }
  if (problems.length === 0 && !values.E2B_API_KEY) {
    if (values.WORKFLOWS_CUSTOM_PYTHON_EXECUTION_MODE === 'e2b') {
      problems.push(
        `WORKFLOWS_CUSTOM_PYTHON_EXECUTION_MODE=${env.WORKFLOWS_CUSTOM_PYTHON_EXECUTION_MODE}: remote execution needs E2B_API_KEY, which is not set`,
      )
    }
    const remote = Object.keys(values.BLOCKGATE_WORKSPACE_BACKENDS).filter(
      (w) => values.BLOCKGATE_WORKSPACE_BACKENDS[w] === 'e2b',
    )
    if (remote.length > 0)
      problems.push(
        `BLOCKGATE_WORKSPACE_BACKENDS: sends ${remote.join(', ')} to e2b, which needs E2B_API_KEY, which is not set`,
      )
  }
  if (
    problems.length === 0 &&
    values.E2B_SANDBOX_TIMEOUT > values.BLOCKGATE_E2B_PLAN_MAX_LIFETIME
  ) {
    problems.push(
      `E2B_SANDBOX_TIMEOUT=${values.E2B_SANDBOX_TIMEOUT}: E2B's plan keeps a sandbox ${values.BLOCKGATE_E2B_PLAN_MAX_LIFETIME} s at most (BLOCKGATE_E2B_PLAN_MAX_LIFETIME: 3600 on Hobby, 86400 on Pro), and refuses a longer one`,
    )
  }
  if (problems.length === 0 && values.E2B_SANDBOX_IDLE_TIMEOUT > values.E2B_SANDBOX_TIMEOUT) {
    problems.push('E2B_SANDBOX_IDLE_TIMEOUT: must not exceed E2B_SANDBOX_TIMEOUT')
  }
  const keys =
    problems.length === 0
      ? readKeys(values.BLOCKGATE_API_KEYS_FILE, values.BLOCKGATE_API_KEYS, problems)
      : KeyRing.empty()
  if (
    problems.length === 0 &&
    keys.size === 0 &&
    !isLoopback(values.HOST) &&
    !values.BLOCKGATE_ALLOW_OPEN_BIND
  ) {
    problems.push(
      `HOST=${values.HOST}: with no API keys (BLOCKGATE_API_KEYS_FILE) anyone who reaches the server could run code, so it binds to loopback only; configure keys, or set BLOCKGATE_ALLOW_OPEN_BIND=1 to bind ${values.HOST} without them`,
    )
  }
  if (problems.length > 0)
    throw new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}`)

  return {
    port: values.PORT,
    host: values.HOST,
    logLevel: values.BLOCKGATE_LOG_LEVEL,
    defaultBackend: values.WORKFLOWS_CUSTOM_PYTHON_EXECUTION_MODE,
    local: {
      minWarm: values.BLOCKGATE_MIN_WARM_WORKERS,
      maxWorkers: values.BLOCKGATE_MAX_WORKERS,
      maxQueue: values.BLOCKGATE_MAX_QUEUE,
      tenantMaxWorkers,
      tenantMaxQueue,
      maxRunsPerWorker: values.BLOCKGATE_WORKER_MAX_RUNS,
      maxRssBytes: values.BLOCKGATE_WORKER_MAX_RSS_BYTES,
      limits: {
        memoryBytes: values.BLOCKGATE_MEMORY_LIMIT_BYTES,
        cpuSeconds: values.BLOCKGATE_CPU_LIMIT_SECONDS,
        processes: values.BLOCKGATE_PROCESS_LIMIT,
        fileSizeBytes: values.BLOCKGATE_FILE_SIZE_LIMIT_BYTES,
        openFiles: values.BLOCKGATE_OPEN_FILES_LIMIT,
        cpuCores: values.BLOCKGATE_WORKER_CPU_CORES,
      },
      cgroups: values.BLOCKGATE_CGROUPS,
      allowUnsandboxed: values.BLOCKGATE_ALLOW_UNSANDBOXED,
      python: values.BLOCKGATE_PYTHON,
      runtimeDir: resolve(PROJECT_ROOT, 'template'),
      blockCacheSize: values.BLOCKGATE_BLOCK_CACHE_SIZE,
      maxCaptureBytes: values.BLOCKGATE_MAX_CAPTURE_BYTES,
      startTimeoutMs: values.BLOCKGATE_WORKER_START_TIMEOUT_MS,
    },
    workspaceBackends: values.BLOCKGATE_WORKSPACE_BACKENDS,
    e2b: values.E2B_API_KEY
      ? {
          apiKey: values.E2B_API_KEY,
          apiUrl: values.E2B_API_URL,
          sandboxUrl: values.E2B_SANDBOX_URL,
          domain: values.E2B_DOMAIN,
          mode: values.BLOCKGATE_E2B_MODE,
          templateId:
            values.E2B_TEMPLATE_ID ??
            (values.BLOCKGATE_E2B_MODE === 'code-interpreter'
              ? CODE_INTERPRETER_TEMPLATE
              : defaultTemplateId()),
          lifetimeMs: values.E2B_SANDBOX_TIMEOUT * 1000,
          idleMs: values.E2B_SANDBOX_IDLE_TIMEOUT * 1000,
          planMaxLifetimeMs: values.BLOCKGATE_E2B_PLAN_MAX_LIFETIME * 1000,
          minWarm: values.BLOCKGATE_E2B_MIN_WARM,
          maxSandboxes: values.BLOCKGATE_E2B_MAX_SANDBOXES,
          tenantMaxSandboxes,
          maxQueue: values.BLOCKGATE_E2B_MAX_QUEUE,
          // The tenant bound is one setting for both backends, within each one's queue.
          tenantMaxQueue: Math.min(
            values.BLOCKGATE_E2B_MAX_QUEUE,
            values.BLOCKGATE_TENANT_MAX_QUEUE ?? quarterOf(values.BLOCKGATE_E2B_MAX_QUEUE),
          ),
          blockCacheSize: values.BLOCKGATE_BLOCK_CACHE_SIZE,
          maxCaptureBytes: values.BLOCKGATE_MAX_CAPTURE_BYTES,
          createsPerSecond: values.BLOCKGATE_E2B_CREATES_PER_SECOND,
          createRetries: values.BLOCKGATE_E2B_CREATE_RETRIES,
          allowInternet: values.BLOCKGATE_E2B_ALLOW_INTERNET,
          deploymentId: values.BLOCKGATE_DEPLOYMENT_ID,
        }
      : null,
    telemetry: {
      enabled:
        !values.OTEL_SDK_DISABLED &&
        Boolean(values.OTEL_EXPORTER_OTLP_ENDPOINT || values.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT),
      serviceName: values.OTEL_SERVICE_NAME,
      serviceVersion: runtimeVersion(),
      metricIntervalMs: values.OTEL_METRIC_EXPORT_INTERVAL,
      defaultSampleRatio: values.OTEL_TRACES_SAMPLER ? null : DEFAULT_TRACE_SAMPLE_RATIO,
    },
    auth: { keys, openBind: values.BLOCKGATE_ALLOW_OPEN_BIND },
    playground: {
      enabled: values.BLOCKGATE_PLAYGROUND ?? isLoopback(values.HOST),
      traceUrlTemplate: values.BLOCKGATE_TRACE_URL_TEMPLATE ?? null,
    },
    webexec: {
      codeCacheBytes: values.BLOCKGATE_WEBEXEC_CODE_CACHE_BYTES,
      socket: {
        idleTimeoutS: values.BLOCKGATE_WEBEXEC_WS_IDLE_TIMEOUT_S,
        maxConnectionS: values.BLOCKGATE_WEBEXEC_WS_MAX_CONNECTION_S,
        maxConnections: values.BLOCKGATE_WEBEXEC_WS_MAX_CONNECTIONS,
        maxConnectionsPerKey: values.BLOCKGATE_WEBEXEC_WS_MAX_CONNECTIONS_PER_KEY,
      },
    },
    shared: {
      redisUrl: values.BLOCKGATE_REDIS_URL ?? null,
      deploymentId: values.BLOCKGATE_DEPLOYMENT_ID,
      timeoutMs: values.BLOCKGATE_REDIS_TIMEOUT_MS,
      leaseMs: values.BLOCKGATE_REDIS_LEASE_MS,
      codeCacheWorkspaceBytes: values.BLOCKGATE_SHARED_CODE_CACHE_BYTES,
    },
    limits: {
      maxBodyBytes: values.BLOCKGATE_MAX_BODY_BYTES,
      defaultTimeoutMs: values.BLOCKGATE_DEFAULT_TIMEOUT_MS,
      maxTimeoutMs: values.BLOCKGATE_MAX_TIMEOUT_MS,
      queueTimeoutMs: values.BLOCKGATE_QUEUE_TIMEOUT_MS,
    },
  }
}

/** Addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  return (
    host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host)
  )
}

/** The API keys from BLOCKGATE_API_KEYS_FILE or BLOCKGATE_API_KEYS (the same JSON inline). */
function readKeys(
  file: string | undefined,
  inline: string | undefined,
  problems: string[],
): KeyRing {
  if (file && inline) {
    problems.push('BLOCKGATE_API_KEYS_FILE, BLOCKGATE_API_KEYS: set one of them, not both')
    return KeyRing.empty()
  }
  const name = file ? 'BLOCKGATE_API_KEYS_FILE' : 'BLOCKGATE_API_KEYS'
  let text = inline
  if (file) {
    try {
      text = readFileSync(resolve(file), 'utf8')
    } catch (error) {
      problems.push(
        `BLOCKGATE_API_KEYS_FILE=${JSON.stringify(file)}: cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
      )
      return KeyRing.empty()
    }
  }
  if (text === undefined) return KeyRing.empty()
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    problems.push(`${name}: not JSON (${(error as Error).message})`)
    return KeyRing.empty()
  }
  const parsed = keyFileSchema.safeParse(json)
  if (!parsed.success) {
    problems.push(
      `${name}: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ')}`,
    )
    return KeyRing.empty()
  }
  try {
    return KeyRing.from(parsed.data)
  } catch (error) {
    problems.push(`${name}: ${(error as Error).message}`)
    return KeyRing.empty()
  }
}
