// The stand-in held to E2B's own contract: every request that reaches the control plane and
// every answer it gives, every request to envd's HTTP API (port 49983) and envd's answer, are
// checked against the OpenAPI specs E2B publishes (vendored verbatim in spec/, origin in
// spec/README.md); every request to the code interpreter (port 49999) and its answer, each
// streamed line of /execute included, against the document FastAPI makes of E2B's server and
// the JSON Schema of the models it streams (generated: spec/code-interpreter/). The validator
// is openapi-backend's (Ajv underneath), and Ajv for the stream's lines. Whatever does not
// match is a divergence: recorded with its method, path, side and the validator's message, and
// `Standin.stop()` throws if any was recorded that KNOWN_DIVERGENCES does not name.
import Ajv, { type ValidateFunction } from 'ajv'
import addFormats from 'ajv-formats'
import type { Context, Next } from 'hono'
import { type Document, OpenAPIBackend, type Operation, SetMatchType } from 'openapi-backend'
import { parse } from 'openapi-backend/refparser'
import { ENVD_PORT, INTERPRETER_PORT, targetOf } from './data-plane.ts'

export type Api = 'control-plane' | 'envd' | 'code-interpreter'
/**
 * 'route': the route is not in the spec; 'request': what was sent; 'response': the stand-in's
 * answer; 'stream': a line of a streamed answer (or its end).
 */
type Side = 'route' | 'request' | 'response' | 'stream'

export interface Divergence {
  api: Api
  method: string
  /** The path as requested. */
  path: string
  /** The route as the spec (or, for a route it lacks, the SDK) names it: "POST /sandboxes/{sandboxID}/timeout". */
  route: string | null
  side: Side
  /** The answer's status (a response divergence only). */
  status: number | null
  message: string
}

/** A divergence that is known and explained: seen, counted, never failing the suite. */
export interface KnownDivergence {
  id: string
  api: Api
  route: string
  side: Side
  status?: number
  message?: RegExp
  why: string
}

/**
 * Routes SDK 2.51 calls that the vendored spec (the newest published, older than the SDK)
 * does not list: each is checked as the v1 operation it supersedes.
 */
const SUPERSEDED: { api: Api; method: string; route: string; match: RegExp; checkedAs: string }[] =
  [
    {
      api: 'control-plane',
      method: 'POST',
      route: 'POST /v2/sandboxes',
      match: /^\/v2\/sandboxes$/,
      checkedAs: '/sandboxes',
    },
    {
      api: 'control-plane',
      method: 'POST',
      route: 'POST /v2/sandboxes/{sandboxID}/connect',
      match: /^\/v2\/sandboxes\/([^/]+)\/connect$/,
      checkedAs: '/sandboxes/$1/connect',
    },
  ]

/**
 * Every divergence the suite accepts, and why. Each names a route, a side, and for answers a
 * status: anything else the checks find fails the suite. Three kinds:
 *  - spec-behind-sdk: SDK 2.51 (its generated types) is newer than the newest published spec;
 *  - service-beyond-spec: e2b-dev/infra's API answers this, the spec does not list it;
 *  - code-beyond-document: E2B's code-interpreter server answers this, but FastAPI's document
 *    of it cannot say so (a handler's own Response);
 *  - backend: blockgate's backend (src/) sends this (none so far).
 */
