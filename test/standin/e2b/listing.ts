// GET /v2/sandboxes: the filters the SDK sends (metadata, state, template, startedAfter),
// newest first unless asked otherwise, and pages joined by an opaque `x-next-token` cursor.
import type { SandboxState, StandinSandbox } from './sandbox.ts'

export const DEFAULT_PAGE = 100
export const MAX_PAGE = 100

export interface ListQuery {
  metadata: Record<string, string>
  states: SandboxState[] | null
  template: string | null
  startedAfter: Date | null
  order: 'asc' | 'desc'
  limit: number
  after: Cursor | null
}

type Cursor = { startedAt: number; id: string }

export class BadListQuery extends Error {}

/** Reads the query as the SDK writes it; throws BadListQuery (a 400) on what it cannot read. */
export function parseListQuery(query: Record<string, string | undefined>): ListQuery {
  const states = query.state ? query.state.split(',') : null
  for (const state of states ?? [])
    if (state !== 'running' && state !== 'paused')
      throw new BadListQuery(`state: unknown state '${state}'`)
  const limit = query.limit === undefined ? DEFAULT_PAGE : Number(query.limit)
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE)
    throw new BadListQuery(`limit: must be a whole number from 1 to ${MAX_PAGE}`)
  const order = query.order ?? 'desc'
  if (order !== 'asc' && order !== 'desc') throw new BadListQuery(`order: must be asc or desc`)
  const startedAfter = query.startedAfter ? new Date(query.startedAfter) : null
  if (startedAfter && Number.isNaN(startedAfter.getTime()))
    throw new BadListQuery('startedAfter: not a timestamp')
  return {
    metadata: query.metadata ? parseMetadataFilter(query.metadata) : {},
    states: states as SandboxState[] | null,
    template: query.template || null,
    startedAfter,
    order,
    limit,
    after: query.nextToken ? decodeCursor(query.nextToken) : null,
  }
}

/** One page, and the token of the next (null on the last page). */
export function listPage(
  sandboxes: StandinSandbox[],
  query: ListQuery,
): { page: StandinSandbox[]; nextToken: string | null } {
  const direction = query.order === 'asc' ? 1 : -1
  const key = (sandbox: StandinSandbox): Cursor => ({
    startedAt: sandbox.startedAt.getTime(),
    id: sandbox.id,
  })
  const compare = (a: Cursor, b: Cursor) =>
    direction * (a.startedAt - b.startedAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  const matching = sandboxes
    .filter((sandbox) =>
      Object.entries(query.metadata).every(
        ([name, value]) => sandbox.spec.metadata[name] === value,
      ),
    )
    .filter((sandbox) => !query.states || query.states.includes(sandbox.state))
    .filter((sandbox) => !query.template || sandbox.spec.templateId === query.template)
    .filter((sandbox) => !query.startedAfter || sandbox.startedAt >= query.startedAfter)
    .sort((a, b) => compare(key(a), key(b)))
  const rest = query.after
    ? matching.filter((sandbox) => compare(key(sandbox), query.after!) > 0)
    : matching
  const page = rest.slice(0, query.limit)
  const last = page.at(-1)
  return { page, nextToken: rest.length > page.length && last ? encodeCursor(key(last)) : null }
}

/**
 * The SDK sends `metadata=` a URL-encoded query string whose keys and values it encoded
 * once more: "user%3Dabc%26app%3Dprod" for {user: 'abc', app: 'prod'}.
 */
function parseMetadataFilter(text: string): Record<string, string> {
  const filter: Record<string, string> = {}
  for (const [name, value] of new URLSearchParams(text)) {
    try {
      filter[decodeURIComponent(name)] = decodeURIComponent(value)
    } catch {
      throw new BadListQuery(`metadata: '${name}=${value}' is not URL-encoded`)
    }
  }
  return filter
}

function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify([cursor.startedAt, cursor.id])).toString('base64url')
}

function decodeCursor(token: string): Cursor {
  try {
    const [startedAt, id] = JSON.parse(Buffer.from(token, 'base64url').toString()) as [
      unknown,
      unknown,
    ]
    if (typeof startedAt === 'number' && typeof id === 'string') return { startedAt, id }
  } catch {
    // fall through
  }
  throw new BadListQuery('nextToken: not a token this API gave out')
}
