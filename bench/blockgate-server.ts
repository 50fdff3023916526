// A blockgate server on a real socket with one backend behind it, as a user would run it:
// the local pool (workers forked from the sandboxed zygote) or an E2B mode. No warm spares,
// so a run for a new workspace pays the whole cold start.
import { createApp } from '../src/app.ts'
import type { Backend } from '../src/backends/backend.ts'
import type { E2BPool } from '../src/backends/e2b/pool.ts'
import { loadConfig } from '../src/config.ts'
import { createBackends } from '../src/backends/index.ts'

export interface BlockgateServer {
  url: string
  backend: Backend
  stop(): Promise<void>
}

/** The environment without E2B_* variables: a local server must not reach E2B. */
function localEnvironment(): Record<string, string | undefined> {
  return Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('E2B_')),
  )
}

async function serve(
  env: Record<string, string | undefined>,
  which: 'local' | 'e2b',
): Promise<BlockgateServer> {
  const config = loadConfig(env)
  const backend = createBackends(config)[which]
  if (!backend) throw new Error(`the ${which} backend is not available here`)
  await backend.start()
  const server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    fetch: createApp({ config, backends: { [which]: backend } }).fetch,
    maxRequestBodySize: config.limits.maxBodyBytes,
    idleTimeout: 0,
  })
  return {
    url: `${server.url.href}v1/run`,
    backend,
    stop: async () => {
      server.stop(true)
      await backend.stop()
    },
  }
}

/** Two workers at most (this machine's cores), none forked ahead of a run, all of them the one tenant's share. */
export function startLocalServer(): Promise<BlockgateServer> {
  return serve(
    {
      ...localEnvironment(),
      WORKFLOWS_CUSTOM_PYTHON_EXECUTION_MODE: 'local',
      BLOCKGATE_MIN_WARM_WORKERS: '0',
      BLOCKGATE_MAX_WORKERS: '2',
      BLOCKGATE_TENANT_MAX_WORKERS: '2',
    },
    'local',
  )
}

/** Two sandboxes at most: a cold run for a new workspace retires the previous cold one. */
export async function startE2BServer(
  targetEnv: Record<string, string>,
  mode: 'template' | 'code-interpreter',
  local: boolean,
) {
  const env = {
    ...localEnvironment(),
    ...targetEnv,
    WORKFLOWS_CUSTOM_PYTHON_EXECUTION_MODE: 'e2b',
    BLOCKGATE_E2B_MODE: mode,
    BLOCKGATE_E2B_MIN_WARM: '0',
    BLOCKGATE_E2B_MAX_SANDBOXES: '2',
    BLOCKGATE_E2B_TENANT_MAX_SANDBOXES: '2', // one tenant: the whole pool is its share
    // The stand-in has no creation rate limit; E2B's own is the user's to set.
    ...(local ? { BLOCKGATE_E2B_CREATES_PER_SECOND: '100' } : {}),
    BLOCKGATE_DEPLOYMENT_ID: `bench-${process.pid}-${mode}`,
    BLOCKGATE_DEFAULT_TIMEOUT_MS: '60000',
  }
  const server = await serve(env, 'e2b')
  return { ...server, pool: server.backend as E2BPool }
}
