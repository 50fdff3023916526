// The /webexec code cache of a whole deployment: a code hash Inference sent to one instance is
// known to all, so a hash-only request that lands elsewhere runs without an UnknownCodeHash
// round trip. This process's CodeCache stays in front (a hit there makes no Redis call); behind
// it, Redis keeps per workspace the code by hash and an LRU order, bounded by
// BLOCKGATE_SHARED_CODE_CACHE_BYTES per workspace. Without Redis, or while it does not answer,
// only the per-process cache is used, at once.
import { log } from '../log.ts'
import { RedisScript, type SharedState, SharedUnavailable } from '../shared/redis.ts'
import {
  type CachedCode,
  type CodeCache,
  ENTRY_OVERHEAD_BYTES,
  inferenceCodeHash,
} from './code-cache.ts'

/**
 * A workspace nobody ran code in for this long leaves Redis: the per-workspace bound alone would
 * let every workspace name ever seen hold its share forever. Losing it costs one resend.
 */
export const SHARED_CODE_IDLE_MS = 24 * 60 * 60 * 1000

/** Inference's code hashes are md5 hex digests; any other hash can never be held. */
const CODE_HASH = /^[0-9a-f]{32}$/

// KEYS: entries (hash: code hash → value), order (sorted set: code hashes by last use),
// meta (hash: `bytes` held, `clock` for the order). ARGV: code hash, value, bound, overhead, idle ms.
// An entry counts its stored value's bytes and the overhead; the least recently used entries
// leave until the workspace is within the bound. Returns 1 if stored, 0 if larger than the bound.
const REMEMBER = new RedisScript(
  'code_remember',
  `
local entries, order, meta = KEYS[1], KEYS[2], KEYS[3]
local hash, value = ARGV[1], ARGV[2]
local bound, overhead = tonumber(ARGV[3]), tonumber(ARGV[4])
local size = #value + overhead
if size > bound then return 0 end
local held = tonumber(redis.call('HGET', meta, 'bytes') or '0')
if redis.call('HEXISTS', entries, hash) == 1 then
  held = held - redis.call('HSTRLEN', entries, hash) - overhead
  redis.call('ZREM', order, hash)
end
held = held + size
while held > bound do
  local oldest = redis.call('ZPOPMIN', order)
  if #oldest == 0 then
    -- Over the bound with nothing in the order: the count drifted (keys edited by hand); start afresh.
    redis.call('DEL', entries)
    held = size
    break
  end
  if redis.call('HEXISTS', entries, oldest[1]) == 1 then
    held = held - redis.call('HSTRLEN', entries, oldest[1]) - overhead
    redis.call('HDEL', entries, oldest[1])
  end
end
redis.call('HSET', entries, hash, value)
redis.call('ZADD', order, redis.call('HINCRBY', meta, 'clock', 1), hash)
redis.call('HSET', meta, 'bytes', held)
for _, key in ipairs(KEYS) do redis.call('PEXPIRE', key, ARGV[5]) end
return 1
`,
)

// KEYS as REMEMBER's. ARGV: code hash, idle ms. The value, its entry now the most recently used.
const RECALL = new RedisScript(
  'code_recall',
  `
local value = redis.call('HGET', KEYS[1], ARGV[1])
if not value then return false end
redis.call('ZADD', KEYS[2], 'XX', redis.call('HINCRBY', KEYS[3], 'clock', 1), ARGV[1])
for _, key in ipairs(KEYS) do redis.call('PEXPIRE', key, ARGV[2]) end
return value
`,
)

export class SharedCodeCache {
  /** The workspace's bound in Redis; 0 turns the shared level off. */
  private readonly workspaceBytes: number

  constructor(
    private readonly local: CodeCache,
    private readonly shared: SharedState | null,
  ) {
    this.workspaceBytes = shared?.config.codeCacheWorkspaceBytes ?? 0
  }

  /**
   * Keeps `code` here and in Redis under `hash`. Never rejects: once it settles the deployment
   * holds the code, or Redis could not take it and only this process does.
   */
  async remember(workspace: string, hash: string, code: CachedCode): Promise<void> {
    this.local.remember(workspace, hash, code)
    if (this.shared === null || this.workspaceBytes === 0) return
    const value = JSON.stringify(code)
    // Not sent at all when it cannot be kept: no megabytes to Redis for nothing.
    if (Buffer.byteLength(value) + ENTRY_OVERHEAD_BYTES > this.workspaceBytes) return
    await this.#call('remember', workspace, () =>
      this.shared!.eval(REMEMBER, this.#keys(workspace), [
        hash,
        value,
        this.workspaceBytes,
        ENTRY_OVERHEAD_BYTES,
        SHARED_CODE_IDLE_MS,
      ]),
    )
  }

  /** The code held for `hash`: this process's, else the deployment's (then kept here too). */
  async recall(workspace: string, hash: string): Promise<CachedCode | undefined> {
    const held = this.local.recall(workspace, hash)
    if (held || this.shared === null || this.workspaceBytes === 0 || !CODE_HASH.test(hash))
      return held
    const value = await this.#call('recall', workspace, () =>
      this.shared!.eval<string | null>(RECALL, this.#keys(workspace), [hash, SHARED_CODE_IDLE_MS]),
    )
    if (typeof value !== 'string') return undefined
    const code = verified(value, hash)
    if (!code) {
      log.warn('shared code cache: an entry does not match its hash; treated as unknown', {
        workspace,
        code_hash: hash,
      })
      return undefined
    }
    this.local.remember(workspace, hash, code)
    return code
  }

  /** The workspace's keys, in one hash slot ({…}) as a script's keys must be on a cluster. */
  #keys(workspace: string): string[] {
    // encodeURIComponent escapes ':', '{' and '}': no workspace name can reach another's keys.
    const tag = `{${encodeURIComponent(workspace)}}`
    return ['entries', 'order', 'meta'].map((part) => this.shared!.key('code', tag, part))
  }

  /** Runs a Redis call; when Redis cannot answer (or errs) the answer is "nothing shared". */
  async #call<T>(what: string, workspace: string, send: () => Promise<T>): Promise<T | null> {
    try {
      return await send()
    } catch (error) {
      // SharedUnavailable: degraded mode, already logged by SharedState; anything else is a bug to see.
      if (!(error instanceof SharedUnavailable))
        log.error(`shared code cache: ${what} failed`, { workspace, error })
      return null
    }
  }
}

/** The entry Redis returned if it is well formed and is the code `hash` names; else null. */
function verified(value: string, hash: string): CachedCode | null {
  let parsed: unknown
  try {
    parsed = JSON.parse(value)
  } catch {
    return null
  }
  const { code, imports } = (parsed ?? {}) as Partial<CachedCode>
  if (
    typeof code !== 'string' ||
    !Array.isArray(imports) ||
    !imports.every((line) => typeof line === 'string') ||
    inferenceCodeHash(code, imports) !== hash
  )
    return null
  return { code, imports }
}
