// Entry point: read the config, warm the backends, serve HTTP, drain on SIGTERM.
import { createApp } from './app.ts'
import type { Backends } from './run/router.ts'
import { ConfigError, loadConfig, type Config } from './config.ts'
import { LocalPool } from './backends/local/pool.ts'
import { bubblewrapAvailable } from './backends/local/sandbox.ts'
import { log } from './log.ts'

/** Frames between proxy and worker carry a body's inputs or a block's outputs, plus headroom. */
export const frameLimitFor = (config: Config) => config.limits.maxBodyBytes + 1024 * 1024

export function createBackends(config: Config): Backends {
  const { local } = config
  if (!local.allowUnsandboxed && !bubblewrapAvailable()) {
    throw new ConfigError(
      'bubblewrap (bwrap) is not installed, so local workers cannot be isolated: run `npm run setup` (or apt-get install bubblewrap), or set BLOCKGATE_ALLOW_UNSANDBOXED=1 to run user code without isolation',
    )
  }
  return {
    local: new LocalPool({
      ...local,
      maxFrameBytes: frameLimitFor(config),
      queueTimeoutMs: config.limits.queueTimeoutMs,
      isolation: local.allowUnsandboxed ? 'off' : 'sandboxed',
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

  let backends: Backends
  try {
    backends = createBackends(config)
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    console.error(`blockgate: ${error.message}`)
    process.exit(2)
  }
  if (config.local.allowUnsandboxed) log.warn('ISOLATION IS OFF: BLOCKGATE_ALLOW_UNSANDBOXED is set; user code runs without bubblewrap, namespaces or seccomp')
  const startedAt = performance.now()
  await Promise.all(Object.values(backends).map((backend) => backend.start()))
  log.info('backends ready', {
    backends: Object.keys(backends),
    default_backend: config.defaultBackend,
    local_workers: { min_warm: config.local.minWarm, max: config.local.maxWorkers },
    isolation: config.local.allowUnsandboxed ? 'off' : 'sandboxed',
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
