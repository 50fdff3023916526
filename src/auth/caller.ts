// Who is calling a run route, and what that allows: with API keys configured, every run
// needs one (Authorization: Bearer <key>, or on /webexec Inference's Modal-Key/Modal-Secret
// pair: the key's id and the key); the key decides the workspace and its quotas. With no
// keys configured the caller is anonymous, which the bind policy keeps to loopback.
import type { Context, MiddlewareHandler } from 'hono'
import { Forbidden, PayloadTooLarge, Unauthorized } from '../errors.ts'
import type { ApiKey, KeyRing } from './keys.ts'
import type { Quotas } from './quotas.ts'

/** null: no keys are configured, so nobody is asked for one. */
export type Caller = ApiKey | null

export interface CallerEnv {
  Variables: { caller: Caller }
}

const DEFAULT_WORKSPACE = 'default'

/** Middleware: finds the caller's key (401 without a valid one) and holds a quota slot for the request. */
export function identifyCaller(
  keys: KeyRing,
  quotas: Quotas,
  { modalPair = false } = {},
): MiddlewareHandler<CallerEnv> {
  return async (c, next) => {
    if (keys.size === 0) {
      c.set('caller', null)
      return next()
    }
    const key = presentedKey(c.req.raw.headers, keys, modalPair)
    // One message for every way of getting it wrong: no hint which part was.
    if (!key)
      throw new Unauthorized(
        modalPair
          ? 'missing or invalid API key (Authorization: Bearer, or Modal-Key and Modal-Secret)'
          : 'missing or invalid API key (Authorization: Bearer)',
      )
    const release = await quotas.admit(key)
    c.set('caller', key)
    try {
      await next()
    } finally {
      release()
    }
  }
}

export function presentedKey(headers: Headers, keys: KeyRing, modalPair = false): ApiKey | null {
  const bearer = headers.get('authorization')?.match(/^Bearer[ ]+(\S+)[ ]*$/i)?.[1]
  if (bearer) return keys.match(bearer)
  if (modalPair) {
    const id = headers.get('modal-key')
    const secret = headers.get('modal-secret')
    if (id && secret) return keys.match(secret, id)
  }
  return null
}

export const callerOf = (c: Context<CallerEnv>): Caller => c.get('caller') ?? null

/** The run's workspace: the one the request names, if its key holds it (else 403); else the key's first. */
export function workspaceFor(caller: Caller, requested: string | undefined): string {
  if (caller === null) return requested ?? DEFAULT_WORKSPACE
  if (requested === undefined) return caller.workspaces[0]!
  if (!caller.workspaces.includes(requested))
    throw new Forbidden(
      `workspace: the API key "${caller.id}" may not run in workspace "${requested}"`,
    )
  return requested
}

/** The run's timeout, capped by the key's own maximum as by the server's. */
export function timeoutFor(caller: Caller, timeoutMs: number): number {
  const cap = caller?.limits.maxTimeoutMs
  return cap ? Math.min(timeoutMs, cap) : timeoutMs
}

/** Refuses a body over the key's own maximum (the server's applies to everyone before this). */
export function checkBodySize(caller: Caller, bytes: number): void {
  const cap = caller?.limits.maxBodyBytes
  if (cap && bytes > cap)
    throw new PayloadTooLarge(
      `body: ${bytes} bytes, over the ${cap}-byte limit of the API key "${caller!.id}"`,
    )
}
