// The deployment's registry of E2B sandboxes, in Redis: every live sandbox of every instance,
// with its workspace, state (busy, idle, spare), the blocks it has loaded, when E2B would end
// it, and which instance holds its lease. It is what lets instances share one pool:
//  - a sandbox serves one workspace for life, as in one instance; an idle one can be taken by
//    any instance (`claimIdle`, then Sandbox.connect) instead of creating another;
//  - an instance takes back its own idle sandbox only if nobody took it meanwhile (`claim`),
//    and kills one only while it still holds it (`drop`);
//  - the cap on sandboxes and the creation rate hold for the deployment (`reserveCreate`);
//  - leases are renewed while an instance lives (`renew`); the sandboxes of one that died are
//    taken by others while idle, and killed by whoever sweeps once their lease ran out (`sweep`).
// Nothing that reaches a sandbox is stored: an instance that takes one connects through E2B's
// API, which gives it the tokens. Every call falls back to this instance's own view when
// Redis is unavailable (the registry is then not consulted, and the pool behaves as alone).
import { randomBytes } from 'node:crypto'
import { metrics } from '@opentelemetry/api'
import { Overloaded } from '../../errors.ts'
import { RedisScript, SharedUnavailable, type SharedState } from '../../shared/redis.ts'
import { METRIC } from '../../telemetry/names.ts'

/** What an instance keeps of a sandbox it holds, for the registry. */
export interface HeldSandbox {
  id: string
  /** null while it is a spare (not yet bound to a workspace). */
  workspace: string | null
  /** Wall-clock ms when E2B created it. */
  createdAtMs: number
  /** Wall-clock ms when E2B's own timer would end it. */
  expiresAtMs: number
  /** Hashes of the blocks its runtime has loaded. */
  blocks: Iterable<string>
}

/** An idle sandbox of the workspace that another instance left (or that one that died held). */
export interface ClaimedSandbox {
  id: string
  createdAtMs: number
  expiresAtMs: number
}

/** Not idle while `0`; a spare is never claimed by another instance (it has no workspace yet). */
const SPARE = '-'
/** A reservation holds a place under the cap this long past its create's deadline, at most. */
const RESERVATION_SLACK_MS = 10_000
/** Block hashes kept per sandbox (for diagnostics and a claim's preference). */
const MAX_BLOCKS = 32

// KEYS[1] the registry (ZSET id → lease end), KEYS[2] reservations (ZSET id → end),
// KEYS[3] the next create slot (ms); ARGV: cap, interval ms, longest wait ms, reservation id,
// reservation ttl ms. Redis's clock: instances on several machines agree.
const RESERVE_CREATE = new RedisScript(
  'e2b_reserve_create',
  `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local count = redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2])
if count >= tonumber(ARGV[1]) then return {0, count} end
local at = math.max(now, tonumber(redis.call('GET', KEYS[3]) or '0'))
if at - now > tonumber(ARGV[3]) then return {-1, at - now} end
redis.call('SET', KEYS[3], at + tonumber(ARGV[2]), 'PX', math.max(1000, at - now + tonumber(ARGV[2]) * 2))
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[5]), ARGV[4])
return {1, at - now}
`,
)

// KEYS[1] reservations; ARGV[1] the reservation id.
const CANCEL_RESERVATION = new RedisScript(
  'e2b_cancel_reservation',
  `return redis.call('ZREM', KEYS[1], ARGV[1])`,
)

// Writes (or rewrites) an entry this instance holds. KEYS[1] registry, KEYS[2] reservations,
// KEYS[3] the entry (HASH), KEYS[4] the workspace's idle set; ARGV: id, reservation id ('' for
// none), holder, lease ms, workspace, state, created, expires, blocks. An entry another
// instance holds now is left alone (returns 0).
const PUT = new RedisScript(
  'e2b_put',
  `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local holder = redis.call('HGET', KEYS[3], 'holder')
if holder and holder ~= ARGV[3] then return 0 end
if ARGV[2] ~= '' then redis.call('ZREM', KEYS[2], ARGV[2]) end
local lease = now + tonumber(ARGV[4])
redis.call('HSET', KEYS[3], 'holder', ARGV[3], 'lease', lease, 'workspace', ARGV[5],
  'state', ARGV[6], 'created', ARGV[7], 'expires', ARGV[8], 'blocks', ARGV[9], 'idleset', KEYS[4])
redis.call('PEXPIREAT', KEYS[3], math.max(lease, tonumber(ARGV[8])) + 60000)
redis.call('ZADD', KEYS[1], lease, ARGV[1])
if ARGV[6] == 'idle' then redis.call('SADD', KEYS[4], ARGV[1]) else redis.call('SREM', KEYS[4], ARGV[1]) end
return 1
`,
)

