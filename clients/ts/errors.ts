// Typed errors, one per error `type` of blockgate's contract (README, "Errors"), as the Python
// client has them (clients/python/src/blockgate/errors.py).

/** The body of an error answer: `type`, `message` and the details of its type. */
export type ErrorBody = { type: string; message: string } & Record<string, unknown>

export class BlockgateError extends Error {
  override name = 'BlockgateError'
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly body: ErrorBody,
  ) {
    super(`${type} (${status}): ${message}`)
  }
}

/** The request did not fit; `path` names the field or input. */
export class BadRequest extends BlockgateError {
  override name = 'BadRequest'
  get problems(): string[] {
    return Array.isArray(this.body.problems) ? (this.body.problems as string[]) : []
  }
  get path(): string | null {
    if (typeof this.body.path === 'string') return this.body.path
    const first = this.problems[0] ?? this.body.message
    return first.includes(':') ? first.slice(0, first.indexOf(':')) : null
  }
}

/** 401 (no valid key) or 403 (the key does not hold the workspace). */
export class AuthError extends BlockgateError {
  override name = 'AuthError'
}
export class Unauthorized extends AuthError {
  override name = 'Unauthorized'
}
export class Forbidden extends AuthError {
  override name = 'Forbidden'
}
export class PayloadTooLarge extends BlockgateError {
  override name = 'PayloadTooLarge'
}
export class OutputTooLarge extends BlockgateError {
  override name = 'OutputTooLarge'
}

/** The block failed: where, counted in your own code (line 1 = the first of runCode). */
export class BlockError extends BlockgateError {
  override name = 'BlockError'
  // Own fields, not getters: JavaScriptCore gives every Error an own `line` (its source line).
  readonly line: number | null = (this.body.line as number | null | undefined) ?? null
  readonly function: string | null = (this.body.function as string | null | undefined) ?? null
  readonly snippet: string | null = (this.body.snippet as string | null | undefined) ?? null
  readonly traceback: string | null = (this.body.traceback as string | null | undefined) ?? null
  readonly stdout: string = (this.body.stdout as string | undefined) ?? ''
  readonly stderr: string = (this.body.stderr as string | undefined) ?? ''
}
export class BlockCompileError extends BlockError {
  override name = 'BlockCompileError'
}
export class BlockRuntimeError extends BlockError {
  override name = 'BlockRuntimeError'
}
export class BlockTimeout extends BlockgateError {
  override name = 'BlockTimeout'
}

/** No capacity now (429: too many waiting; 503: none became free): retry after `retryAfterS`. */
export class Overloaded extends BlockgateError {
  override name = 'Overloaded'
  constructor(status: number, type: string, message: string, body: ErrorBody, readonly retryAfterS: number) {
    super(status, type, message, body)
  }
}
export class WorkerCrashed extends BlockgateError {
  override name = 'WorkerCrashed'
}
/** blockgate itself failed, or answered what this client cannot read. */
export class ServerError extends BlockgateError {
  override name = 'ServerError'
}

const BY_TYPE: Record<string, typeof BlockgateError> = {
  BadRequest,
  Unauthorized,
  Forbidden,
  PayloadTooLarge,
  OutputTooLarge,
  BlockCompileError,
  BlockRuntimeError,
  BlockTimeout,
  WorkerCrashed,
  InternalError: ServerError,
}

const TYPE_BY_STATUS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  413: 'PayloadTooLarge',
  429: 'Overloaded',
  503: 'Overloaded',
  504: 'BlockTimeout',
}

/** The error for an answer of `status` with `body`; an unknown type by its status. */
export function errorFrom(status: number, body: unknown, retryAfter: string | null): BlockgateError {
  let error = (body as { error?: unknown } | null)?.error
  if (error === null || typeof error !== 'object') {
    // No error body: a proxy's answer, or Bun's own 413 for a body far over the limit.
    const type = TYPE_BY_STATUS[status] ?? 'ServerError'
    error = { type, message: `HTTP ${status} without an error body` }
  }
  const fields = error as ErrorBody
  const type = String(fields.type)
  const message = String(fields.message)
  if (type === 'Overloaded') {
    const seconds = Number(retryAfter ?? 1)
    return new Overloaded(status, type, message, fields, Number.isFinite(seconds) && seconds >= 0 ? seconds : 1)
  }
  const Class =
    BY_TYPE[type] ??
    (status === 401 || status === 403 ? AuthError : status === 400 ? BadRequest : ServerError)
  return new Class(status, type, message, fields)
}
