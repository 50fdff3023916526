// Entry point: read the config, warm the backends, serve HTTP, drain on SIGTERM.
import { createApp } from './app.ts'
import { warmPlayground } from './playground/route.ts'
import type { Backends } from './backends/backend.ts'
import { ConfigError, isLoopback, loadConfig, type Config } from './config.ts'
import { BadRequest } from './errors.ts'
import { OpenSockets, websocketHandler } from './http/websocket.ts'
import { createBackends } from './backends/index.ts'
import { log, setLogLevel } from './log.ts'
import { sharedStateFor } from './shared/redis.ts'
import { observeBackends, withRunMetrics } from './telemetry/metrics.ts'
import { startTelemetry } from './telemetry/setup.ts'

/**
 * The request with an absolute URL. HTTP/1.0 allows a request without a `Host` header (and
 * an HTTP/1.1 client may send an empty or malformed one): Bun then gives the request a bare
 * path (or an unparsable URL) as its URL, which the router cannot read. Such a request is
 * read as addressed to this server, whose own address completes its URL; a 400 when even
 * its path is not a URL path.
 */
function addressedHere(request: Request, origin: URL): Request | Response {
  if (URL.canParse(request.url)) return request
  const path = request.url.replace(/^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/, '')
  if (path.startsWith('/') && URL.canParse(path, origin.href)) {
    // The new request reads the same body stream and follows the client's abort signal.
    return new Request(new URL(path, origin).href, request)
  }
  const error = new BadRequest(
    `request target: ${JSON.stringify(request.url.slice(0, 200))} is not a URL or a path on this server (and the Host header does not make it one)`,
  )
  return Response.json(error.toBody(), { status: error.status })
}

/** Every backend's runs measured (duration, cold starts, timeouts), and its gauges observed. */
function withMetrics(backends: Backends): Backends {
  const measured: Backends = {}
  for (const [name, backend] of Object.entries(backends) as [
    keyof Backends,
    NonNullable<Backends[keyof Backends]>,
  ][])
    measured[name] = withRunMetrics(backend)
  observeBackends(Object.values(backends))
  return measured
}

async function main(): Promise<void> {
  let config: Config
  try {
    config = loadConfig()
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    console.error(`blockgate: ${error.message}`)
    process.exit(2)
  }

  setLogLevel(config.logLevel)
  // Telemetry first, so the backends' first spans and instruments are real ones.
  const telemetry = startTelemetry(config.telemetry)
  // Redis (when configured) before the backends: the E2B pool's registry lives there. A Redis
  // that does not answer yet leaves the instance degraded, serving on its own state.
  const shared = sharedStateFor(config.shared)
  await shared?.start()
  let backends: Backends
  try {
    backends = withMetrics(createBackends(config, shared))
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    console.error(`blockgate: ${error.message}`)
    process.exit(2)
  }
  if (config.local.allowUnsandboxed)
    log.warn(
      'ISOLATION IS OFF: BLOCKGATE_ALLOW_UNSANDBOXED is set; user code runs without bubblewrap, namespaces or seccomp',
    )
  const startedAt = performance.now()
  try {
    await Promise.all(Object.values(backends).map((backend) => backend.start()))
  } catch (error) {
    console.error(`blockgate: a backend could not start: ${(error as Error).message}`)
    await Promise.allSettled(Object.values(backends).map((backend) => backend.stop()))
    await telemetry.shutdown()
    process.exit(2)
  }
  log.info('backends ready', {
    backends: Object.keys(backends),
    default_backend: config.defaultBackend,
    local_workers: backends.local
      ? { min_warm: config.local.minWarm, max: config.local.maxWorkers }
      : 'off',
    isolation: backends.local ? (config.local.allowUnsandboxed ? 'off' : 'sandboxed') : undefined,
    e2b: config.e2b
      ? {
          mode: config.e2b.mode,
          template: config.e2b.templateId,
          max_sandboxes: config.e2b.maxSandboxes,
        }
      : 'off (no E2B_API_KEY)',
    telemetry: telemetry.enabled ? 'OTLP export on' : 'off (no OTEL_EXPORTER_OTLP_ENDPOINT)',
    shared: shared ? shared.status() : 'off (no BLOCKGATE_REDIS_URL)',
    ms: Math.round(performance.now() - startedAt),
  })

  const sockets = new OpenSockets()
  const app = createApp({ config, backends, shared, sockets })
  const server = Bun.serve({
    port: config.port,
    hostname: config.host,
    fetch: (request, server) => {
      const addressed = addressedHere(request, server.url)
      return addressed instanceof Response ? addressed : app.fetch(addressed, server)
    },
    // Hono's bodyLimit gives the precise 413; this only stops Bun buffering far beyond it.
    maxRequestBodySize: config.limits.maxBodyBytes + 1024 * 1024,
    // The routes that upgrade (GET /webexec/ws) hand their sockets to this.
    websocket: websocketHandler,
  })
  // A port the OS picked (PORT=0) is known only from this line: shown whatever the log level.
  if (config.port === 0) log.always('listening', { url: server.url.href })
  else log.info('listening', { url: server.url.href })
  if (config.playground.enabled) {
    log.info('playground', { url: `${server.url.href}playground` })
    warmPlayground() // its script bundled now, not on the first visit
  }
  if (config.auth.keys.size > 0) log.info('API keys required', { keys: config.auth.keys.size })
  else if (isLoopback(config.host))
    log.warn(
      'no API keys configured: listening on loopback only; anyone who can reach this port can run code',
      { host: config.host },
    )
  else
    log.warn(
      'OPEN BIND WITHOUT API KEYS: BLOCKGATE_ALLOW_OPEN_BIND is set; anyone who can reach this address can run code',
      { host: config.host },
    )

  let stopping = false
  const shutdown = async (signal: string) => {
    if (stopping) return
    stopping = true
    log.info('draining', { signal })
    // Websocket clients are told `closing` between requests (they resend on another instance);
    // a socket's run in flight finishes first, as an HTTP request's does.
    await Promise.all([
      sockets.closeAll(config.limits.maxTimeoutMs + 5_000),
      server.stop(false), // stop accepting; let in-flight requests finish
    ])
    await Promise.all(Object.values(backends).map((backend) => backend.stop()))
    shared?.stop()
    await telemetry.shutdown() // the last spans and metrics go out before the process ends
    log.info('stopped')
    process.exit(0)
  }
  process.on('SIGTERM', () => void shutdown('SIGTERM'))
  process.on('SIGINT', () => void shutdown('SIGINT'))
}

if (import.meta.main) await main()