// Takes back one of this instance's own runtimes for a run: yes if it still holds it, or if it
// is idle and nobody else took it. KEYS: registry, entry, idle set; ARGV: id, holder, lease ms.
const CLAIM = new RedisScript(
  'e2b_claim',
  `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local e = redis.call('HMGET', KEYS[2], 'holder', 'state')
if not e[1] then return -1 end
if e[1] ~= ARGV[2] and e[2] ~= 'idle' then return 0 end
local lease = now + tonumber(ARGV[3])
redis.call('HSET', KEYS[2], 'holder', ARGV[2], 'state', 'busy', 'lease', lease)
redis.call('ZADD', KEYS[1], lease, ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
return 1
`,
)

// An idle sandbox of the workspace held by another instance (alive or not), taken for a run.
// KEYS: registry, idle set; ARGV: holder, lease ms, entry key prefix, now-margin ms (an entry
// E2B ends within it is dropped instead). Returns {id, created, expires} or nil.
const CLAIM_IDLE = new RedisScript(
  'e2b_claim_idle',
  `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local key = ARGV[3] .. id
  local e = redis.call('HMGET', key, 'holder', 'state', 'created', 'expires')
  if not e[1] or e[2] ~= 'idle' or tonumber(e[4]) < now + tonumber(ARGV[4]) then
    redis.call('SREM', KEYS[2], id)
  elseif e[1] ~= ARGV[1] then
    local lease = now + tonumber(ARGV[2])
    redis.call('HSET', key, 'holder', ARGV[1], 'state', 'busy', 'lease', lease)
    redis.call('ZADD', KEYS[1], lease, id)
    redis.call('SREM', KEYS[2], id)
    return {id, e[3], e[4]}
  end
end
return nil
`,
)

// Removes an entry this instance may end: one it holds, or one nobody holds any more.
// KEYS: registry, entry, idle set; ARGV: id, holder. 1: end it; 0: another instance has it.
const DROP = new RedisScript(
  'e2b_drop',
  `
local holder = redis.call('HGET', KEYS[2], 'holder')
if holder and holder ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
return 1
`,
)

// Renews the leases of the entries this instance holds. KEYS[1] registry; ARGV: holder, lease
// ms, entry key prefix, then ids. Returns the ids whose entry is gone or held by another.
const RENEW = new RedisScript(
  'e2b_renew',
  `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = now + tonumber(ARGV[2])
local lost = {}
for i = 4, #ARGV do
  local key = ARGV[3] .. ARGV[i]
  if redis.call('HGET', key, 'holder') == ARGV[1] then
    redis.call('HSET', key, 'lease', lease)
    redis.call('ZADD', KEYS[1], lease, ARGV[i])
  else
    table.insert(lost, ARGV[i])
  end
end
return lost
`,
)

// Takes the entries whose lease ran out (their instance died) off the registry, for the
// caller to kill. KEYS[1] registry; ARGV: entry key prefix, max.
const SWEEP = new RedisScript(
  'e2b_sweep',
  `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  local idle = redis.call('HGET', ARGV[1] .. id, 'idleset')
  if idle then redis.call('SREM', idle, id) end
  redis.call('DEL', ARGV[1] .. id)
  redis.call('ZREM', KEYS[1], id)
end
return ids
`,
)

export class SandboxRegistry {
  private readonly registry: string
  private readonly reservations: string
  private readonly nextCreate: string
  private readonly entryPrefix: string
  private readonly idlePrefix: string
  private lastSize = 0
  readonly takenOver = metrics.getMeter('blockgate').createCounter(METRIC.leasesTakenOver, {
    description:
      'Sandboxes whose holder died: taken by another instance while idle, or killed by a sweep',
  })

