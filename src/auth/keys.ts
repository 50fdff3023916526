// API keys: who may run code, as which workspaces, within which limits. Keys are stored
// only as sha256 digests (a leaked key file does not leak keys); a presented key is hashed
// and compared with every stored digest in constant time, so timing says nothing about
// which key, or which part of one, came close.
import { createHash, timingSafeEqual } from 'node:crypto'
import { z } from 'zod'
import { workspaceName } from '../run/request.ts'

const limitsSchema = z
  .object({
    requests_per_second: z.number().positive().default(100),
    /** Requests that may arrive at once after a quiet spell. */
    burst: z.number().int().positive().optional(),
    concurrent_runs: z.number().int().positive().default(16),
    max_timeout_ms: z.number().int().positive().optional(),
    max_body_bytes: z.number().int().positive().optional(),
  })
  .strict()
  .default({ requests_per_second: 100, concurrent_runs: 16 })

const keySchema = z
  .object({
    /** A name for logs and metrics; never the key. On /webexec it is the Modal-Key. */
    id: z.string().regex(/^[\w.-]{1,64}$/, 'must be 1-64 letters, digits, ".", "-" or "_"'),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be the hex sha256 digest of the key'),
    workspaces: z.array(workspaceName).min(1, 'must name at least one workspace'),
    limits: limitsSchema,
  })
  .strict()

export const keyFileSchema = z.object({ keys: z.array(keySchema) }).strict()

export interface KeyLimits {
  requestsPerSecond: number
  burst: number
  concurrentRuns: number
  maxTimeoutMs: number | null
  maxBodyBytes: number | null
}

export interface ApiKey {
  id: string
  /** The first is where a run goes when the request names no workspace. */
  workspaces: string[]
  limits: KeyLimits
}

interface StoredKey extends ApiKey {
  digest: Buffer
}

export const digestOf = (key: string): Buffer => createHash('sha256').update(key, 'utf8').digest()

export class KeyRing {
  private constructor(private readonly keys: StoredKey[]) {}

  static empty(): KeyRing {
    return new KeyRing([])
  }

  /** From the key file's JSON (already parsed by keyFileSchema). */
  static from(file: z.output<typeof keyFileSchema>): KeyRing {
    const ids = new Set<string>()
    for (const key of file.keys) {
      if (ids.has(key.id)) throw new Error(`keys: the id ${JSON.stringify(key.id)} is used twice`)
      ids.add(key.id)
    }
    return new KeyRing(
      file.keys.map((key) => ({
        id: key.id,
        workspaces: key.workspaces,
        digest: Buffer.from(key.sha256, 'hex'),
        limits: {
          requestsPerSecond: key.limits.requests_per_second,
          burst: key.limits.burst ?? Math.max(1, Math.ceil(2 * key.limits.requests_per_second)),
          concurrentRuns: key.limits.concurrent_runs,
          maxTimeoutMs: key.limits.max_timeout_ms ?? null,
          maxBodyBytes: key.limits.max_body_bytes ?? null,
        },
      })),
    )
  }

  /** With no keys configured, runs are anonymous (and the server binds to loopback only). */
  get size(): number {
    return this.keys.length
  }

  /** The key `presented` is, or null; `id`, when given, must also match (the webexec pair). */
  match(presented: string, id?: string): ApiKey | null {
    const digest = digestOf(presented)
    let found: StoredKey | null = null
    for (const key of this.keys) {
      // Every stored digest is compared, whatever matched before.
      const same = timingSafeEqual(digest, key.digest)
      if (same && found === null) found = key
    }
    if (found === null || (id !== undefined && !sameText(id, found.id))) return null
    const { digest: _digest, ...key } = found
    return key
  }
}

function sameText(a: string, b: string): boolean {
  return timingSafeEqual(digestOf(a), digestOf(b))
}