export const KNOWN_DIVERGENCES: readonly KnownDivergence[] = [
  {
    id: 'spec-behind-sdk: v2 create',
    api: 'control-plane',
    route: 'POST /v2/sandboxes',
    side: 'route',
    why: 'SDK 2.51 creates with POST /v2/sandboxes (NewSandboxV2 → Sandbox); the spec has only v1 POST /sandboxes, checked instead (NewSandbox is NewSandboxV2 plus `secure`, default timeout 15 s, not 300 s).',
  },
  {
    id: 'spec-behind-sdk: v2 connect',
    api: 'control-plane',
    route: 'POST /v2/sandboxes/{sandboxID}/connect',
    side: 'route',
    why: 'SDK 2.51 connects with POST /v2/sandboxes/{sandboxID}/connect (ConnectSandboxV2 → Sandbox); the spec has only v1 POST /sandboxes/{sandboxID}/connect, checked instead.',
  },
  {
    id: 'spec-behind-sdk: v2 connect without a timeout',
    api: 'control-plane',
    route: 'POST /v2/sandboxes/{sandboxID}/connect',
    side: 'request',
    message: /^\/requestBody must have required property 'timeout'$/,
    why: "v1's ConnectSandbox requires `timeout`; v2's ConnectSandboxV2 makes it optional (300 s), and SDK 2.51 sends {} when no timeoutMs is given.",
  },
  {
    id: 'service-beyond-spec: 429 on create',
    api: 'control-plane',
    route: 'POST /v2/sandboxes',
    side: 'response',
    status: 429,
    why: "E2B answers a create 429 past its rate limit (with Retry-After, infra middleware/ratelimit) and past the plan's concurrent sandboxes (without, orchestrator/create_instance.go); SDK 2.51's types list 429 for v2 create, v1's operation in the spec does not.",
  },
  {
    id: 'service-beyond-spec: 404 on create for an unknown template',
    api: 'control-plane',
    route: 'POST /v2/sandboxes',
    side: 'response',
    status: 404,
    why: "infra answers 404 \"template '…' not found\" (cache/templates/errors.go); neither the spec nor SDK 2.51's types list 404 for a create.",
  },
  {
    id: 'service-beyond-spec: 400 on setTimeout',
    api: 'control-plane',
    route: 'POST /sandboxes/{sandboxID}/timeout',
    side: 'response',
    status: 400,
    message: /: (Max instance length exceeded|Error when parsing request: .*)$/,
    why: 'infra answers a keep-alive 400 "Max instance length exceeded" once the sandbox\'s plan lifetime is spent (orchestrator/keep_alive.go), and 400 "Error when parsing request: …" to a body it cannot read (handlers/sandbox_timeout.go); the spec lists 204, 401, 404 and 500 only.',
  },
  {
    id: 'code-beyond-document: 400 on execute',
    api: 'code-interpreter',
    route: 'POST /execute',
    side: 'response',
    status: 400,
    message: /: Only one of context_id or language can be provided$/,
    why: 'main.py answers a run that names both a context and a language with a plain-text 400 of its own; the document FastAPI makes lists only 200 and 422.',
  },
  {
    id: 'code-beyond-document: 404 on execute',
    api: 'code-interpreter',
    route: 'POST /execute',
    side: 'response',
    status: 404,
    message: /: Context .* not found$/,
    why: 'main.py answers a run in a context it does not hold with a plain-text 404 of its own; the document FastAPI makes lists only 200 and 422.',
  },
]

/** Answers E2B's edge gives itself, before a request reaches a sandbox: outside the sandbox's specs. */
const EDGE_STATUSES = new Set([403, 409, 429, 502, 503, 504])
/** envd's Connect RPC services (process, filesystem): specified by .proto files, not OpenAPI. */
const CONNECT_RPC = /^\/[a-z]+\.[A-Za-z]+\/[A-Za-z]+$/
/** The sandbox ports whose APIs have a spec here. */
const SANDBOX_APIS = new Map<number, Api>([
  [ENVD_PORT, 'envd'],
  [INTERPRETER_PORT, 'code-interpreter'],
])

interface Specs {
  'control-plane': OpenAPIBackend
  envd: OpenAPIBackend
  'code-interpreter': OpenAPIBackend
  /** One line of the code interpreter's POST /execute answer. */
  executeLine: ValidateFunction
}

/**
 * The operations the stand-in serves, their validators compiled up front: compiled on first
 * use instead (tens of ms each), they would stall a test's first call of each. Others are
 * compiled when first called.
 */
const SERVED: Record<Api, string[]> = {
  'control-plane': [
    'POST /sandboxes',
    'POST /sandboxes/{sandboxID}/connect',
    'GET /v2/sandboxes',
    'GET /sandboxes',
    'GET /sandboxes/{sandboxID}',
    'DELETE /sandboxes/{sandboxID}',
    'POST /sandboxes/{sandboxID}/timeout',
    'POST /sandboxes/{sandboxID}/pause',
    'GET /templates/aliases/{alias}',
  ],
  envd: ['GET /health', 'GET /files', 'POST /files'],
  'code-interpreter': ['GET /health', 'POST /execute'],
}

