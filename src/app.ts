// Routes only: parse → run → respond. Everything a route can fail with is a typed
// BlockgateError, turned into a `{ error }` body by the one onError below.
import { Hono, type Context } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { HTTPException } from 'hono/http-exception'
import type { BackendStatus, OutputFormat } from './backends/backend.ts'
import type { Config } from './config.ts'
import {
  BadRequest,
  BlockgateError,
  InternalError,
  NotFound,
  PayloadTooLarge,
  RuntimeReportedError,
} from './errors.ts'
import { registerDocs } from './api/docs.ts'
import { registerPlayground } from './playground/route.ts'
import type { RunResponse } from './api/schemas.ts'
import { encodeBody, readBody, responseFormat } from './http/wire.ts'
import { registerWebexec } from './interop/webexec/http.ts'
import { WebexecRunner } from './interop/webexec/run.ts'
import { registerWebexecSocket } from './interop/webexec/ws/route.ts'
import { blockText, log } from './log.ts'
import { trace } from '@opentelemetry/api'
import { AuditLog } from './auth/audit.ts'
import {
  callerOf,
  checkBodySize,
  identifyCaller,
  presentedKey,
  timeoutFor,
  workspaceFor,
  type CallerEnv,
} from './auth/caller.ts'
import { KeyRing, type ApiKey } from './auth/keys.ts'
import { Quotas } from './auth/quotas.ts'
import type { SharedState } from './shared/redis.ts'
import { traceRequests } from './telemetry/http.ts'
import { OpenSockets } from './http/websocket.ts'
import { ATTR, SPAN } from './telemetry/names.ts'
import { inSpan } from './telemetry/spans.ts'
import { parseRunRequest } from './run/request.ts'
import type { Backends } from './backends/backend.ts'
import { pickBackend } from './run/router.ts'

export interface AppOptions {
  config: Pick<Config, 'defaultBackend' | 'limits'> &
    Partial<Pick<Config, 'workspaceBackends' | 'webexec' | 'auth' | 'playground' | 'telemetry'>>
  backends: Backends
  /** The deployment's Redis (quotas and the /webexec code cache are shared through it); none by default. */
  shared?: SharedState | null
  /** Where the audit trail goes (the structured log unless a test listens). */
  audit?: AuditLog
  /** The server's websocket connections (GET /webexec/ws), which a drain closes between requests. */
  sockets?: OpenSockets
}

function send(
  c: Context,
  status: number,
  value: unknown,
  headers: Record<string, string> = {},
  onSize?: (bytes: number) => void,
): Response {
  const { body, contentType } = encodeBody(value, responseFormat(c.req.raw))
  onSize?.(
    typeof body === 'string'
      ? Buffer.byteLength(body)
      : body instanceof Blob
        ? body.size
        : body.byteLength,
  )
  return new Response(body, { status, headers: { ...headers, 'content-type': contentType } })
}

/** `send`, inside the `blockgate.encode` span: the response body is assembled here. */
function sendTraced(c: Context, status: number, value: unknown): Promise<Response> {
  return inSpan(SPAN.encode, {}, async (span) =>
    send(
      c,
      status,
      value,
      {},
      span.isRecording() ? (bytes) => span.setAttribute(ATTR.outputBytes, bytes) : undefined,
    ),
  )
}

