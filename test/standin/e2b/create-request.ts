// POST /v2/sandboxes: the body the SDK sends, checked the way E2B's API checks it, turned
// into what the stand-in keeps about the sandbox.
import { randomBytes } from 'node:crypto'
import type { SandboxSpec } from './sandbox.ts'
import { templateKind } from './templates.ts'

/** E2B's defaults and limits: 15 s when the body names none, 24 h at most (a Pro plan's cap). */
export const DEFAULT_TIMEOUT_SECONDS = 15
export const MAX_TIMEOUT_SECONDS = 86_400
/** What POST .../connect gives a sandbox when the body names no timeout. */
export const DEFAULT_CONNECT_TIMEOUT_SECONDS = 300

/** A create the API refuses: 400 for a malformed body, 404 for an unknown template. */
export class CreateRefused extends Error {
  constructor(
    readonly status: 400 | 404,
    message: string,
  ) {
    super(message)
  }
}

export function parseCreateRequest(body: unknown): SandboxSpec {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new CreateRefused(400, 'the body must be a JSON object')
  const fields = body as Record<string, unknown>
  if (typeof fields.templateID !== 'string' || fields.templateID === '')
    throw new CreateRefused(400, 'templateID: required')
  const kind = templateKind(fields.templateID)
  if (!kind) throw new CreateRefused(404, `template '${fields.templateID}' not found`)
  const network = optionalObject(fields.network, 'network')
  return {
    templateId: fields.templateID,
    kind,
    metadata: stringMap(fields.metadata, 'metadata'),
    envVars: stringMap(fields.envVars, 'envVars'),
    timeoutSeconds: parseTimeout(fields.timeout, DEFAULT_TIMEOUT_SECONDS),
    autoPause: optionalBoolean(fields.autoPause, 'autoPause') ?? false,
    allowInternetAccess:
      optionalBoolean(fields.allow_internet_access, 'allow_internet_access') ?? null,
    network,
    // The v2 API secures every sandbox; an explicit `secure: false` (v1's switch) turns it off.
    envdAccessToken: optionalBoolean(fields.secure, 'secure') === false ? null : newToken(),
    trafficAccessToken: network?.allowPublicTraffic === false ? newToken() : null,
  }
}

/** A timeout in seconds as the API takes it; `fallback` when absent. */
export function parseTimeout(value: unknown, fallback: number): number {
  if (value === undefined || value === null) return fallback
  if (
    typeof value !== 'number' ||
    !Number.isInteger(value) ||
    value < 0 ||
    value > MAX_TIMEOUT_SECONDS
  ) {
    throw new CreateRefused(
      400,
      `timeout: must be a whole number of seconds from 0 to ${MAX_TIMEOUT_SECONDS}`,
    )
  }
  return value
}

function stringMap(value: unknown, name: string): Record<string, string> {
  if (value === undefined || value === null) return {}
  if (
    typeof value !== 'object' ||
    Array.isArray(value) ||
    !Object.values(value).every((v) => typeof v === 'string')
  ) {
    throw new CreateRefused(400, `${name}: must be an object of strings`)
  }
  return { ...(value as Record<string, string>) }
}

function optionalObject(value: unknown, name: string): Record<string, unknown> | null {
  if (value === undefined || value === null) return null
  if (typeof value !== 'object' || Array.isArray(value))
    throw new CreateRefused(400, `${name}: must be an object`)
  return value as Record<string, unknown>
}

function optionalBoolean(value: unknown, name: string): boolean | undefined {
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'boolean') throw new CreateRefused(400, `${name}: must be true or false`)
  return value
}

function newToken(): string {
  return randomBytes(24).toString('base64url')
}

/** Sandbox ids look like E2B's: 20 lowercase letters and digits. */
export function newSandboxId(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789'
  return [...randomBytes(20)].map((byte) => alphabet[byte % alphabet.length]).join('')
}
