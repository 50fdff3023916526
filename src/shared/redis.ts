// Shared state between instances: one Redis (or Valkey) at BLOCKGATE_REDIS_URL joins the
// instances of a deployment (BLOCKGATE_DEPLOYMENT_ID). Every call is bounded
// (BLOCKGATE_REDIS_TIMEOUT_MS) and traced (`blockgate.redis.<op>`). A call that fails or runs
// past its bound puts the instance in degraded mode: callers then use their per-process state
// at once, without trying Redis on a run's path, and a probe in the background returns the
// instance to shared state when Redis answers again. Bun's own Redis client: no dependency,
// auto-pipelined, RESP3.
import { createHash, randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { metrics } from '@opentelemetry/api'
import { RedisClient } from 'bun'
import { log } from '../log.ts'
import { METRIC, redisSpan } from '../telemetry/names.ts'
import { inSpan } from '../telemetry/spans.ts'

export interface SharedConfig {
  /** Null: no Redis, per-process state only (the embedded default). */
  redisUrl: string | null
  deploymentId: string
  /** The longest a Redis call may take on a run's path before the instance degrades. */
  timeoutMs: number
  /** How long a lease (an in-flight run's quota slot, a sandbox's holder) lasts unless renewed. */
  leaseMs: number
  /** The /webexec code the deployment keeps per workspace, in bytes of code. */
  codeCacheWorkspaceBytes: number
}

/** Redis is not answering (or degraded mode is on): the caller uses its per-process state. */
export class SharedUnavailable extends Error {
  override name = 'SharedUnavailable'
}

/** A Lua script run by its SHA-1 (EVALSHA), loaded on first use (EVAL on NOSCRIPT). */
export class RedisScript {
  readonly sha: string
  constructor(
    /** Names the span: `blockgate.redis.<op>`. */
    readonly op: string,
    readonly source: string,
  ) {
    this.sha = createHash('sha1').update(source).digest('hex')
  }
}

/** How often a degraded instance tries Redis again. */
const PROBE_INTERVAL_MS = 1000
/** A (re)connection may take this long; it is off the runs' path. */
const CONNECT_TIMEOUT_MS = 2000

type Mode = 'shared' | 'degraded'

export class SharedState {
  /** This process, as leases name their holder. */
  readonly instanceId = `${hostname()
    .replace(/[^\w.-]/g, '-')
    .slice(0, 40)}-${process.pid}-${randomBytes(3).toString('hex')}`
  private client: RedisClient | null = null
  private mode: Mode = 'degraded'
  private since = Date.now()
  private lastError: string | null = 'not connected yet'
  private probing: Promise<void> | null = null
  private probeTimer: ReturnType<typeof setInterval> | null = null
  private stopped = false
  private readonly prefix: string
  private readonly listeners: ((mode: Mode) => void)[] = []
  private readonly errors = metrics.getMeter('blockgate').createCounter(METRIC.redisErrors, {
    description: 'Redis calls that failed or ran past BLOCKGATE_REDIS_TIMEOUT_MS, by operation',
  })

  constructor(readonly config: SharedConfig & { redisUrl: string }) {
    this.prefix = `blockgate:${config.deploymentId}:`
    metrics
      .getMeter('blockgate')
      .createObservableGauge(METRIC.sharedDegraded, {
        description: '1 while Redis is configured but not answering (per-process state in use)',
      })
      .addCallback((gauge) => gauge.observe(this.mode === 'degraded' ? 1 : 0))
  }

  /** Connects (bounded); on failure the instance starts degraded and keeps probing. */
  async start(): Promise<void> {
    await this.probe()
    this.probeTimer = setInterval(() => {
      if (this.mode === 'degraded') void this.probe()
    }, PROBE_INTERVAL_MS)
    this.probeTimer.unref?.()
  }

  stop(): void {
    this.stopped = true
    if (this.probeTimer) clearInterval(this.probeTimer)
    const client = this.client
    this.client = null // first: its close is then no reason to degrade
    client?.close()
  }

  /** Whether calls go to Redis now. */
  get shared(): boolean {
    return this.mode === 'shared'
  }

  /** Tells `listener` each time the instance enters or leaves degraded mode. */
  onModeChange(listener: (mode: Mode) => void): void {
    this.listeners.push(listener)
  }

  /** A key of this deployment: `blockgate:<deployment>:<parts joined by ':'>`. */
  key(...parts: string[]): string {
    return this.prefix + parts.join(':')
  }

  /** What /readyz shows. */
  status(): Record<string, unknown> {
    return {
      mode: this.mode,
      deployment: this.config.deploymentId,
      instance: this.instanceId,
      since: new Date(this.since).toISOString(),
      ...(this.lastError && this.mode === 'degraded' ? { last_error: this.lastError } : {}),
    }
  }

  /** Runs `script` (bounded, traced); throws SharedUnavailable when Redis cannot answer. */
  async eval<T>(script: RedisScript, keys: string[], args: (string | number)[]): Promise<T> {
    const argv = [String(keys.length), ...keys, ...args.map(String)]
    return this.call(script.op, 'EVALSHA', async (client) => {
      try {
        return (await client.send('EVALSHA', [script.sha, ...argv])) as T
      } catch (error) {
        if (!String((error as Error).message).includes('NOSCRIPT')) throw error
        return (await client.send('EVAL', [script.source, ...argv])) as T
      }
    })
  }

  /** One plain command (bounded, traced); throws SharedUnavailable when Redis cannot answer. */
  command<T>(op: string, command: string, args: string[]): Promise<T> {
    return this.call(op, command, (client) => client.send(command, args) as Promise<T>)
  }

  private async call<T>(
    op: string,
    command: string,
    send: (client: RedisClient) => Promise<T>,
  ): Promise<T> {
    const client = this.client
    if (this.mode !== 'shared' || client === null)
      throw new SharedUnavailable(`Redis is not in use now (${this.lastError ?? 'degraded'})`)
    return inSpan(
      redisSpan(op),
      { 'db.system.name': 'redis', 'db.operation.name': command },
      async () => {
        let timer: ReturnType<typeof setTimeout> | undefined
        const late = new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new Error(
                  `no answer within ${this.config.timeoutMs} ms (BLOCKGATE_REDIS_TIMEOUT_MS)`,
                ),
              ),
            this.config.timeoutMs,
          )
        })
        try {
          return await Promise.race([send(client), late])
        } catch (error) {
          const message = (error as Error).message
          // A script's own error (a bug, or a key of another type) is not Redis being away.
          if (/^(ERR|WRONGTYPE)/.test(message) && !message.includes('NOSCRIPT')) throw error
          this.errors.add(1, { 'blockgate.redis.op': op })
          this.degrade(`${op}: ${message}`, client)
          throw new SharedUnavailable(`Redis did not answer ${op}: ${message}`)
        } finally {
          clearTimeout(timer)
        }
      },
    )
  }

  /** Degraded mode: drop the connection (its pending calls fail at once) and probe later. */
  private degrade(why: string, client: RedisClient | null): void {
    if (client !== null && this.client === client) {
      this.client = null
      client.close()
    }
    this.lastError = why
    this.setMode('degraded')
  }

  private setMode(mode: Mode): void {
    if (this.mode === mode) return
    this.mode = mode
    this.since = Date.now()
    if (mode === 'degraded')
      log.warn('Redis is not answering: per-process state in use until it does', {
        error: this.lastError,
      })
    else log.info('Redis answers: shared state in use', { deployment: this.config.deploymentId })
    for (const listener of this.listeners) listener(mode)
  }

  /** A fresh connection and a PING, off the runs' path; shared mode again if both succeed. */
  private probe(): Promise<void> {
    this.probing ??= (async () => {
      const client = new RedisClient(this.config.redisUrl, {
        autoReconnect: false, // reconnection is this probe's, so a call never waits for one
        enableOfflineQueue: false,
        connectionTimeout: CONNECT_TIMEOUT_MS,
      })
      client.onclose = (error) => {
        if (this.client === client)
          this.degrade(`connection closed: ${error?.message ?? 'closed'}`, client)
      }
      try {
        await withTimeout(client.connect(), CONNECT_TIMEOUT_MS, 'connect')
        await withTimeout(client.send('PING', []), CONNECT_TIMEOUT_MS, 'PING')
        if (this.stopped) return client.close()
        this.client?.close()
        this.client = client
        this.lastError = null
        this.setMode('shared')
      } catch (error) {
        client.close()
        this.lastError = `connect: ${(error as Error).message}`
      }
    })().finally(() => {
      this.probing = null
    })
    return this.probing
  }
}

function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  return Promise.race([
    work,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)
    }),
  ]).finally(() => clearTimeout(timer))
}

/** The deployment's shared state, or null when no Redis is configured. */
export function sharedStateFor(config: SharedConfig): SharedState | null {
  return config.redisUrl ? new SharedState({ ...config, redisUrl: config.redisUrl }) : null
}
