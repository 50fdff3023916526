// Switches that make the stand-in misbehave the way E2B's API can, so a client's error
// handling is tested against the real SDK's error classes. Settable in-process or over
// HTTP (POST /_standin/faults) by a test in another process.
import { checkEdgeAnswers, type EdgeAnswer } from './edge-answers.ts'
import { type Plan, PLANS } from './plan.ts'

export interface Faults {
  /** The next n creates answer 429 with `Retry-After: retryAfterSeconds`. */
  rateLimitCreates: number
  retryAfterSeconds: number
  /** Every control-plane call answers 401, as with a revoked key. */
  unauthorized: boolean
  /** The next n creates answer 503. */
  serviceUnavailableCreates: number
  /** Live sandboxes that answer as if they had vanished: 404 on the API, 502 at the edge. */
  notFoundIds: string[]
  /** Each create waits this long before it starts the sandbox. */
  slowCreateMs: number
  /** The plan's cap on running sandboxes: creates beyond it answer 429. Null means no cap. */
  maxConcurrent: number | null
  /** The team's plan: caps a sandbox's life at 1 h (hobby, the default) or 24 h (pro). See plan.ts. */
  plan: Plan
  /** Each kill waits this long before it lands (and answers): until then the sandbox runs and counts against maxConcurrent. */
  slowKillMs: number
  /** Answers E2B's edge gives itself (403, 409, 429), each for its next `times` requests to a sandbox or all: see edge-answers.ts. */
  edgeAnswers: EdgeAnswer[]
}

export function noFaults(): Faults {
  return {
    rateLimitCreates: 0,
    retryAfterSeconds: 1,
    unauthorized: false,
    serviceUnavailableCreates: 0,
    notFoundIds: [],
    slowCreateMs: 0,
    maxConcurrent: null,
    plan: 'hobby',
    slowKillMs: 0,
    edgeAnswers: [],
  }
}

const count = (value: unknown) => typeof value === 'number' && Number.isInteger(value) && value >= 0

/** The checks a patch must pass, one per switch, each returning an error message or null. */
const validators: { [K in keyof Faults]: (value: unknown) => string | null } = {
  rateLimitCreates: (v) => (count(v) ? null : 'must be a whole number >= 0'),
  retryAfterSeconds: (v) => (count(v) ? null : 'must be a whole number of seconds >= 0'),
  unauthorized: (v) => (typeof v === 'boolean' ? null : 'must be true or false'),
  serviceUnavailableCreates: (v) => (count(v) ? null : 'must be a whole number >= 0'),
  notFoundIds: (v) =>
    Array.isArray(v) && v.every((id) => typeof id === 'string')
      ? null
      : 'must be an array of sandbox ids',
  slowCreateMs: (v) => (count(v) ? null : 'must be a whole number of milliseconds >= 0'),
  maxConcurrent: (v) => (v === null || count(v) ? null : 'must be a whole number >= 0 or null'),
  plan: (v) => (PLANS.includes(v as Plan) ? null : `must be one of ${PLANS.join(', ')}`),
  slowKillMs: (v) => (count(v) ? null : 'must be a whole number of milliseconds >= 0'),
  edgeAnswers: checkEdgeAnswers,
}

/** Applies a partial update in place; throws with every bad field named, changing nothing. */
export function applyFaultPatch(faults: Faults, patch: unknown): void {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch))
    throw new Error('the body must be a JSON object of fault switches')
  const problems: string[] = []
  for (const [name, value] of Object.entries(patch)) {
    const validate = validators[name as keyof Faults]
    if (!validate)
      problems.push(`${name}: unknown switch (known: ${Object.keys(validators).join(', ')})`)
    else {
      const problem = validate(value)
      if (problem) problems.push(`${name}: ${problem}`)
    }
  }
  if (problems.length > 0) throw new Error(problems.join('; '))
  Object.assign(faults, patch)
}

/** Takes one from a countdown switch: true if this call is one of the n to fail. */
export function takeOne(
  faults: Faults,
  name: 'rateLimitCreates' | 'serviceUnavailableCreates',
): boolean {
  if (faults[name] <= 0) return false
  faults[name]--
  return true
}
