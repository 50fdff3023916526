// E2B's error body: `{code, message}`. The SDK reads `code` to tell a missing sandbox
// (404) from other failures, and maps 401/429/503 to its own error classes.
import type { Context } from 'hono'
import type { ContentfulStatusCode } from 'hono/utils/http-status'

export function apiError(
  c: Context,
  status: ContentfulStatusCode,
  message: string,
  headers: Record<string, string> = {},
): Response {
  return c.json({ code: status, message }, status, headers)
}
