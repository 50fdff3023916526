// Per-key quotas: a token bucket for requests per second and a cap on runs in flight.
// Over either → 429 with Retry-After; other keys are unaffected. With the deployment's Redis
// (src/shared/redis.ts) both hold across all instances together: one script decides each
// admission atomically on Redis's clock, and each run in flight holds a lease that its
// instance renews while the run lasts, so the slots of a killed instance free themselves.
// Without Redis, or while it does not answer, each instance enforces the limits on its own.
import { metrics } from '@opentelemetry/api'
import { Overloaded } from '../errors.ts'
import { log } from '../log.ts'
import { RedisScript, type SharedState, SharedUnavailable } from '../shared/redis.ts'
import { ATTR, METRIC } from '../telemetry/names.ts'
import type { ApiKey } from './keys.ts'

interface Bucket {
  tokens: number
  refilledAt: number
  /** This instance's runs in flight, however admitted: the per-process cap counts them all. */
  running: number
}

/**
 * How long a run's released slot may wait to ride along with the key's next admission (one
 * Redis call for both) before it is released on its own. Until then the deployment counts
 * the run as in flight: a few milliseconds of a slot, for half the Redis calls per run.
 */
const RELEASE_DELAY_MS = 5

type Quota = 'rate' | 'concurrency'
type Scope = 'deployment' | 'instance'

/**
 * KEYS: the key's bucket (hash: tokens, at) and its leases (zset: lease id → expiry, ms).
 * ARGV: requests per second, burst, runs in flight allowed, lease ms, this lease's id, then
 * the ids of this key's leases whose runs ended since (released here, first). Returns {'ok', 0}, {'rate', ms until a token is back} or {'concurrency', 0}. Time is
 * Redis's own, so instances whose clocks differ still agree.
 */
const ADMIT = new RedisScript(
  'quota_admit',
  `local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local lease_ms = tonumber(ARGV[4])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
for i = 6, #ARGV do redis.call('ZREM', KEYS[2], ARGV[i]) end
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = burst
if state[1] then
  tokens = math.min(burst, tonumber(state[1]) + math.max(0, now - tonumber(state[2])) * rate / 1000)
end
if tokens < 1 then
  return {'rate', math.ceil((1 - tokens) * 1000 / rate)}
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then
  return {'concurrency', 0}
end
redis.call('HSET', KEYS[1], 'tokens', tokens - 1, 'at', now)
-- Once full again the bucket is the same as none: it goes when it would have refilled.
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
redis.call('ZADD', KEYS[2], now + lease_ms, ARGV[5])
redis.call('PEXPIRE', KEYS[2], lease_ms + 1000)
return {'ok', 0}`,
)

/**
 * Renews leases: KEYS[i] is the leases zset of the lease ARGV[i + 1]; ARGV[1] the lease ms.
 * A lease that expired meanwhile (Redis was away, say) comes back: its run is still in flight.
 */
const RENEW = new RedisScript(
  'quota_renew',
  `local lease_ms = tonumber(ARGV[1])
local time = redis.call('TIME')
local expiry = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000 + lease_ms
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, expiry, ARGV[i + 1])
  redis.call('PEXPIRE', key, lease_ms + 1000)
end
return #KEYS`,
)

export class Quotas {
  private readonly buckets = new Map<string, Bucket>()
  private readonly rejected = metrics
    .getMeter('blockgate')
    .createCounter(METRIC.quotaRejections, { description: 'Requests refused by a key quota' })
  /** Leases this instance holds in Redis: lease id → its leases zset. */
  private readonly leases = new Map<string, string>()
  private leaseSequence = 0
  private readonly heartbeat: ReturnType<typeof setInterval> | null = null
  /** Leases whose runs ended, not yet released in Redis: leases zset → lease ids. */
  private readonly ended = new Map<string, string[]>()
  private releaseTimer: ReturnType<typeof setTimeout> | null = null

  constructor(private readonly shared: SharedState | null = null) {
    if (shared) {
      this.heartbeat = setInterval(() => void this.renewLeases(), shared.config.leaseMs / 3)
      this.heartbeat.unref?.()
    }
  }

  /** Stops renewing this instance's leases (they then expire within the lease time). */
  stop(): void {
    if (this.heartbeat) clearInterval(this.heartbeat)
    if (this.releaseTimer) clearTimeout(this.releaseTimer)
    this.releaseTimer = null
  }

  /** Takes one request and one run slot of `key`; the returned function gives the slot back. */
  async admit(key: ApiKey): Promise<() => void> {
    if (this.shared?.shared) {
      try {
        return await this.admitAcrossDeployment(key, this.shared)
      } catch (error) {
        if (!(error instanceof SharedUnavailable)) throw error
        // Redis is away: this request is decided here, at once.
      }
    }
    return this.admitHere(key, performance.now())
  }

