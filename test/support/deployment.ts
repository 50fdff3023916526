// A deployment as users run one: a real redis-server, N blockgate server processes joined
// through it (the same BLOCKGATE_REDIS_URL and BLOCKGATE_DEPLOYMENT_ID), and optionally the
// shipped HAProxy config (deploy/haproxy.cfg) in front of them. Everything on loopback.
import { startHaproxy } from './haproxy.ts'
import { startRedis, type RedisServer } from './redis-server.ts'
import { startServer, type ServerProcess } from './server-process.ts'

export interface Deployment {
  redis: RedisServer
  deploymentId: string
  instances: ServerProcess[]
  /** The balancer's URL (with `balancer: true`), else null. */
  balancerUrl: string | null
  /** Starts one more instance of the deployment (after a kill, say). */
  addInstance(env?: Record<string, string>): Promise<ServerProcess>
  stop(): Promise<void>
}

export interface DeploymentOptions {
  instances?: number
  /** Environment of every instance, beyond Redis and the deployment id. */
  env?: Record<string, string>
  balancer?: boolean
}

export async function startDeployment({
  instances = 3,
  env = {},
  balancer = false,
}: DeploymentOptions = {}): Promise<Deployment> {
  const redis = await startRedis()
  const deploymentId = `test-${crypto.randomUUID().slice(0, 8)}`
  const instanceEnv = (extra: Record<string, string>) => ({
    BLOCKGATE_MIN_WARM_WORKERS: '0', // three instances on two cores: workers start on demand
    ...env,
    BLOCKGATE_REDIS_URL: redis.url,
    BLOCKGATE_DEPLOYMENT_ID: deploymentId,
    ...extra,
  })
  const servers: ServerProcess[] = []
  const stopAll = async () => {
    await Promise.allSettled(servers.map((server) => server.stop()))
    await redis.stop()
  }
  try {
    servers.push(
      ...(await Promise.all(Array.from({ length: instances }, () => startServer(instanceEnv({}))))),
    )
    const haproxy = balancer
      ? await startHaproxy({ servers: servers.map((s) => new URL(s.url).host) })
      : null
    return {
      redis,
      deploymentId,
      instances: servers,
      balancerUrl: haproxy?.url ?? null,
      async addInstance(extra = {}) {
        const server = await startServer(instanceEnv(extra))
        servers.push(server)
        return server
      },
      async stop() {
        await haproxy?.stop()
        await stopAll()
      },
    }
  } catch (error) {
    await stopAll()
    throw error
  }
}