const spec = (file: string) => new URL(`spec/${file}`, import.meta.url).pathname

let loading: Promise<Specs> | null = null

/** Both specs, parsed, checked as OpenAPI and ready to validate against (once per process). */
export function loadSpecs(): Promise<Specs> {
  loading ??= (async () => ({
    'control-plane': await loadSpec(spec('openapi.yml'), SERVED['control-plane']),
    envd: await loadSpec(spec('envd.yaml'), SERVED.envd),
    'code-interpreter': await loadSpec(
      spec('code-interpreter/openapi.json'),
      SERVED['code-interpreter'],
    ),
    executeLine: await compileLineSchema(spec('code-interpreter/execute-stream.json')),
  }))()
  return loading
}

async function compileLineSchema(file: string): Promise<ValidateFunction> {
  const ajv = new Ajv({ allErrors: true, strict: true, discriminator: true })
  addFormats(ajv, ['date-time'])
  return ajv.compile(await Bun.file(file).json())
}

async function loadSpec(file: string, served: string[]): Promise<OpenAPIBackend> {
  const document = (await parse(file)) as { paths: Record<string, Record<string, unknown>> }
  // The validator keys on operationIds, which E2B's specs do not name (and FastAPI names after
  // its handlers): each is named by its route.
  for (const [path, item] of Object.entries(document.paths))
    for (const method of ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'])
      if (item[method])
        (item[method] as { operationId?: string }).operationId = `${method.toUpperCase()} ${path}`
  const backend = new OpenAPIBackend({
    definition: document as unknown as Document, // the parsed YAML: an OpenAPI 3.0 document
    strict: true,
    // Validators are compiled per operation on first use: the spec's template schemas (never
    // called here) use `nullable` beside `allOf`, which Ajv refuses to compile.
    quick: true,
    ajvOpts: { allErrors: true, validateSchema: false }, // the document as a whole is validated below
    customizeAjv: (ajv) => {
      addFormats(ajv, ['date-time', 'date', 'time', 'uri', 'email', 'uuid', 'ipv4', 'ipv6'])
      // Integer formats the spec's node and admin schemas use, beyond OpenAPI's own.
      const integer = (min: number, max: number) => (n: number) =>
        Number.isInteger(n) && n >= min && n <= max
      ajv.addFormat('uint32', { type: 'number', validate: integer(0, 2 ** 32 - 1) })
      ajv.addFormat('uint64', { type: 'number', validate: integer(0, Number.MAX_SAFE_INTEGER) })
      ajv.addFormat('int', { type: 'number', validate: integer(-(2 ** 63), 2 ** 63) })
      return ajv
    },
  })
  await backend.loadDocument()
  backend.validateDefinition() // throws unless the document is valid OpenAPI 3
  await backend.init()
  for (const operationId of served) {
    const operation = backend.router.getOperation(operationId)
    if (!operation) throw new Error(`${file} has no operation ${operationId}`)
    backend.validator.getRequestValidatorsForOperation(operationId)
    backend.validator.getStatusBasedResponseValidatorForOperation(operationId)
    if (Object.values(operation.responses ?? {}).some((response) => 'headers' in response))
      backend.validator.getResponseHeadersValidatorForOperation(operationId)
  }
  return backend
}

/** One request and its answer, read for the checks. */
interface Exchange {
  method: string
  path: string
  query: string
  headers: Record<string, string>
  requestType: string | null
  requestBody: unknown
  status: number
  responseHeaders: Record<string, string>
  responseType: string | null
  /** The answer's body: parsed JSON, null when empty, undefined when not JSON (not read). */
  responseBody: unknown
}

export class Contract {
  /** Divergences no entry of the known list explains: the suite fails on any. */
  readonly divergences: Divergence[] = []
  /** Known divergences seen, by id: how often. */
  readonly known = new Map<string, number>()

  constructor(
    private readonly specs: Specs,
    private readonly knownList: readonly KnownDivergence[] = KNOWN_DIVERGENCES,
  ) {}

  /** Hono middleware for the control plane: every call but the stand-in's own /_standin routes. */
  controlPlane() {
    return async (c: Context, next: Next) => {
      if (c.req.path.startsWith('/_standin/')) return next()
      const request = c.req.raw.clone() as unknown as Request
      await next()
      await this.check('control-plane', request, c.res.clone() as unknown as Response)
    }
  }

  /**
   * Wraps the edge: what it hands to envd and to the code interpreter, and their answers, are
   * checked against their specs; /execute's streamed answer line by line as it passes.
   */
  edge<Rest extends unknown[]>(
    serve: (request: Request, ...rest: Rest) => Promise<Response>,
  ): (request: Request, ...rest: Rest) => Promise<Response> {
    return async (request, ...rest) => {
      const api = sandboxApi(request)
      const { pathname } = new URL(request.url)
      if (!api || CONNECT_RPC.test(pathname)) return serve(request, ...rest)
      const copy = request.clone() as Request
      const response = await serve(request, ...rest)
      if (EDGE_STATUSES.has(response.status)) return response
      if (isExecuteStream(api, request.method, pathname, response)) {
        await this.check(api, copy, response, { streamed: true })
        return new Response(this.checkedStream(pathname, response.body!), {
          status: response.status,
          headers: response.headers,
        })
      }
      // A JSON, text (or empty) answer is read in full; a file's bytes are not, only its headers.
      const type = mediaType(response.headers.get('content-type'))
      const probe =
        type === null || type === 'application/json' || type === 'text/plain'
          ? response.clone()
          : new Response(null, { status: response.status, headers: response.headers })
      await this.check(api, copy, probe as Response)
      return response
    }
  }

  /**
   * /execute's answer as it passes: each line one of the streamed models (execute-stream.json),
   * the last one the end of the execution (E2B's stream.py always closes with it). A stream cut
   * off (its sandbox killed) is not checked for its end: E2B's is cut off the same way.
   */
  private checkedStream(
    path: string,
    body: ReadableStream<Uint8Array>,
  ): ReadableStream<Uint8Array> {
    const diverge = (message: string) =>
      this.record({
        api: 'code-interpreter',
        method: 'POST',
        path,
        route: 'POST /execute',
        side: 'stream',
        status: 200,
        message,
      })
    const validate = this.specs.executeLine
    const decoder = new TextDecoder()
    let buffered = ''
    let last: unknown = null
    const checkLine = (line: string) => {
      let value: unknown
      try {
        value = JSON.parse(line)
      } catch {
        return diverge(`a line that is not JSON: ${line.slice(0, 120)}`)
      }
      last = value
      if (!validate(value))
        for (const message of ajvMessages(validate.errors))
          diverge(`line ${line.slice(0, 120)}: ${message}`)
    }
    return body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          controller.enqueue(chunk)
          buffered += decoder.decode(chunk, { stream: true })
          for (let at = buffered.indexOf('\n'); at >= 0; at = buffered.indexOf('\n')) {
            checkLine(buffered.slice(0, at))
            buffered = buffered.slice(at + 1)
          }
        },
        flush() {
          buffered += decoder.decode()
          if (buffered !== '') diverge(`the stream ends inside a line: ${buffered.slice(0, 120)}`)
          if ((last as { type?: unknown } | null)?.type !== 'end_of_execution')
            diverge('the stream ends without {"type": "end_of_execution"}')
        },
      }),
    )
  }

  /** The unexplained divergences so far, cleared: for a test that provokes one on purpose. */
  take(): Divergence[] {
    return this.divergences.splice(0)
  }

  /** Throws, listing them, if any divergence was recorded that the known list does not explain. */
  assertNone(): void {
    if (this.divergences.length === 0) return
    const lines = this.divergences.map(describe)
    throw new Error(
      `The E2B stand-in saw ${lines.length} divergence(s) from E2B's published spec (test/standin/e2b/spec; known ones: KNOWN_DIVERGENCES in contract.ts):\n${lines.join('\n')}`,
    )
  }

  private record(divergence: Divergence): void {
    const known = this.knownList.find(
      (entry) =>
        entry.api === divergence.api &&
        entry.route === divergence.route &&
        entry.side === divergence.side &&
        (entry.status === undefined || entry.status === divergence.status) &&
        (entry.message === undefined || entry.message.test(divergence.message)),
    )
    if (known) this.known.set(known.id, (this.known.get(known.id) ?? 0) + 1)
    else this.divergences.push(divergence)
  }

  /** `streamed`: the answer's body is a stream, checked as it passes (not read here). */
  private async check(
    api: Api,
    request: Request,
    response: Response,
    { streamed = false } = {},
  ): Promise<void> {
    let exchange: Exchange
    try {
      exchange = await read(request, response, streamed)
    } catch (error) {
      this.record({
        api,
        method: request.method,
        path: new URL(request.url).pathname,
        route: null,
        side: 'request',
        status: response.status,
        message: `could not be read for the check: ${(error as Error).message}`,
      })
      return
    }
    for (const found of checkExchange(this.specs[api], api, exchange, streamed)) this.record(found)
  }
}

