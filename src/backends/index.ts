// The backends this server can run blocks on, built from the config: the one place that
// constructs them (the rest of blockgate knows only the Backend interface in backend.ts).
import type { Backends } from './backend.ts'
import { ConfigError, type Config } from '../config.ts'
import { log } from '../log.ts'
import { LocalPool } from './local/pool.ts'
import { E2BPool } from './e2b/pool.ts'
import { bubblewrapAvailable } from './local/bubblewrap.ts'
import type { SharedState } from '../shared/redis.ts'

/** Frames between proxy and worker carry a body's inputs or a block's outputs, plus headroom. */
export const frameLimitFor = (config: Config) => config.limits.maxBodyBytes + 1024 * 1024

/** `shared`: the deployment's Redis, when there is one (the E2B pool keeps its registry there). */
export function createBackends(config: Config, shared: SharedState | null = null): Backends {
  const backends: Backends = {}
  const { local } = config
  const sandboxed = local.allowUnsandboxed || bubblewrapAvailable()
  if (sandboxed) {
    backends.local = new LocalPool({
      ...local,
      maxFrameBytes: frameLimitFor(config),
      queueTimeoutMs: config.limits.queueTimeoutMs,
      isolation: local.allowUnsandboxed ? 'off' : 'sandboxed',
    })
  } else if (
    config.defaultBackend === 'local' ||
    Object.values(config.workspaceBackends).includes('local')
  ) {
    throw new ConfigError(
      'bubblewrap (bwrap) is not installed, so local workers cannot be isolated: run `npm run setup` (or apt-get install bubblewrap), or set BLOCKGATE_ALLOW_UNSANDBOXED=1 to run user code without isolation',
    )
  } else {
    log.warn('bubblewrap (bwrap) is not installed: the local backend is off; runs go to e2b')
  }
  if (config.e2b) {
    backends.e2b = new E2BPool(config.e2b, {
      maxFrameBytes: frameLimitFor(config),
      queueTimeoutMs: config.limits.queueTimeoutMs,
      shared,
    })
  }
  return backends
}
