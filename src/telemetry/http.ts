// The server span of each request to a run route: `POST /v1/run`, the parent of every
// other span of the run, continuing the caller's trace when it sends a `traceparent`.
import {
  context,
  propagation,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Span,
} from '@opentelemetry/api'
import {
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_URL_PATH,
  ATTR_URL_SCHEME,
  ATTR_USER_AGENT_ORIGINAL,
} from '@opentelemetry/semantic-conventions'
import type { MiddlewareHandler } from 'hono'
import { tracer } from './spans.ts'

/** Reads a W3C trace context from request headers (the server span here, the websocket's connection span). */
export const headerGetter = {
  keys: (headers: Headers) => [...headers.keys()],
  get: (headers: Headers, key: string) => headers.get(key) ?? undefined,
}

/** Middleware: one SERVER span around the rest of the request's handling. */
export function traceRequests(route: string): MiddlewareHandler {
  return async (c, next) => {
    const request = c.req.raw
    const parent = propagation.extract(context.active(), request.headers, headerGetter)
    const span = tracer().startSpan(
      `${request.method} ${route}`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          [ATTR_HTTP_REQUEST_METHOD]: request.method,
          [ATTR_HTTP_ROUTE]: route,
          [ATTR_URL_PATH]: c.req.path,
          [ATTR_URL_SCHEME]: request.url.startsWith('https:') ? 'https' : 'http',
          ...(request.headers.get('user-agent')
            ? { [ATTR_USER_AGENT_ORIGINAL]: request.headers.get('user-agent')! }
            : {}),
        },
      },
      parent,
    )
    try {
      await context.with(trace.setSpan(parent, span), next)
    } finally {
      finish(span, c.res.status, c.error)
    }
    // A sampled run tells its caller where its trace is (W3C Trace Context's traceresponse):
    // the playground links it, a client can log it.
    const { traceId, spanId, traceFlags } = span.spanContext()
    if (traceFlags & TraceFlags.SAMPLED)
      c.res.headers.set('traceresponse', `00-${traceId}-${spanId}-01`)
  }
}

function finish(span: Span, status: number, error: unknown): void {
  span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status)
  if (status >= 400) {
    const type = (error as { type?: string } | undefined)?.type ?? String(status)
    span.setAttribute(ATTR_ERROR_TYPE, type)
  }
  // A server span fails on 5xx only: a 4xx is the client's mistake, answered correctly.
  if (status >= 500) {
    if (error instanceof Error) span.recordException(error)
    span.setStatus({
      code: SpanStatusCode.ERROR,
      message: error instanceof Error ? error.message : `HTTP ${status}`,
    })
  }
  span.end()
}
