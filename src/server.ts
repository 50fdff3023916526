// Entry point: read the config, warm the backends, serve HTTP, drain on SIGTERM.
import { createApp } from './app.ts'
import type { Backends } from './run/router.ts'
import { ConfigError, loadConfig, type Config } from './config.ts'
import { LocalPool } from './backends/local/pool.ts'
import { log } from './log.ts'

/** Frames between proxy and worker carry a body's inputs or a block's outputs, plus headroom. */
export const frameLimitFor = (config: Config) => config.limits.maxBodyBytes + 1024 * 1024

export function createBackends(config: Config): Backends {
  return {
    local: new LocalPool({
      ...config.local,
      maxFrameBytes: frameLimitFor(config),
      queueTimeoutMs: config.limits.queueTimeoutMs,
    }),
  }
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

  const backends = createBackends(config)
  const startedAt = performance.now()
  await Promise.all(Object.values(backends).map((backend) => backend.start()))
  log.info('backends ready', {
    backends: Object.keys(backends),
    default_backend: config.defaultBackend,
    local_workers: config.local.workers,
    ms: Math.round(performance.now() - startedAt),
  })

  const app = createApp({ config, backends })
  const server = Bun.serve({
    port: config.port,
    hostname: config.host,
    fetch: app.fetch,
    // Hono's bodyLimit gives the precise 413; this only stops Bun buffering far beyond it.
    maxRequestBodySize: config.limits.maxBodyBytes + 1024 * 1024,
  })
  log.info('listening', { url: server.url.href })

  let stopping = false
  const shutdown = async (signal: string) => {
    if (stopping) return
    stopping = true
    log.info('draining', { signal })
    await server.stop(false) // stop accepting; let in-flight requests finish
    await Promise.all(Object.values(backends).map((backend) => backend.stop()))
    log.info('stopped')
    process.exit(0)
  }
  process.on('SIGTERM', () => void shutdown('SIGTERM'))
  process.on('SIGINT', () => void shutdown('SIGINT'))
}

if (import.meta.main) await main()
