// Typed errors that know their HTTP response. Routes and backends throw them; the one
// `onError` in app.ts turns them into `{ error: { type, message, ... } }` bodies.

export type ErrorDetails = Record<string, unknown>

export class BlockgateError extends Error {
  readonly status: number
  readonly type: string
  readonly details: ErrorDetails
  readonly headers: Record<string, string>

  constructor(
    status: number,
    type: string,
    message: string,
    {
      details = {},
      headers = {},
      cause,
    }: { details?: ErrorDetails; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(message, { cause })
    this.name = type
    this.status = status
    this.type = type
    this.details = details
    this.headers = headers
  }

  toBody(): { error: { type: string; message: string } & ErrorDetails } {
    return { error: { ...this.details, type: this.type, message: this.message } }
  }
}

/** 400: the request itself is wrong; the message names the offending field. */
export class BadRequest extends BlockgateError {
  constructor(message: string, details?: ErrorDetails) {
    super(400, 'BadRequest', message, { details })
  }
}

/** 426: a websocket route asked for without the upgrade (or one Bun could not complete). */
export class UpgradeRequired extends BlockgateError {
  constructor(message: string) {
    super(426, 'UpgradeRequired', message, { headers: { Upgrade: 'websocket' } })
  }
}

/** 401: the request's credentials are missing or not among those configured. */
export class Unauthorized extends BlockgateError {
  constructor(message: string) {
    super(401, 'Unauthorized', message, {
      headers: { 'WWW-Authenticate': 'Bearer realm="blockgate"' },
    })
  }
}

/** 403: a valid key, asking for what it does not hold (another workspace). */
export class Forbidden extends BlockgateError {
  constructor(message: string) {
    super(403, 'Forbidden', message)
  }
}

export class NotFound extends BlockgateError {
  constructor(message: string) {
    super(404, 'NotFound', message)
  }
}

export class PayloadTooLarge extends BlockgateError {
  constructor(message: string) {
    super(413, 'PayloadTooLarge', message)
  }
}

/** 413 on the way back: the block's outputs do not fit in one reply. */
export class OutputTooLarge extends BlockgateError {
  constructor(message: string) {
    super(413, 'OutputTooLarge', message)
  }
}

export class UnsupportedMediaType extends BlockgateError {
  constructor(message: string) {
    super(415, 'UnsupportedMediaType', message)
  }
}

/** 422: the user's code failed to compile or raised. `type` comes from the runtime. */
export class BlockCodeError extends BlockgateError {
  constructor(
    type: 'BlockCompileError' | 'BlockRuntimeError',
    message: string,
    details: ErrorDetails,
  ) {
    super(422, type, message, { details })
  }
}

/** 504: the block ran past its wall-clock budget; its worker was killed and replaced. */
export class BlockTimeout extends BlockgateError {
  constructor(timeoutMs: number, details?: ErrorDetails) {
    super(504, 'BlockTimeout', `the block did not finish within timeout_ms=${timeoutMs}`, {
      details,
    })
  }
}

/** 503 (or 429 when the queue is full): no capacity now; retry after `retryAfterS` seconds. */
export class Overloaded extends BlockgateError {
  constructor(message: string, retryAfterS: number, status: 429 | 503 = 503) {
    super(status, 'Overloaded', message, { headers: { 'Retry-After': String(retryAfterS) } })
  }
}

/** 500: the worker process died under the run (crash, os._exit, a signal). */
export class WorkerCrashed extends BlockgateError {
  constructor(message: string, details?: ErrorDetails) {
    super(500, 'WorkerCrashed', message, { details })
  }
}

/** 500: a bug or broken invariant in blockgate itself (never the user's fault). */
export class InternalError extends BlockgateError {
  constructor(message: string, cause?: unknown) {
    super(500, 'InternalError', message, { cause })
  }
}

/**
 * 500, as InternalError (same type, message and body), for a failure the Python runtime reported
 * under a type blockgate does not map. The runtime shares its process with the block, so this
 * text is the block's to choose (an output whose __repr__ raises, or a forged reply): it is
 * logged as the block's (warn, `block_error`), never as blockgate's own fault.
 */
export class RuntimeReportedError extends InternalError {
  constructor(
    readonly reportedType: string,
    readonly reportedMessage: string,
  ) {
    super(`the runtime answered ${reportedType}: ${reportedMessage}`)
  }
}

/** 502: a remote backend (E2B) failed; the message names its error class. */
export class RemoteBackendFailed extends BlockgateError {
  constructor(message: string, details?: ErrorDetails) {
    super(502, 'RemoteBackendFailed', message, { details })
  }
}