  constructor(
    private readonly shared: SharedState,
    private readonly cap: number,
    private readonly createsPerSecond: number,
  ) {
    this.registry = shared.key('e2b', 'registry')
    this.reservations = shared.key('e2b', 'creating')
    this.nextCreate = shared.key('e2b', 'next-create')
    this.entryPrefix = shared.key('e2b', 'sandbox', '')
    this.idlePrefix = shared.key('e2b', 'idle', '')
    metrics
      .getMeter('blockgate')
      .createObservableGauge(METRIC.registrySize, {
        description: "Sandboxes in the deployment's registry (as last read)",
      })
      .addCallback((gauge) => gauge.observe(this.lastSize))
  }

  get holder(): string {
    return this.shared.instanceId
  }

  get leaseMs(): number {
    return this.shared.config.leaseMs
  }

  /** Whether the registry is in use now (Redis answers). */
  get active(): boolean {
    return this.shared.shared
  }

  /** The sandboxes in the registry, as last counted (by `renew`). */
  get size(): number {
    return this.lastSize
  }

  /**
   * A place under the deployment's cap and a slot of its creation rate, for one create by
   * `deadline`; waits for the slot. Returns the reservation (to `register` or `cancel`), or
   * null when Redis is unavailable (the caller spaces creates on its own). Throws Overloaded
   * when the deployment is at its cap or no slot comes before the deadline.
   */
  async reserveCreate(deadline: number): Promise<string | null> {
    const id = randomBytes(8).toString('hex')
    const longestWaitMs = Math.max(0, Math.floor(deadline - performance.now()))
    let answer: [number, number]
    try {
      answer = await this.shared.eval<[number, number]>(
        RESERVE_CREATE,
        [this.registry, this.reservations, this.nextCreate],
        [
          this.cap,
          Math.ceil(1000 / this.createsPerSecond),
          longestWaitMs,
          id,
          longestWaitMs + RESERVATION_SLACK_MS,
        ],
      )
    } catch (error) {
      if (error instanceof SharedUnavailable) return null
      throw error
    }
    const [decision, value] = answer
    if (decision === 0)
      throw new Overloaded(
        `the deployment holds ${value} E2B sandboxes, its cap (BLOCKGATE_E2B_MAX_SANDBOXES=${this.cap})`,
        1,
      )
    if (decision === -1)
      throw new Overloaded(
        `the E2B creation rate of the deployment (${this.createsPerSecond}/s) leaves no slot before this run's deadline`,
        Math.max(1, Math.ceil(value / 1000)),
      )
    if (value > 0) await Bun.sleep(value)
    return id
  }

  /** Gives a reservation's place back (its create failed). */
  async cancel(reservation: string | null): Promise<void> {
    if (reservation === null) return
    await this.quietly(this.shared.eval(CANCEL_RESERVATION, [this.reservations], [reservation]))
  }

  /** A sandbox this instance created (or took) and now runs on: busy, its lease this instance's. */
  async register(sandbox: HeldSandbox, reservation: string | null): Promise<void> {
    await this.quietly(this.put(sandbox, 'busy', reservation))
  }

  /** The sandbox went idle here: any instance may now take it for a run of its workspace. */
  async released(sandbox: HeldSandbox): Promise<void> {
    await this.quietly(this.put(sandbox, sandbox.workspace === null ? 'spare' : 'idle', null))
  }

  /**
   * Whether this instance may run on its own idle `sandbox` now (it takes it, busy): false if
   * another instance took it meanwhile. True when Redis is unavailable, or the entry is missing
   * (written again by the next `renew`).
   */
  async claim(id: string, workspace: string | null): Promise<boolean> {
    try {
      const answer = await this.shared.eval<number>(
        CLAIM,
        [this.registry, this.entryPrefix + id, this.idleKey(workspace)],
        [id, this.holder, this.leaseMs],
      )
      return answer !== 0
    } catch (error) {
      if (error instanceof SharedUnavailable) return true
      throw error
    }
  }

