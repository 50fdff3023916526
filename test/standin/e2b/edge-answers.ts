// The `edgeAnswers` switch: E2B's edge answering a request itself, before it reaches the
// sandbox, with the statuses and bodies E2B's own edge gives (e2b-dev/infra at 54693ff,
// packages/shared/pkg/proxy: handler.go and template/*.go; the client proxy in
// packages/client-proxy/internal/proxy/proxy.go, the orchestrator's in
// packages/orchestrator/pkg/proxy/proxy.go). Each body is the JSON the edge sends a
// non-browser client, its fields in E2B's order, with `Content-Type: application/json;
// charset=utf-8` and no Retry-After (none of these sets one; `retryAfter` adds one, to test
// a client that honours it).

/** Why the edge answers, and the status it answers with. */
export const EDGE_ANSWER_REASONS = {
  /** Orchestrator proxy: the e2b-traffic-access-token header does not match the sandbox's. */
  'invalid-token': 403,
  /** Orchestrator proxy: the sandbox has a traffic token and the request sent none. */
  'missing-token': 403,
  /** Client proxy: an auto-resume refused the credentials the request carried. */
  'resume-denied': 403,
  /** Client proxy: the sandbox was pausing or snapshotting for longer than the resume waits. */
  transitioning: 409,
  /** Orchestrator proxy: more concurrent connections to the sandbox than its limit. */
  connections: 429,
  /** Client proxy: resuming the sandbox would pass the team's concurrent-sandbox limit. */
  'team-limit': 429,
  /** The load balancer (Cloud Armor): too many requests from this IP (60,000 a minute). */
  'ip-throttle': 429,
} as const

export type EdgeAnswerReason = keyof typeof EDGE_ANSWER_REASONS
type EdgeStatus = (typeof EDGE_ANSWER_REASONS)[EdgeAnswerReason]

/** The reason a status stands for when a switch names none. */
const DEFAULT_REASON: Record<EdgeStatus, EdgeAnswerReason> = {
  403: 'invalid-token',
  409: 'transitioning',
  429: 'connections',
}

export interface EdgeAnswer {
  status: EdgeStatus
  /** How many more requests get this answer; the entry is dropped when it reaches 0. */
  times: number
  /** Only requests to this sandbox (else to any). */
  sandboxId?: string
  /** Only requests to this port (else to any). */
  port?: number
  /** Sends `Retry-After: <seconds>` (E2B's edge sends none). */
  retryAfter?: number
  /** Which of E2B's answers with that status (default: invalid-token, transitioning, connections). */
  reason?: EdgeAnswerReason
}

/** The concurrent-connection limit the `connections` answer names (a flag at E2B, no fixed number). */
const CONNECTION_LIMIT = 1000
const TOKEN_HEADER = 'e2b-traffic-access-token'

const count = (value: unknown) => typeof value === 'number' && Number.isInteger(value) && value >= 0

/** The switch's check: null if `value` is a valid list of answers, else what is wrong. */
export function checkEdgeAnswers(value: unknown): string | null {
  if (!Array.isArray(value))
    return 'must be an array of { status, times, sandboxId?, port?, retryAfter?, reason? }'
  for (const [i, entry] of value.entries()) {
    const at = `[${i}]`
    if (typeof entry !== 'object' || entry === null) return `${at} must be an object`
    const { status, times, sandboxId, port, retryAfter, reason, ...rest } = entry as Record<
      string,
      unknown
    >
    if (Object.keys(rest).length > 0)
      return `${at} unknown field(s): ${Object.keys(rest).join(', ')}`
    if (!Object.hasOwn(DEFAULT_REASON, String(status)))
      return `${at}.status must be 403, 409 or 429`
    if (!count(times)) return `${at}.times must be a whole number >= 0`
    if (sandboxId !== undefined && typeof sandboxId !== 'string')
      return `${at}.sandboxId must be a string`
    if (port !== undefined && !(count(port) && (port as number) <= 65535))
      return `${at}.port must be a port number`
    if (retryAfter !== undefined && !count(retryAfter))
      return `${at}.retryAfter must be a whole number of seconds >= 0`
    if (reason !== undefined) {
      if (!Object.hasOwn(EDGE_ANSWER_REASONS, String(reason)))
        return `${at}.reason must be one of ${Object.keys(EDGE_ANSWER_REASONS).join(', ')}`
      if (EDGE_ANSWER_REASONS[reason as EdgeAnswerReason] !== status)
        return `${at}.reason ${String(reason)} is a ${EDGE_ANSWER_REASONS[reason as EdgeAnswerReason]}, not a ${String(status)}`
    }
  }
  return null
}

