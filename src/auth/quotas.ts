// Per-key quotas: a token bucket for requests per second and a cap on runs in flight.
// Over either → 429 with Retry-After; other keys are unaffected. In-process state: each
// blockgate instance enforces its own share.
import { metrics } from '@opentelemetry/api'
import { Overloaded } from '../errors.ts'
import type { ApiKey } from './keys.ts'
import type { SharedState } from '../shared/redis.ts'

interface Bucket {
  tokens: number
  refilledAt: number
  running: number
}

const rejections = () =>
  metrics
    .getMeter('blockgate')
    .createCounter('blockgate.quota.rejections', { description: 'Requests refused by a key quota' })

export class Quotas {
  private readonly buckets = new Map<string, Bucket>()
  private readonly rejected = rejections()

  constructor(private readonly shared: SharedState | null = null) {}

  /** Takes one request and one run slot of `key`; the returned function gives the slot back. */
  admit(key: ApiKey, now = performance.now()): () => void {
    const { requestsPerSecond, burst, concurrentRuns } = key.limits
    let bucket = this.buckets.get(key.id)
    if (!bucket) {
      bucket = { tokens: burst, refilledAt: now, running: 0 }
      this.buckets.set(key.id, bucket)
    }
    bucket.tokens = Math.min(
      burst,
      bucket.tokens + ((now - bucket.refilledAt) / 1000) * requestsPerSecond,
    )
    bucket.refilledAt = now
    if (bucket.tokens < 1) {
      this.rejected.add(1, { 'blockgate.key.id': key.id, 'blockgate.quota': 'rate' })
      const waitS = Math.max(1, Math.ceil((1 - bucket.tokens) / requestsPerSecond))
      throw new Overloaded(
        `key ${key.id}: over its rate of ${requestsPerSecond} requests per second`,
        waitS,
        429,
      )
    }
    if (bucket.running >= concurrentRuns) {
      this.rejected.add(1, { 'blockgate.key.id': key.id, 'blockgate.quota': 'concurrency' })
      throw new Overloaded(
        `key ${key.id}: ${concurrentRuns} runs are already in flight, its limit`,
        1,
        429,
      )
    }
    bucket.tokens -= 1
    bucket.running += 1
    let released = false
    const held = bucket
    return () => {
      if (released) return
      released = true
      held.running -= 1
    }
  }
}
