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
/**
 * Far from its limits, an instance takes a key's tokens a little ahead: up to this long of its
 * rate, used within it (unused ones are dropped), so most of a busy key's runs make no Redis
 * call. And it keeps up to 1/SPARE_SLOT_SHARE of its runs in flight as spare slots, each given
 * back once unused for SPARE_IDLE_MS. Keys with small limits (under 40 requests a second, 20
 * runs in flight) get neither: every admission is Redis's.
 */
const TOKENS_AHEAD_MS = 50
const SPARE_SLOT_SHARE = 20
const SPARE_IDLE_MS = 50

/** What an instance holds of a key ahead of its runs. */
interface Ahead {
  tokens: number
  /** Tokens held are used before this (performance.now() time), else dropped. */
  tokensUntil: number
  /** Slots held in Redis that no run uses now, and since when. */
  spares: { id: string; since: number }[]
  /** Admissions of the key on their way to Redis from here: only the first asks for more. */
  asking: number
}

/** At most this many of either are held ahead, however large the limits. */
const MOST_AHEAD = 256

const tokensAhead = ({ requestsPerSecond, burst }: ApiKey['limits']) =>
  Math.max(1, Math.min(MOST_AHEAD, burst, Math.floor((requestsPerSecond * TOKENS_AHEAD_MS) / 1000)))
const slotsAhead = ({ concurrentRuns }: ApiKey['limits']) =>
  Math.max(1, Math.min(MOST_AHEAD / 16, Math.floor(concurrentRuns / SPARE_SLOT_SHARE)))

type Quota = 'rate' | 'concurrency'
type Scope = 'deployment' | 'instance'

/**
 * KEYS: the key's bucket (hash: tokens, at) and its leases (zset: lease id → expiry, ms).
 * ARGV: requests per second, burst, runs in flight allowed, lease ms, tokens wanted (0: the
 * instance holds one already), n, then n new lease ids (slots wanted; none: the instance holds
 * a spare), then the ids of leases whose runs ended (released here, first). Beyond one token
 * and one slot, what is wanted comes only from the upper half of the bucket and of the free
 * slots: near a limit every admission is Redis's own, exactly. Returns {'ok', 0, tokens
 * granted, slots granted}, {'rate', ms until a token is back} or {'concurrency', 0}, and a
 * refusal takes nothing. Time is Redis's own, so instances whose clocks differ still agree.
 */