/** Takes one from the first answer that applies to a request for `sandboxId`:`port`; null if none does. */
export function takeEdgeAnswer(
  answers: EdgeAnswer[],
  sandboxId: string,
  port: number,
): EdgeAnswer | null {
  const index = answers.findIndex(
    (answer) =>
      answer.times > 0 &&
      (answer.sandboxId === undefined || answer.sandboxId === sandboxId) &&
      (answer.port === undefined || answer.port === port),
  )
  if (index < 0) return null
  const answer = answers[index]!
  answer.times--
  if (answer.times === 0) answers.splice(index, 1)
  return answer
}

/** The response E2B's edge gives for `answer` (as it gives it to a non-browser client). */
export function edgeAnswerResponse(answer: EdgeAnswer, sandboxId: string): Response {
  const reason = answer.reason ?? DEFAULT_REASON[answer.status]
  const headers: Record<string, string> = { 'Content-Type': 'application/json; charset=utf-8' }
  if (answer.retryAfter !== undefined) headers['Retry-After'] = String(answer.retryAfter)
  if (reason === 'ip-throttle') {
    // Cloud Armor's deny(429), before any of E2B's code runs: Google's front end answers with
    // its own short page (its exact bytes are not published; this is its usual form).
    headers['Content-Type'] = 'text/html; charset=UTF-8'
    return new Response(
      '<!doctype html><meta charset="utf-8"><meta name=viewport content="width=device-width, initial-scale=1"><title>429</title>429 Too Many Requests',
      { status: 429, headers },
    )
  }
  return new Response(JSON.stringify(edgeErrorBody(reason, sandboxId)), {
    status: answer.status,
    headers,
  })
}

/** infra's template/*.go structs, marshalled: same fields, same order, same messages. */
function edgeErrorBody(reason: EdgeAnswerReason, sandboxId: string): Record<string, unknown> {
  const code = EDGE_ANSWER_REASONS[reason]
  switch (reason) {
    case 'invalid-token':
      return {
        sandboxId,
        message: `Sandbox is secured with traffic access token. Provided token in header '${TOKEN_HEADER}' is invalid`,
        code,
      }
    case 'missing-token':
      return {
        sandboxId,
        message: `Sandbox is secured with traffic access token. Token header '${TOKEN_HEADER}' is missing`,
        code,
      }
    case 'resume-denied':
      return {
        sandboxId,
        message:
          "This sandbox can't be resumed with the credentials provided. Check your access token and try again.",
        code,
      }
    case 'transitioning':
      return {
        sandboxId,
        message: 'The sandbox is still transitioning. Try again in a moment.',
        code,
      }
    case 'connections':
      return {
        sandboxId,
        message: `The sandbox has too many concurrent incoming connections (limit: ${CONNECTION_LIMIT})`,
        code,
        connectionLimit: CONNECTION_LIMIT,
      }
    case 'team-limit':
      // The API's message for a resume past the team's cap (packages/api/internal/orchestrator/create_instance.go).
      return {
        sandboxId,
        message:
          "you have reached the maximum number of concurrent E2B sandboxes (20). If you need more, please visit 'https://e2b.dev/docs/billing'",
        code,
      }
    case 'ip-throttle':
      throw new Error('the ip-throttle answer has no JSON body')
  }
}

/** E2B's answer for a request whose traffic token is missing or wrong (the orchestrator proxy's check). */
export function trafficTokenRefused(sandboxId: string, given: string | null): Response {
  return edgeAnswerResponse(
    { status: 403, times: 1, reason: !given ? 'missing-token' : 'invalid-token' },
    sandboxId,
  )
}
