// Holds a server's answers to its own OpenAPI document (GET /openapi.json): `checkedApp(app)`
// makes every answer of app.request / app.fetch validate against the document's response for
// its route, status and content type, or the request fails naming what does not fit. The
// end-to-end suites wrap their apps with it, so the document cannot drift from the server.
import Ajv2020 from 'ajv/dist/2020.js'
import addFormats from 'ajv-formats'
import type { Hono } from 'hono'
import { openApiDocument } from '../../src/api/openapi.ts'
import { readAnswer } from './http.ts'

const document = openApiDocument('test') as Record<string, any>
const ajv = new Ajv2020({ strict: false, allErrors: true, validateSchema: false })
addFormats(ajv)
ajv.addSchema(document, 'openapi')

const pointer = (...parts: string[]) =>
  parts.map((part) => part.replaceAll('~', '~0').replaceAll('/', '~1')).join('/')

/** Why `response` does not fit the document, or null when it does (or the route is not listed). */
export async function contractProblem(
  method: string,
  path: string,
  response: Response,
): Promise<string | null> {
  // A path the document does not list (a 404 for a route the API does not have) is not checked.
  if (!(path in document.paths)) return null
  const route = path
  const operation = document.paths[route][method.toLowerCase()]
  if (!operation) return `${method} ${route}: not in the document`
  const status = String(response.status)
  const declared = operation.responses[status]
  if (!declared) return `${method} ${route}: status ${status} is not in the document`
  if (status === '101') return null
  const type = (response.headers.get('content-type') ?? '').split(';')[0]!.trim()
  if (!declared.content?.[type])
    return `${method} ${route} ${status}: content type ${JSON.stringify(type)} is not in the document`
  const answer = await readAnswer(response.clone() as Response)
  const body = type === 'application/cbor' ? envelopeOf(answer) : answer
  const ref = `openapi#/${pointer('paths', route, method.toLowerCase(), 'responses', status, 'content', type, 'schema')}`
  const validate = ajv.getSchema(ref)
  if (!validate) return `${ref}: no schema`
  if (validate(body)) return null
  const errors = (validate.errors ?? [])
    .slice(0, 5)
    .map((e) => `${e.instancePath || '(body)'} ${e.message} ${JSON.stringify(e.params)}`)
  return `${method} ${route} ${status} ${type} does not fit the document: ${errors.join('; ')}`
}

/**
 * A CBOR answer's outputs are tagged CBOR (the kinds' lossless forms), not the JSON forms the
 * `value` schema describes: the envelope is checked, each output as present.
 */
function envelopeOf(body: unknown): unknown {
  if (body === null || typeof body !== 'object' || !('outputs' in body)) return body
  const outputs = body.outputs as Record<string, unknown>
  if (outputs === null || typeof outputs !== 'object') return body
  return { ...body, outputs: Object.fromEntries(Object.keys(outputs).map((k) => [k, null])) }
}

/** `app`, its request() and fetch() answers checked against the document. */
export function checkedApp<App extends Hono<any>>(app: App): App {
  const fetch = app.fetch.bind(app)
  const check = async (request: Request, response: Response): Promise<Response> => {
    const problem = await contractProblem(request.method, new URL(request.url).pathname, response)
    if (problem) throw new Error(`the answer breaks the API document: ${problem}`)
    return response
  }
  const checkedFetch = async (request: Request, ...rest: unknown[]) => {
    const response = await (fetch as (...args: unknown[]) => Response | Promise<Response>)(
      request,
      ...rest,
    )
    return check(request, response)
  }
  Object.assign(app, {
    fetch: checkedFetch,
    request: (input: string | Request, init?: RequestInit) => {
      const request =
        input instanceof Request
          ? input
          : new Request(input.startsWith('/') ? `http://localhost${input}` : input, init)
      return checkedFetch(request)
    },
  })
  return app
}