export function createApp({
  config,
  backends,
  shared = null,
  audit = new AuditLog(),
  sockets = new OpenSockets(),
}: AppOptions): Hono<CallerEnv> {
  const app = new Hono<CallerEnv>()
  const keys = config.auth?.keys ?? KeyRing.empty()
  const quotas = new Quotas(shared)

  app.get('/healthz', (c) => send(c, 200, { status: 'ok' }))

  // Health checks are often reachable from outside: without a key, readiness says ready or
  // not per backend; the pools' detail needs a key (or a server without keys, loopback-only),
  // and a key sees only its own workspaces in it.
  app.get('/readyz', (c) => {
    const statuses = Object.fromEntries(
      Object.entries(backends).map(([name, backend]) => [name, backend.status()]),
    )
    const ready = statuses[config.defaultBackend]?.ready === true
    const viewer = keys.size === 0 ? 'anonymous' : presentedKey(c.req.raw.headers, keys)
    return send(c, ready ? 200 : 503, {
      ready,
      default_backend: config.defaultBackend,
      backends: readinessFor(statuses, viewer),
      // Serving either way; "degraded": Redis is configured and not answering, so quotas,
      // the sandbox registry and the code cache are this instance's own until it does.
      shared:
        shared === null
          ? { mode: 'off' }
          : viewer === null
            ? { mode: shared.status().mode }
            : shared.status(),
    })
  })

  // Every run route gets its server span first, so the trace covers the whole request.
  for (const route of ['/v1/run', '/webexec']) app.use(route, traceRequests(route))
  // Then who is calling: a key (when keys are configured) and a quota slot held for the request.
  app.use('/v1/run', identifyCaller(keys, quotas))
  app.use('/webexec', identifyCaller(keys, quotas, { modalPair: true }))

  app.post(
    '/v1/run',
    bodyLimit({
      maxSize: config.limits.maxBodyBytes,
      onError: () => {
        throw new PayloadTooLarge(
          `body: larger than the ${config.limits.maxBodyBytes}-byte limit (BLOCKGATE_MAX_BODY_BYTES)`,
        )
      },
    }),
    async (c) => {
      const startedAt = performance.now()
      const caller = callerOf(c)
      const request = await inSpan(SPAN.decode, {}, async (span) => {
        const body = await readBody(c.req.raw, (bytes) => {
          span.setAttribute(ATTR.inputBytes, bytes)
          checkBodySize(caller, bytes)
        })
        return parseRunRequest(body, config.limits)
      })
      const workspace = workspaceFor(caller, request.workspace)
      trace.getActiveSpan()?.setAttributes({
        [ATTR.workspace]: workspace,
        [ATTR.blockHash]: request.block.hash,
        ...(caller ? { [ATTR.keyId]: caller.id } : {}),
      })
      const backend = pickBackend(request.backend, workspace, backends, config)
      const outcome = await audit.run(
        backend,
        {
          block: request.block,
          inputs: request.inputs,
          workspace,
          keyId: caller?.id,
          timeoutMs: timeoutFor(caller, request.timeoutMs),
          outputFormat: outputFormat(responseFormat(c.req.raw), request.jsonArrays),
          signal: c.req.raw.signal,
          context: {
            step_name: request.stepName,
            step_selector: request.stepName === null ? null : `$steps.${request.stepName}`,
            block_type: 'custom_python_block',
            workflow_execution_id: crypto.randomUUID(),
          },
        },
        caller,
        '/v1/run',
      )
      return sendTraced(c, 200, {
        outputs: outcome.outputs,
        stdout: outcome.stdout,
        stderr: outcome.stderr,
        debug_traces: outcome.debugTraces,
        backend: backend.name,
        cold_start: outcome.coldStart,
        block_hash: request.block.hash,
        timings_ms: { ...outcome.timings, total: performance.now() - startedAt },
      } satisfies Omit<RunResponse, 'outputs'> & { outputs: unknown })
    },
  )

  // Roboflow Inference's remote-execution protocol, on the same run path as /v1/run
  // (README.md, "Use blockgate from Roboflow Inference").
  // Both of its transports: HTTP (POST /webexec) and websocket (GET /webexec/ws), one code cache.
  if (config.webexec) {
    const runner = new WebexecRunner({
      config: { ...config, webexec: config.webexec },
      backends,
      audit,
      shared,
    })
    registerWebexec(app, runner, { maxBodyBytes: config.limits.maxBodyBytes })
    registerWebexecSocket(app, {
      runner,
      sockets,
      keys,
      quotas,
      limits: config.webexec.socket,
      maxBodyBytes: config.limits.maxBodyBytes,
    })
  }

  // The API's own description: GET /openapi.json and its reference page, GET /docs.
  registerDocs(app)
  // A page to try blocks in (on by default on loopback: BLOCKGATE_PLAYGROUND).
  if (config.playground?.enabled)
    registerPlayground(app, {
      keysRequired: keys.size > 0,
      backends: Object.keys(backends),
      defaultBackend: config.defaultBackend,
      tracing: config.telemetry?.enabled ?? false,
      traceUrlTemplate: config.playground.traceUrlTemplate,
    })

  app.notFound((c) => {
    const error = new NotFound(`no route for ${c.req.method} ${new URL(c.req.url).pathname}`)
    return send(c, error.status, error.toBody())
  })

  app.onError((thrown, c) => {
    const error = asBlockgateError(thrown)
    // What the runtime reported is the block's text: a warning in its own field, not blockgate's error.
    if (error instanceof RuntimeReportedError)
      log.warn('request failed in the runtime', { block_error: blockText(error.message) })
    else if (error.status >= 500 && error instanceof InternalError)
      log.error('request failed', { error: thrown })
    return send(c, error.status, error.toBody(), error.headers)
  })

  return app
}

function outputFormat(wire: 'json' | 'cbor', jsonArrays: 'lists' | 'base64'): OutputFormat {
  if (wire === 'cbor') return 'cbor'
  return jsonArrays === 'base64' ? 'json-compact' : 'json'
}

function asBlockgateError(thrown: unknown): BlockgateError {
  if (thrown instanceof BlockgateError) return thrown
  if (thrown instanceof HTTPException) {
    return thrown.status < 500
      ? new BadRequest(thrown.message)
      : new InternalError(thrown.message, thrown)
  }
  return new InternalError('an unexpected error occurred inside blockgate', thrown)
}

/**
 * What /readyz shows of each backend's status to `viewer`: with no key, whether it is ready;
 * an anonymous caller of a server without keys sees the detail but no workspace names; a key
 * sees the detail with the workspaces it holds.
 */
function readinessFor(
  statuses: Record<string, BackendStatus>,
  viewer: ApiKey | 'anonymous' | null,
): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(statuses).map(([name, { by_workspace: byWorkspace, ...status }]) => {
      if (viewer === null) return [name, { ready: status.ready }]
      if (viewer === 'anonymous') return [name, status]
      const own = Object.entries(byWorkspace).filter(([workspace]) =>
        viewer.workspaces.includes(workspace),
      )
      return [name, { ...status, by_workspace: Object.fromEntries(own) }]
    }),
  )
}