  /** An idle sandbox of `workspace` that another instance (alive or dead) left, taken; or null. */
  async claimIdle(workspace: string, marginMs: number): Promise<ClaimedSandbox | null> {
    let answer: [string, string, string] | null
    try {
      answer = await this.shared.eval<[string, string, string] | null>(
        CLAIM_IDLE,
        [this.registry, this.idleKey(workspace)],
        [this.holder, this.leaseMs, this.entryPrefix, marginMs],
      )
    } catch (error) {
      if (error instanceof SharedUnavailable) return null
      throw error
    }
    if (!answer) return null
    this.takenOver.add(1, { 'blockgate.takeover': 'reused' })
    return { id: answer[0], createdAtMs: Number(answer[1]), expiresAtMs: Number(answer[2]) }
  }

  /** Whether this instance may end `id`: true unless another instance holds it now. */
  async drop(id: string, workspace: string | null): Promise<boolean> {
    try {
      const answer = await this.shared.eval<number>(
        DROP,
        [this.registry, this.entryPrefix + id, this.idleKey(workspace)],
        [id, this.holder],
      )
      return answer === 1
    } catch (error) {
      if (error instanceof SharedUnavailable) return true
      throw error
    }
  }

  /**
   * Renews the leases of what this instance holds; writes back entries Redis lost (a restart,
   * or calls missed while it was away), as busy until their next release. Returns the ids
   * another instance holds now: no longer this one's to keep or end.
   */
  async renew(held: HeldSandbox[]): Promise<string[]> {
    try {
      const lost =
        held.length === 0
          ? []
          : await this.shared.eval<string[]>(
              RENEW,
              [this.registry],
              [this.holder, this.leaseMs, this.entryPrefix, ...held.map((s) => s.id)],
            )
      const takenByOthers: string[] = []
      for (const id of lost) {
        const sandbox = held.find((s) => s.id === id)!
        // Gone from Redis (flushed, or never written while it was away): ours again.
        const mine = await this.shared.eval<number>(
          PUT,
          [
            this.registry,
            this.reservations,
            this.entryPrefix + id,
            this.idleKey(sandbox.workspace),
          ],
          this.putArgs(sandbox, 'busy', null),
        )
        if (mine === 0) takenByOthers.push(id)
      }
      this.lastSize = await this.shared.command<number>('e2b_registry_size', 'ZCARD', [
        this.registry,
      ])
      return takenByOthers
    } catch (error) {
      if (error instanceof SharedUnavailable) return []
      throw error
    }
  }

  /** Takes the sandboxes whose holder's lease ran out off the registry: the caller kills them. */
  async sweep(): Promise<string[]> {
    try {
      const ids = await this.shared.eval<string[]>(SWEEP, [this.registry], [this.entryPrefix, 100])
      if (ids.length > 0) this.takenOver.add(ids.length, { 'blockgate.takeover': 'killed' })
      return ids
    } catch (error) {
      if (error instanceof SharedUnavailable) return []
      throw error
    }
  }

  /** Every id in the registry, or null when Redis is unavailable. */
  async ids(): Promise<Set<string> | null> {
    try {
      return new Set(
        await this.shared.command<string[]>('e2b_registry_ids', 'ZRANGE', [
          this.registry,
          '0',
          '-1',
        ]),
      )
    } catch (error) {
      if (error instanceof SharedUnavailable) return null
      throw error
    }
  }

  private put(sandbox: HeldSandbox, state: string, reservation: string | null): Promise<number> {
    return this.shared.eval<number>(
      PUT,
      [
        this.registry,
        this.reservations,
        this.entryPrefix + sandbox.id,
        this.idleKey(sandbox.workspace),
      ],
      this.putArgs(sandbox, state, reservation),
    )
  }

  private putArgs(sandbox: HeldSandbox, state: string, reservation: string | null) {
    return [
      sandbox.id,
      reservation ?? '',
      this.holder,
      this.leaseMs,
      sandbox.workspace ?? SPARE,
      state,
      Math.round(sandbox.createdAtMs),
      Math.round(sandbox.expiresAtMs),
      [...sandbox.blocks].slice(-MAX_BLOCKS).join(' '),
    ]
  }

  private idleKey(workspace: string | null): string {
    return this.idlePrefix + encodeURIComponent(workspace ?? SPARE)
  }

  /** A write whose loss Redis's own expiry or the next renew mends: never fails the run. */
  private async quietly(work: Promise<unknown>): Promise<void> {
    try {
      await work
    } catch (error) {
      if (!(error instanceof SharedUnavailable)) throw error
    }
  }
}