function describe(d: Divergence): string {
  const status = d.status === null ? '' : ` ${d.status}`
  return `  ${d.api} ${d.method} ${d.path} (${d.route ?? 'no route'}) ${d.side}${status}: ${d.message}`
}

/** The sandbox API a request at the edge is for, when it is one with a spec here. */
function sandboxApi(request: Request): Api | null {
  const target = targetOf(request)
  return 'port' in target ? (SANDBOX_APIS.get(target.port) ?? null) : null
}

/**
 * The code interpreter's answer to a run: newline-delimited JSON. FastAPI's document says only
 * "application/json, any schema" of it (the handler returns a Response), and the server sends
 * it with no media type (stream.py's StreamingListJsonResponse names none).
 */
const isExecuteStream = (api: Api, method: string, path: string, response: Response) =>
  api === 'code-interpreter' &&
  method === 'POST' &&
  path === '/execute' &&
  response.status === 200 &&
  response.body !== null

const mediaType = (header: string | null) =>
  header ? header.split(';')[0]!.trim().toLowerCase() : null

async function read(request: Request, response: Response, streamed: boolean): Promise<Exchange> {
  const url = new URL(request.url)
  const requestType = mediaType(request.headers.get('content-type'))
  let requestBody: unknown
  if (requestType === 'multipart/form-data') {
    // The parts by name, as the spec's multipart schema describes them.
    requestBody = Object.fromEntries(
      [...(await request.formData()).entries()].map(([name, value]) => [
        name,
        typeof value === 'string' ? value : '(binary)',
      ]),
    )
  } else {
    const text = await request.text()
    if (text === '') requestBody = undefined
    else if (requestType === 'application/json') requestBody = parseJson(text)
    else requestBody = {} // bytes the spec can only describe as binary: present, not checked
  }
  const responseType = mediaType(response.headers.get('content-type'))
  let responseBody: unknown
  if (streamed) responseBody = undefined
  else if (responseType === 'application/json') responseBody = parseJson(await response.text())
  else if (responseType === 'text/plain') responseBody = await response.text()
  else if (responseType === null) responseBody = (await response.text()) === '' ? null : undefined
  return {
    method: request.method.toLowerCase(),
    path: url.pathname,
    query: url.search.slice(1),
    headers: Object.fromEntries(request.headers.entries()),
    requestType,
    requestBody,
    status: response.status,
    responseHeaders: Object.fromEntries(response.headers.entries()),
    responseType,
    responseBody,
  }
}