  private async admitAcrossDeployment(key: ApiKey, shared: SharedState): Promise<() => void> {
    const { requestsPerSecond, burst, concurrentRuns } = key.limits
    const leaseId = `${shared.instanceId}:${++this.leaseSequence}`
    const leasesKey = shared.key('quota', key.id, 'leases')
    // The key's runs that ended meanwhile are released by this same call.
    const ended = this.ended.get(leasesKey) ?? []
    this.ended.delete(leasesKey)
    const [decision, waitMs] = await shared.eval<[string, number]>(
      ADMIT,
      [shared.key('quota', key.id, 'bucket'), leasesKey],
      [requestsPerSecond, burst, concurrentRuns, shared.config.leaseMs, leaseId, ...ended],
    )
    if (decision === 'rate') this.refuse(key, 'rate', 'deployment', Number(waitMs) / 1000)
    if (decision === 'concurrency') this.refuse(key, 'concurrency', 'deployment')
    this.leases.set(leaseId, leasesKey)
    const bucket = this.bucketOf(key, performance.now())
    bucket.running += 1
    let released = false
    return () => {
      if (released) return
      released = true
      bucket.running -= 1
      this.leases.delete(leaseId)
      this.release(shared, leasesKey, leaseId)
    }
  }

  /**
   * Releases a lease in Redis with the key's next admission, or after RELEASE_DELAY_MS in one
   * call per key. Not awaited: a release that fails leaves the lease to expire on its own.
   */
  private release(shared: SharedState, leasesKey: string, leaseId: string): void {
    const ended = this.ended.get(leasesKey)
    if (ended) ended.push(leaseId)
    else this.ended.set(leasesKey, [leaseId])
    this.releaseTimer ??= setTimeout(() => {
      this.releaseTimer = null
      for (const [key, ids] of this.ended)
        shared.command('quota_release', 'ZREM', [key, ...ids]).catch(() => {})
      this.ended.clear()
    }, RELEASE_DELAY_MS)
  }

  /** Today's per-process quota: the whole limit is this instance's own. */
  private admitHere(key: ApiKey, now: number): () => void {
    const { requestsPerSecond, burst, concurrentRuns } = key.limits
    const bucket = this.bucketOf(key, now)
    bucket.tokens = Math.min(
      burst,
      bucket.tokens + ((now - bucket.refilledAt) / 1000) * requestsPerSecond,
    )
    bucket.refilledAt = now
    if (bucket.tokens < 1)
      this.refuse(key, 'rate', 'instance', (1 - bucket.tokens) / requestsPerSecond)
    if (bucket.running >= concurrentRuns) this.refuse(key, 'concurrency', 'instance')
    bucket.tokens -= 1
    bucket.running += 1
    let released = false
    return () => {
      if (released) return
      released = true
      bucket.running -= 1
    }
  }

  private bucketOf(key: ApiKey, now: number): Bucket {
    let bucket = this.buckets.get(key.id)
    if (!bucket) {
      bucket = { tokens: key.limits.burst, refilledAt: now, running: 0 }
      this.buckets.set(key.id, bucket)
    }
    return bucket
  }

  /** `waitS`: for a rate refusal, how long until a token is back. */
  private refuse(key: ApiKey, quota: Quota, scope: Scope, waitS = 1): never {
    this.rejected.add(1, {
      [ATTR.keyId]: key.id,
      'blockgate.quota': quota,
      'blockgate.quota.scope': scope,
    })
    const where = scope === 'deployment' ? ' across the deployment' : ''
    const { requestsPerSecond, concurrentRuns } = key.limits
    throw new Overloaded(
      quota === 'rate'
        ? `key ${key.id}: over its rate of ${requestsPerSecond} requests per second${where}`
        : `key ${key.id}: ${concurrentRuns} runs are already in flight${where}, its limit`,
      Math.max(1, Math.ceil(waitS)),
      429,
    )
  }

  /** Re-scores every lease this instance holds, in one script; runs every lease time / 3. */
  private async renewLeases(): Promise<void> {
    if (this.leases.size === 0 || !this.shared?.shared) return
    const held = [...this.leases]
    try {
      await this.shared.eval(
        RENEW,
        held.map(([, leasesKey]) => leasesKey),
        [this.shared.config.leaseMs, ...held.map(([leaseId]) => leaseId)],
      )
    } catch (error) {
      // Redis away: degraded mode says so already, and the next beat tries again.
      if (!(error instanceof SharedUnavailable))
        log.warn('quota leases could not be renewed', { error })
    }
  }
}
