// E2B's plans as its API enforces them on timeouts (e2b-dev/infra, packages/api/internal:
// handlers/timeout_helper.go, handlers/sandbox_connect.go, orchestrator/keep_alive.go). A
// team's plan caps a sandbox's life: 1 h on Hobby, 24 h on Pro (its MaxLengthHours).
//  - create: no timeout is 300 s (the v2 API's default); 0 or less is refused; past the cap
//    is 400 "Timeout cannot be greater than N hours".
//  - connect: the same check on the timeout (v2: 300 s when none is named), then as keep-alive.
//  - setTimeout: never refused for its length, clamped to what is left of the sandbox's life
//    from its start; once that life is spent, 400 "Max instance length exceeded".

export type Plan = 'hobby' | 'pro'

export const PLANS: readonly Plan[] = ['hobby', 'pro']

/** The longest life of a sandbox on each plan, in hours from its start. */
export const MAX_LENGTH_HOURS: Record<Plan, number> = { hobby: 1, pro: 24 }

/** The timeout a v2 create or connect gives a sandbox when its body names none. */
export const DEFAULT_TIMEOUT_SECONDS = 300

export const maxLifetimeSeconds = (plan: Plan): number => MAX_LENGTH_HOURS[plan] * 3600

/** A timeout the API refuses, with E2B's status and message. */
export class TimeoutRefused extends Error {
  readonly status = 400
}

/** The body's timeout as a create or connect takes it: seconds, checked against the plan. */
export function requestedTimeout(value: unknown, plan: Plan): number {
  if (value === undefined || value === null) return DEFAULT_TIMEOUT_SECONDS
  const seconds = int32Seconds(value)
  if (seconds <= 0) throw new TimeoutRefused('Timeout must be greater than 0')
  if (seconds > maxLifetimeSeconds(plan))
    throw new TimeoutRefused(`Timeout cannot be greater than ${MAX_LENGTH_HOURS[plan]} hours`)
  return seconds
}

/**
 * What a keep-alive (setTimeout, or connect to a running sandbox) really grants: the seconds
 * asked (negative is 0), cut to what is left of the sandbox's `maxLifetime` (seconds) since
 * `lifeStartedAt`. Throws once that life is spent.
 */
export function keepAliveSeconds(
  seconds: number,
  lifeStartedAt: Date,
  maxLifetime: number,
  now = Date.now(),
): number {
  const asked = Math.max(0, seconds)
  const lived = (now - lifeStartedAt.getTime()) / 1000
  if (lived > maxLifetime) throw new TimeoutRefused('Max instance length exceeded')
  return Math.min(asked, maxLifetime - lived)
}

/** An int32 of seconds, as the API's JSON decoding takes it (anything else is a 400). */
export function int32Seconds(value: unknown): number {
  if (
    typeof value !== 'number' ||
    !Number.isInteger(value) ||
    value < -(2 ** 31) ||
    value >= 2 ** 31
  ) {
    throw new TimeoutRefused(
      `Error when parsing request: timeout: ${JSON.stringify(value)} is not an int32`,
    )
  }
  return value
}
