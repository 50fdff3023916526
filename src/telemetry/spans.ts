// Span helpers the routes and backends use. With no tracer provider registered (tracing
// off) every call here is the API's no-op: no allocation of note, no export.
import {
  SpanStatusCode,
  trace,
  type Attributes,
  type Span,
  type SpanOptions,
} from '@opentelemetry/api'
import { BlockgateError } from '../errors.ts'

const TRACER_NAME = 'blockgate'

export const tracer = () => trace.getTracer(TRACER_NAME)

/**
 * The active span when it is not being recorded (its trace was not sampled): its children
 * would not be either, so they are not made at all. Most runs take this path when sampling
 * keeps a fraction of traces, and it costs next to nothing.
 */
function unsampledParent(): Span | undefined {
  const active = trace.getActiveSpan()
  return active && !active.isRecording() ? active : undefined
}

/** Runs `fn` inside an active span that ends with it; a throw marks the span failed. */
export function inSpan<T>(
  name: string,
  attributes: Attributes,
  fn: (span: Span) => Promise<T>,
  options: SpanOptions = {},
): Promise<T> {
  const unsampled = unsampledParent()
  if (unsampled) return fn(unsampled)
  return tracer().startActiveSpan(name, { ...options, attributes }, async (span) => {
    try {
      return await fn(span)
    } catch (error) {
      markFailed(span, error)
      throw error
    } finally {
      span.end()
    }
  })
}

/** A short span for a step with no duration of its own to speak of (release, kill). */
export function mark(name: string, attributes: Attributes): void {
  if (unsampledParent()) return
  tracer().startSpan(name, { attributes }).end()
}

/** A span that already happened elsewhere (inside the runtime), placed by its own clock. */
export function pastSpan(
  name: string,
  startMs: number,
  endMs: number,
  attributes: Attributes = {},
): void {
  if (unsampledParent()) return
  tracer().startSpan(name, { startTime: startMs, attributes }).end(endMs)
}

function markFailed(span: Span, error: unknown): void {
  if (!span.isRecording()) return
  const type = errorType(error)
  span.recordException(error instanceof Error ? error : String(error))
  span.setStatus({
    code: SpanStatusCode.ERROR,
    message: error instanceof Error ? error.message : String(error),
  })
  span.setAttribute('error.type', type)
}

/** The `error.type` of a failure: blockgate's own type names, else the error's class. */
export function errorType(error: unknown): string {
  if (error instanceof BlockgateError) return error.type
  if (error instanceof Error) return error.name
  return '_OTHER'
}