function parseJson(text: string): unknown {
  if (text === '') return null
  try {
    return JSON.parse(text)
  } catch {
    return text // the validator reports it as malformed
  }
}

/** The divergences of one exchange: its route, its request, its answer. */
function checkExchange(
  spec: OpenAPIBackend,
  api: Api,
  x: Exchange,
  streamed: boolean,
): Divergence[] {
  const found: Divergence[] = []
  const METHOD = x.method.toUpperCase()
  const diverge = (side: Side, route: string | null, message: string) =>
    found.push({
      api,
      method: METHOD,
      path: x.path,
      route,
      side,
      status: side === 'response' ? x.status : null,
      message,
    })
  const request = {
    method: x.method,
    path: x.path,
    query: x.query,
    headers: x.headers,
    body: x.requestBody,
  }

  let operation: Operation | undefined = spec.router.matchOperation(request)
  let route = operation?.operationId ?? null
  if (!operation) {
    const superseded = SUPERSEDED.find(
      (s) => s.api === api && s.method === METHOD && s.match.test(x.path),
    )
    if (superseded) {
      route = superseded.route
      request.path = x.path.replace(superseded.match, superseded.checkedAs)
      operation = spec.router.matchOperation(request)
      diverge('route', route, `not in the spec: checked as ${operation?.operationId}`)
    }
  }
  if (!operation) {
    diverge('route', null, `no operation ${METHOD} ${x.path} in the spec`)
    return found
  }

  // The request: path, query and header parameters, the body's media type and schema.
  const declaredRequest = Object.keys(
    (operation.requestBody as { content?: Record<string, unknown> } | undefined)?.content ?? {},
  )
  if (x.requestType && x.requestBody !== undefined && !declaredRequest.includes(x.requestType))
    diverge(
      'request',
      route,
      `body of type ${x.requestType}; the spec takes ${declaredRequest.join(', ') || 'none'}`,
    )
  const requestResult = spec.validator.validateRequest(request, operation)
  for (const message of ajvMessages(requestResult.errors)) diverge('request', route, message)

  // The answer: a documented status, its media type, its body's schema, its headers.
  const responses = (operation.responses ?? {}) as Record<
    string,
    { content?: Record<string, unknown>; headers?: Record<string, unknown> }
  >
  const documented =
    responses[String(x.status)] ?? responses[`${Math.floor(x.status / 100)}XX`] ?? responses.default
  if (!documented) {
    diverge(
      'response',
      route,
      `status ${x.status} is not documented for ${operation.operationId} (${Object.keys(responses).join(', ')})${errorMessage(x.responseBody)}`,
    )
    return found
  }
  const declared = Object.keys(documented.content ?? {})
  if (streamed) {
    // its body is checked line by line as it passes, against the stream's own schema
  } else if (declared.length === 0) {
    if (x.responseBody !== null)
      diverge(
        'response',
        route,
        `a body (${x.responseType ?? 'no type'}) where the spec declares none`,
      )
  } else if (!x.responseType || !declared.includes(x.responseType)) {
    diverge(
      'response',
      route,
      `a body of type ${x.responseType ?? 'none'}; the spec declares ${declared.join(', ')}`,
    )
  }
  if (
    x.responseBody !== undefined &&
    (declared.length === 0 || x.responseType === 'application/json')
  ) {
    const result = spec.validator.validateResponse(x.responseBody, operation, x.status)
    for (const message of ajvMessages(result.errors)) diverge('response', route, message)
  }
  if (documented.headers) {
    const headers = spec.validator.validateResponseHeaders(x.responseHeaders, operation, {
      statusCode: x.status,
      setMatchType: SetMatchType.Any,
    })
    for (const message of ajvMessages(headers.errors)) diverge('response', route, message)
  }
  return found
}

function ajvMessages(
  errors: { instancePath?: string; message?: string; params?: unknown }[] | null | undefined,
): string[] {
  return (errors ?? []).map((error) => {
    const extra =
      error.params && typeof error.params === 'object' && 'allowedValues' in error.params
        ? ` (${(error.params as { allowedValues: unknown[] }).allowedValues.join(', ')})`
        : error.params && typeof error.params === 'object' && 'additionalProperty' in error.params
          ? ` (${(error.params as { additionalProperty: string }).additionalProperty})`
          : ''
    return `${error.instancePath || '/'} ${error.message ?? 'is invalid'}${extra}`
  })
}

/** An error answer's own message, to name what the stand-in said. */
function errorMessage(body: unknown): string {
  if (typeof body === 'string') return body === '' ? '' : `: ${body.slice(0, 200)}`
  return body && typeof body === 'object' && 'message' in body
    ? `: ${String((body as { message: unknown }).message)}`
    : ''
}
