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

// Keys, all the deployment's: the registry (ZSET id → lease end), reservations (ZSET id → end),
// the next create slot (ms), an entry per sandbox (HASH), an idle set per workspace and one of
// every idle sandbox, and a tombstone per sandbox taken off by another instance (evicted or
// swept), so its former holder lets it go instead of writing it back. Times are Redis's clock:
// instances on several machines agree.
const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`
/**
 * Takes sandbox `id` off the registry for its caller to kill (evicted or swept): its entry,
 * its place in the idle sets, and a tombstone left so that its holder lets it go.
 */
const TAKE_OFF = `local function take_off(id, registry, all_idle, entry_prefix, tombstone_prefix, tombstone_ms)
  local idle = redis.call('HGET', entry_prefix .. id, 'idleset')
  if idle then redis.call('SREM', idle, id) end
  redis.call('SREM', all_idle, id)
  redis.call('DEL', entry_prefix .. id)
  redis.call('ZREM', registry, id)
  redis.call('SET', tombstone_prefix .. id, '1', 'PX', tonumber(tombstone_ms))
end`
/** How long a tombstone outlives the sandbox's removal: longer than any lease or idle period here. */
const TOMBSTONE_MS = 600_000

// KEYS: registry, reservations, next slot; ARGV: cap, interval ms, longest wait ms,
// reservation id, reservation ttl ms. {0, count}: at the cap; {-1, wait}: no slot in time;
// {1, wait}: reserved, the slot is `wait` ms away.
const RESERVE_CREATE = new RedisScript(
  'e2b_reserve_create',
  `${NOW}
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

// Writes (or rewrites) an entry this instance holds. KEYS: registry, reservations, entry,
// workspace idle set, all-idle set, tombstone; ARGV: id, reservation id ('' for none), holder,
// lease ms, workspace, state, created, expires, blocks. 0: another instance holds it, or took
// it off (left alone).
const PUT = new RedisScript(
  'e2b_put',
  `${NOW}
if redis.call('EXISTS', KEYS[6]) == 1 then return 0 end
local holder = redis.call('HGET', KEYS[3], 'holder')
if holder and holder ~= ARGV[3] then return 0 end
if ARGV[2] ~= '' then redis.call('ZREM', KEYS[2], ARGV[2]) end
local lease = now + tonumber(ARGV[4])
redis.call('HSET', KEYS[3], 'holder', ARGV[3], 'lease', lease, 'workspace', ARGV[5],
  'state', ARGV[6], 'created', ARGV[7], 'expires', ARGV[8], 'blocks', ARGV[9], 'idleset', KEYS[4])
redis.call('PEXPIREAT', KEYS[3], math.max(lease, tonumber(ARGV[8])) + 60000)
redis.call('ZADD', KEYS[1], lease, ARGV[1])
if ARGV[6] == 'idle' then
  redis.call('SADD', KEYS[4], ARGV[1])
  redis.call('SADD', KEYS[5], ARGV[1])
else
  redis.call('SREM', KEYS[4], ARGV[1])
  redis.call('SREM', KEYS[5], ARGV[1])
end
return 1
`,
)

// Takes back one of this instance's own runtimes for a run: yes if it still holds it, or if it
// is idle and nobody else took it. KEYS: registry, entry, workspace idle set, all-idle set,
// tombstone; ARGV: id, holder, lease ms. 1: taken; 0: not ours any more; -1: no entry (Redis
// lost it: ours, written back by the next renew).
const CLAIM = new RedisScript(
  'e2b_claim',
  `${NOW}
local e = redis.call('HMGET', KEYS[2], 'holder', 'state')
if not e[1] then
  if redis.call('EXISTS', KEYS[5]) == 1 then return 0 end
  return -1
end
if e[1] ~= ARGV[2] and e[2] ~= 'idle' then return 0 end
local lease = now + tonumber(ARGV[3])
redis.call('HSET', KEYS[2], 'holder', ARGV[2], 'state', 'busy', 'lease', lease)
redis.call('ZADD', KEYS[1], lease, ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('SREM', KEYS[4], ARGV[1])
return 1
`,
)

// An idle sandbox of the workspace that another instance (alive or not) left, taken for a run.
// KEYS: registry, workspace idle set, all-idle set; ARGV: holder, lease ms, entry key prefix,
// margin ms (an entry E2B ends within it is passed over). Returns {id, created, expires} or nil.
const CLAIM_IDLE = new RedisScript(
  'e2b_claim_idle',
  `${NOW}
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
    redis.call('SREM', KEYS[3], id)
    return {id, e[3], e[4]}
  end
end
return nil
`,
)

// Room under the deployment's cap: an idle sandbox of another workspace, taken off the
// registry for the caller to kill. KEYS: registry, all-idle set; ARGV: entry key prefix,
// tombstone key prefix, the caller's workspace idle set (its own are not taken), tombstone ms.
const EVICT_IDLE = new RedisScript(
  'e2b_evict_idle',
  `${TAKE_OFF}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local e = redis.call('HMGET', ARGV[1] .. id, 'state', 'idleset')
  if not e[1] or e[1] ~= 'idle' then
    redis.call('SREM', KEYS[2], id)
  elseif e[2] ~= ARGV[3] then
    take_off(id, KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[4])
    return id
  end
end
return nil
`,
)

// Removes an entry this instance may end: one it holds, or one nobody holds any more.
// KEYS: registry, entry, workspace idle set, all-idle set; ARGV: id, holder. 1: end it;
// 0: another instance has it.
const DROP = new RedisScript(
  'e2b_drop',
  `
local holder = redis.call('HGET', KEYS[2], 'holder')
if holder and holder ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('SREM', KEYS[4], ARGV[1])
return 1
`,
)

