// Port 49999: the code interpreter's /execute, answered as the NDJSON stream runCode reads,
// from the sandbox's stateful Python kernel. One context (the default) and Python only. Its
// answers take the forms of E2B's server (a FastAPI app): a JSON "OK" for /health, FastAPI's
// 422 for a body it cannot read, plain text for the errors the handler returns itself, and the
// stream with no media type (spec/code-interpreter/ holds the contract it is checked against).
import { type Context, Hono } from 'hono'
import type { StandinSandbox } from './sandbox.ts'

type Env = { Bindings: { sandbox: StandinSandbox } }

export const interpreter = new Hono<Env>()

interpreter.get('/health', (c) => c.json('OK'))

interpreter.post('/execute', async (c) => {
  let body: { code?: unknown; context_id?: unknown; language?: unknown; env_vars?: unknown }
  try {
    body = await c.req.json()
  } catch {
    return unreadable(c, ['body'], 'JSON decode error', 'json_invalid')
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    return unreadable(c, ['body'], 'Input should be a valid dictionary', 'model_attributes_type')
  if (typeof body.code !== 'string')
    return unreadable(c, ['body', 'code'], 'Input should be a valid string', 'string_type')
  const envVars = body.env_vars ?? {}
  if (typeof envVars !== 'object' || Array.isArray(envVars))
    return unreadable(c, ['body', 'env_vars'], 'Input should be a valid dictionary', 'dict_type')
  for (const [name, value] of Object.entries(envVars))
    if (typeof value !== 'string')
      return unreadable(
        c,
        ['body', 'env_vars', name],
        'Input should be a valid string',
        'string_type',
      )
  if (body.context_id != null && body.language != null)
    return c.text('Only one of context_id or language can be provided', 400)
  if (body.context_id != null) return c.text(`Context ${String(body.context_id)} not found`, 404)
  if (body.language != null && body.language !== 'python')
    return c.text(`language '${String(body.language)}': the stand-in runs python only`, 501)
  const stream = c.env.sandbox.codeKernel().execute(body.code, envVars as Record<string, string>)
  return new Response(stream)
})

interpreter.all('*', (c) =>
  c.text(
    `code interpreter ${c.req.method} ${c.req.path} is not served by the E2B stand-in (only /execute)`,
    501,
  ),
)

/** FastAPI's answer to a request body its model refuses. */
function unreadable(c: Context<Env>, loc: string[], msg: string, type: string) {
  return c.json({ detail: [{ loc, msg, type }] }, 422)
}