const ADMIT = new RedisScript(
  'quota_admit',
  `local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local lease_ms = tonumber(ARGV[4])
local want_tokens = tonumber(ARGV[5])
local n = tonumber(ARGV[6])
for i = 7 + n, #ARGV do redis.call('ZREM', KEYS[2], ARGV[i]) end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
local tokens = burst
local granted_tokens = 0
if want_tokens > 0 then
  local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
  if state[1] then
    tokens = math.min(burst, tonumber(state[1]) + math.max(0, now - tonumber(state[2])) * rate / 1000)
  end
  if tokens < 1 then
    return {'rate', math.ceil((1 - tokens) * 1000 / rate), 0, 0}
  end
  granted_tokens = math.max(1, math.min(want_tokens, math.floor(tokens - burst / 2)))
end
local granted_slots = 0
if n > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  local free = tonumber(ARGV[3]) - redis.call('ZCARD', KEYS[2])
  if free < 1 then
    return {'concurrency', 0, 0, 0}
  end
  granted_slots = math.max(1, math.min(n, math.floor(free - tonumber(ARGV[3]) / 2)))
  for i = 1, granted_slots do redis.call('ZADD', KEYS[2], now + lease_ms, ARGV[6 + i]) end
  redis.call('PEXPIRE', KEYS[2], lease_ms + 1000)
end
if granted_tokens > 0 then
  redis.call('HSET', KEYS[1], 'tokens', tokens - granted_tokens, 'at', now)
  -- Once full again the bucket is the same as none: it goes when it would have refilled.
  redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
end
return {'ok', 0, granted_tokens, granted_slots}`,
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
  /** Per key id: tokens and slots taken ahead (busy keys only). */
  private readonly ahead = new Map<string, Ahead>()
  private spareTimer: ReturnType<typeof setInterval> | null = null

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
    if (this.spareTimer) clearInterval(this.spareTimer)
    this.spareTimer = null
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
    const leasesKey = shared.key('quota', key.id, 'leases')
    let ahead = this.ahead.get(key.id)
    if (!ahead) {
      ahead = { tokens: 0, tokensUntil: 0, spares: [], asking: 0 }
      this.ahead.set(key.id, ahead)
    }
    const now = performance.now()
    if (ahead.tokensUntil <= now) ahead.tokens = 0
    // A token and a spare held here are taken at once, before any wait: an admission running
    // beside this one cannot take them too. A refusal gives them back.
    const token = ahead.tokens >= 1
    if (token) ahead.tokens -= 1
    const spare = ahead.spares.pop()
    if (token && spare) return this.holding(key, shared, leasesKey, spare.id)
    const giveBack = () => {
      if (token) ahead.tokens += 1
      if (spare) ahead.spares.push(spare)
    }
    // Redis decides: a token unless one is held, a slot unless a spare is; and releases the
    // key's runs that ended meanwhile in the same call.
    // More than one of each only when no other admission of the key is on its way from here:
    // a burst of concurrent runs takes what it uses, not a batch each.
    const alone = ahead.asking === 0
    const wantTokens = token ? 0 : alone ? tokensAhead(key.limits) : 1
    const newIds = spare
      ? []
      : Array.from(
          { length: alone ? slotsAhead(key.limits) : 1 },
          () => `${shared.instanceId}:${++this.leaseSequence}`,
        )
    const ended = this.ended.get(leasesKey) ?? []
    this.ended.delete(leasesKey)
    let answer: [string, number, number, number]
    ahead.asking++
    try {
      answer = await shared.eval<[string, number, number, number]>(
        ADMIT,
        [shared.key('quota', key.id, 'bucket'), leasesKey],
        [
          requestsPerSecond,
          burst,
          concurrentRuns,
          shared.config.leaseMs,
          wantTokens,
          newIds.length,
          ...newIds,
          ...ended,
        ],
      )
    } catch (error) {
      giveBack()
      throw error
    } finally {
      ahead.asking--
    }
    const [decision, waitMs, tokens, slots] = answer
    if (decision !== 'ok') giveBack()
    if (decision === 'rate') this.refuse(key, 'rate', 'deployment', Number(waitMs) / 1000)
    if (decision === 'concurrency') this.refuse(key, 'concurrency', 'deployment')
    if (wantTokens > 0) {
      // One granted token is this run's; the rest are held ahead, beside any others held.
      ahead.tokens += Number(tokens) - 1
      ahead.tokensUntil = performance.now() + TOKENS_AHEAD_MS
    }
    const granted = newIds.slice(0, Number(slots))
    for (const id of granted.slice(1)) {
      this.leases.set(id, leasesKey)
      ahead.spares.push({ id, since: performance.now() })
    }
    if (granted.length > 1) this.watchSpares(shared)
    return this.holding(key, shared, leasesKey, spare?.id ?? granted[0]!)
  }

  /** The run holds lease `leaseId`; the returned function ends it. */
  private holding(
    key: ApiKey,
    shared: SharedState,
    leasesKey: string,
    leaseId: string,
  ): () => void {
    this.leases.set(leaseId, leasesKey)
    const bucket = this.bucketOf(key, performance.now())
    bucket.running += 1
    return once(() => {
      bucket.running -= 1
      if (slotsAhead(key.limits) > 1) {
        // A busy key's next run takes this slot again, without asking Redis.
        this.ahead.get(key.id)?.spares.push({ id: leaseId, since: performance.now() })
        this.watchSpares(shared)
        return
      }
      this.leases.delete(leaseId)
      this.release(shared, leasesKey, leaseId)
    })
  }

  /** Gives back the spare slots unused for SPARE_IDLE_MS, while any are held. */
  private watchSpares(shared: SharedState): void {
    this.spareTimer ??= setInterval(() => {
      const now = performance.now()
      let held = 0
      for (const ahead of this.ahead.values()) {
        const idle = ahead.spares.filter((spare) => now - spare.since >= SPARE_IDLE_MS)
        ahead.spares = ahead.spares.filter((spare) => now - spare.since < SPARE_IDLE_MS)
        held += ahead.spares.length
        for (const { id } of idle) {
          const leasesKey = this.leases.get(id)
          this.leases.delete(id)
          if (leasesKey) this.release(shared, leasesKey, id)
        }
      }
      if (held === 0 && this.spareTimer) {
        clearInterval(this.spareTimer)
        this.spareTimer = null
      }
    }, SPARE_IDLE_MS / 2)
    this.spareTimer.unref?.()
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
    return once(() => {
      bucket.running -= 1
    })
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

/** `release` that acts the first time it is called only: a slot is given back once. */
function once(release: () => void): () => void {
  let released = false
  return () => {
    if (released) return
    released = true
    release()
  }
}