// Renews the leases of the entries this instance holds. KEYS[1] registry; ARGV: holder, lease
// ms, entry key prefix, tombstone key prefix, then ids. Returns {taken, missing}: ids another
// instance holds or took off (no longer ours), and ids with no entry (Redis lost them).
const RENEW = new RedisScript(
  'e2b_renew',
  `${NOW}
local lease = now + tonumber(ARGV[2])
local taken, missing = {}, {}
for i = 5, #ARGV do
  local id = ARGV[i]
  local holder = redis.call('HGET', ARGV[3] .. id, 'holder')
  if holder == ARGV[1] then
    redis.call('HSET', ARGV[3] .. id, 'lease', lease)
    redis.call('ZADD', KEYS[1], lease, id)
  elseif holder or redis.call('EXISTS', ARGV[4] .. id) == 1 then
    table.insert(taken, id)
  else
    table.insert(missing, id)
  end
end
return {taken, missing}
`,
)

// Takes the entries whose lease ran out (their instance died) off the registry, for the
// caller to kill. KEYS: registry, all-idle set; ARGV: entry key prefix, tombstone key prefix,
// max, tombstone ms.
const SWEEP = new RedisScript(
  'e2b_sweep',
  `${NOW}
${TAKE_OFF}
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do take_off(id, KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[4]) end
return ids
`,
)

/** What `reserveCreate` found: a place (its reservation), or the deployment at its cap. */
export type Reservation = { reservation: string } | { full: number }

export class SandboxRegistry {
  private readonly registry: string
  private readonly reservations: string
  private readonly nextCreate: string
  private readonly entryPrefix: string
  private readonly idlePrefix: string
  private readonly idleAll: string
  private readonly tombstonePrefix: string
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
    this.idleAll = shared.key('e2b', 'idle-all')
    this.tombstonePrefix = shared.key('e2b', 'gone', '')
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
   * `deadline`; waits for the slot. Null when Redis is unavailable (the caller spaces creates
   * on its own); `full` when the deployment is at its cap. Throws Overloaded when no slot of
   * the rate comes before the deadline.
   */
  async reserveCreate(deadline: number): Promise<Reservation | null> {
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
    if (decision === 0) return { full: value }
    if (decision === -1)
      throw new Overloaded(
        `the E2B creation rate of the deployment (${this.createsPerSecond}/s) leaves no slot before this run's deadline`,
        Math.max(1, Math.ceil(value / 1000)),
      )
    if (value > 0) await Bun.sleep(value)
    return { reservation: id }
  }

  /** Gives a reservation's place back (its create failed). */
  async cancel(reservation: string | null): Promise<void> {
    if (reservation === null) return
    await this.quietly(this.shared.eval(CANCEL_RESERVATION, [this.reservations], [reservation]))
  }

  /**
   * Room under the cap for `workspace`: an idle sandbox of another workspace (any instance's),
   * taken off the registry; the caller kills it. Null if there is none (or no Redis).
   */
  async evictIdle(workspace: string | null): Promise<string | null> {
    try {
      return await this.shared.eval<string | null>(
        EVICT_IDLE,
        [this.registry, this.idleAll],
        [this.entryPrefix, this.tombstonePrefix, this.idleKey(workspace), TOMBSTONE_MS],
      )
    } catch (error) {
      if (error instanceof SharedUnavailable) return null
      throw error
    }
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
   * Whether this instance may run on its own idle sandbox now (it takes it, busy): false if
   * another instance took it meanwhile, or took it off. True when Redis is unavailable, or lost
   * the entry (written back by the next `renew`).
   */
  async claim(id: string, workspace: string | null): Promise<boolean> {
    try {
      const answer = await this.shared.eval<number>(
        CLAIM,
        [
          this.registry,
          this.entryPrefix + id,
          this.idleKey(workspace),
          this.idleAll,
          this.tombstonePrefix + id,
        ],
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
        [this.registry, this.idleKey(workspace), this.idleAll],
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
        [this.registry, this.entryPrefix + id, this.idleKey(workspace), this.idleAll],
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
   * another instance holds or took off now: no longer this one's to keep or end.
   */
  async renew(held: HeldSandbox[]): Promise<string[]> {
    try {
      const [taken, missing] =
        held.length === 0
          ? [[], []]
          : await this.shared.eval<[string[], string[]]>(
              RENEW,
              [this.registry],
              [
                this.holder,
                this.leaseMs,
                this.entryPrefix,
                this.tombstonePrefix,
                ...held.map((s) => s.id),
              ],
            )
      for (const id of missing) {
        const sandbox = held.find((s) => s.id === id)!
        if ((await this.put(sandbox, 'busy', null)) === 0) taken.push(id)
      }
      this.lastSize = await this.shared.command<number>('e2b_registry_size', 'ZCARD', [
        this.registry,
      ])
      return taken
    } catch (error) {
      if (error instanceof SharedUnavailable) return []
      throw error
    }
  }

  /** Takes the sandboxes whose holder's lease ran out off the registry: the caller kills them. */
  async sweep(): Promise<string[]> {
    try {
      const ids = await this.shared.eval<string[]>(
        SWEEP,
        [this.registry, this.idleAll],
        [this.entryPrefix, this.tombstonePrefix, 100, TOMBSTONE_MS],
      )
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
        this.idleAll,
        this.tombstonePrefix + sandbox.id,
      ],
      [
        sandbox.id,
        reservation ?? '',
        this.holder,
        this.leaseMs,
        sandbox.workspace ?? SPARE,
        state,
        Math.round(sandbox.createdAtMs),
        Math.round(sandbox.expiresAtMs),
        [...sandbox.blocks].slice(-MAX_BLOCKS).join(' '),
      ],
    )
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
