// Port 49999: the code interpreter's /execute, answered as the NDJSON stream runCode
// reads, from the sandbox's stateful Python kernel. One context (the default) and Python only.
import { Hono } from 'hono'
import { apiError } from './api-error.ts'
import type { StandinSandbox } from './sandbox.ts'

type Env = { Bindings: { sandbox: StandinSandbox } }

export const interpreter = new Hono<Env>()

interpreter.get('/health', (c) => c.text('OK'))

interpreter.post('/execute', async (c) => {
  let body: { code?: unknown; context_id?: unknown; language?: unknown; env_vars?: unknown }
  try {
    body = await c.req.json()
  } catch {
    return apiError(c, 400, 'the body is not valid JSON')
  }
  if (typeof body.code !== 'string') return apiError(c, 400, 'code: required, a string')
  if (body.language != null && body.language !== 'python')
    return apiError(c, 400, `language '${String(body.language)}': the stand-in runs python only`)
  if (body.context_id != null)
    return apiError(
      c,
      404,
      `context '${String(body.context_id)}' not found: the stand-in has the default context only`,
    )
  const envVars = body.env_vars ?? {}
  if (
    typeof envVars !== 'object' ||
    Array.isArray(envVars) ||
    !Object.values(envVars).every((v) => typeof v === 'string')
  ) {
    return apiError(c, 400, 'env_vars: must be an object of strings')
  }
  const stream = c.env.sandbox.codeKernel().execute(body.code, envVars as Record<string, string>)
  return new Response(stream, { headers: { 'Content-Type': 'application/x-ndjson' } })
})

interpreter.all('*', (c) =>
  apiError(
    c,
    501,
    `code interpreter ${c.req.method} ${c.req.path} is not served by the E2B stand-in (only /execute)`,
  ),
)
