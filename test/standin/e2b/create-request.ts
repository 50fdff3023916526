// POST /v2/sandboxes: the body the SDK sends, checked the way E2B's API checks it, turned
// into what the stand-in keeps about the sandbox.
import { randomBytes, randomInt } from 'node:crypto'
import { maxLifetimeSeconds, type Plan, requestedTimeout, TimeoutRefused } from './plan.ts'
import type { SandboxSpec } from './sandbox.ts'
import { templateKind } from './templates.ts'

/** A create the API refuses: 400 for a malformed body, 404 for an unknown template. */
export class CreateRefused extends Error {
  constructor(
    readonly status: 400 | 404,
    message: string,
  ) {
    super(message)
  }
}

/** The create's body as the team on `plan` sends it (its timeout is checked against the plan). */
export function parseCreateRequest(body: unknown, plan: Plan): SandboxSpec {
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
    timeoutSeconds: timeoutOf(fields.timeout, plan),
    maxLifetimeSeconds: maxLifetimeSeconds(plan),
    autoPause: optionalBoolean(fields.autoPause, 'autoPause') ?? false,
    allowInternetAccess:
      optionalBoolean(fields.allow_internet_access, 'allow_internet_access') ?? null,
    network,
    // The v2 API secures every sandbox: it has no `secure` switch (v1's), one sent is ignored.
    envdAccessToken: newToken(),
    trafficAccessToken: network?.allowPublicTraffic === false ? newToken() : null,
  }
}

/** The create's timeout in seconds (300 if none), or the API's 400 for it. */
function timeoutOf(value: unknown, plan: Plan): number {
  try {
    return requestedTimeout(value, plan)
  } catch (error) {
    if (error instanceof TimeoutRefused) throw new CreateRefused(400, error.message)
    throw error
  }
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

const ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz1234567890'

/**
 * A sandbox id in E2B's form: "i" and 20 characters drawn evenly from lowercase letters and
 * digits (infra: InstanceIDPrefix + id.Generate(), e.g. "im9r2ycjiy2534qsdy1oo").
 */
export function newSandboxId(): string {
  let id = 'i'
  for (let i = 0; i < 20; i++) id += ID_ALPHABET[randomInt(ID_ALPHABET.length)]
  return id
}
