// The control plane: E2B's sandbox API as the SDK calls it (create, connect, info, list,
// timeout, pause, kill), behind the X-API-KEY check and the fault switches. The admin
// route /_standin/faults needs no key, so a test can always switch a fault back off.
import { timingSafeEqual } from 'node:crypto'
import { Hono, type Context } from 'hono'
import { apiError } from './api-error.ts'
import type { CallLog } from './calls.ts'
import type { Contract } from './contract.ts'
import { CreateRefused, newSandboxId, parseCreateRequest } from './create-request.ts'
import { applyFaultPatch, takeOne, type Faults } from './faults.ts'
import type { Isolation } from './isolation.ts'
import { BadListQuery, listPage, parseListQuery } from './listing.ts'
import { int32Seconds, keepAliveSeconds, requestedTimeout, TimeoutRefused } from './plan.ts'
import type { SandboxRegistry } from './registry.ts'
import { StandinSandbox } from './sandbox.ts'
import { templateKind } from './templates.ts'
import { detailShape, listedShape, sandboxShape } from './wire-shapes.ts'

export interface ControlPlaneDeps {
  apiKey: string
  registry: SandboxRegistry
  faults: Faults
  calls: CallLog
  /** Checks every call and answer against E2B's published spec. */
  contract: Contract
  isolation: Isolation
  /** How long a template's servers may take to answer before the create fails. */
  bootTimeoutMs: number
}

type Method = 'GET' | 'POST' | 'DELETE' | 'PUT'
type Handler = (c: Context, sandbox: StandinSandbox | null) => Response | Promise<Response>

/** SDK calls on sandbox paths that the stand-in does not serve. */
const UNSUPPORTED: [Method, string][] = [
  ['GET', '/sandboxes/:id/metrics'],
  ['GET', '/sandboxes/:id/logs'],
  ['GET', '/v2/sandboxes/:id/logs'],
  ['PUT', '/sandboxes/:id/network'],
  ['POST', '/sandboxes/:id/fork'],
  ['POST', '/sandboxes/:id/snapshots'],
  ['POST', '/sandboxes/:id/refreshes'],
  ['POST', '/sandboxes/:id/resume'],
  ['POST', '/sandboxes/:id/connect'],
  ['GET', '/snapshots'],
]

export function controlPlane(deps: ControlPlaneDeps): Hono {
  const { registry, faults, calls } = deps
  const app = new Hono()
  app.use('*', deps.contract.controlPlane())

  /** Registers a route: counted, key-checked, and for `:id` routes given the live sandbox (or 404). */
  const route = (method: Method, path: string, handler: Handler) =>
    app.on(method, path, async (c) => {
      calls.count(`${method} ${path}`)
      if (faults.unauthorized || !keyMatches(c.req.header('X-API-KEY'), deps.apiKey)) {
        return apiError(c, 401, 'Invalid API key, it must start with e2b_ prefix and be valid')
      }
      if (!path.includes(':id')) return handler(c, null)
      const id = c.req.param('id')!
      const sandbox = registry.get(id)
      if (!sandbox || faults.notFoundIds.includes(id))
        return apiError(c, 404, `sandbox "${id}" doesn't exist or you don't have access to it`)
      return handler(c, sandbox)
    })

  route('POST', '/v2/sandboxes', async (c) => {
    const body = await readJson(c)
    calls.creates.push(body)
    calls.createTimes.push(performance.now())
    if (takeOne(faults, 'serviceUnavailableCreates'))
      return apiError(c, 503, 'Service temporarily unavailable, the cluster is at capacity')
    if (takeOne(faults, 'rateLimitCreates')) {
      return apiError(c, 429, 'Rate limit exceeded', {
        'Retry-After': String(faults.retryAfterSeconds),
      })
    }
    let spec: ReturnType<typeof parseCreateRequest>
    try {
      spec = parseCreateRequest(body, faults.plan)
    } catch (error) {
      if (error instanceof CreateRefused) return apiError(c, error.status, error.message)
      throw error
    }
    if (
      faults.maxConcurrent !== null &&
      registry.countRunning() + registry.bootingCount >= faults.maxConcurrent
    ) {
      return apiError(
        c,
        429,
        `you have reached the maximum number of concurrent E2B sandboxes (${faults.maxConcurrent}). If you need more, please visit 'https://e2b.dev/docs/billing'`,
      )
    }
    const boot = (async () => {
      if (faults.slowCreateMs > 0) await Bun.sleep(faults.slowCreateMs)
      return StandinSandbox.boot(newSandboxId(), spec, deps.isolation, deps.bootTimeoutMs)
    })()
    let sandbox: StandinSandbox
    try {
      sandbox = await registry.trackBoot(boot)
    } catch (error) {
      return apiError(c, 500, `failed to start the sandbox: ${(error as Error).message}`)
    }
    registry.add(sandbox)
    return c.json(sandboxShape(sandbox), 201)
  })

  route('POST', '/v2/sandboxes/:id/connect', async (c, sandbox) => {
    const body = (await readJson(c)) as { timeout?: unknown } | null
    const seconds = requestedTimeout(body?.timeout, faults.plan)
    if (sandbox!.state === 'paused') {
      registry.resume(sandbox!, seconds) // a new instance on E2B: its life counts from now
      return c.json(sandboxShape(sandbox!), 201)
    }
    // Connecting only ever extends a running sandbox's life, and never past its lifetime.
    const granted = keepAliveSeconds(
      seconds,
      sandbox!.lifeStartedAt,
      sandbox!.spec.maxLifetimeSeconds,
    )
    if (sandbox!.endAt.getTime() < Date.now() + granted * 1000)
      registry.setTimeout(sandbox!, granted)
    return c.json(sandboxShape(sandbox!), 200)
  })

  route('GET', '/v2/sandboxes', (c) => listResponse(c, registry.all(), c.req.query()))
  // v1 lists running sandboxes only.
  route('GET', '/sandboxes', (c) =>
    listResponse(
      c,
      registry.all().filter((sandbox) => sandbox.state === 'running'),
      { metadata: c.req.query('metadata') },
    ),
  )

  route('GET', '/sandboxes/:id', (c, sandbox) => c.json(detailShape(sandbox!)))

  // Template.exists(name): the templates the stand-in can start (see templates.ts).
  route('GET', '/templates/aliases/:alias', (c) => {
    const alias = c.req.param('alias')!
    if (!templateKind(alias)) return apiError(c, 404, `template alias '${alias}' not found`)
    return c.json({ templateID: alias, public: false }, 200)
  })

  route('DELETE', '/sandboxes/:id', async (c, sandbox) => {
    // E2B kills within the call: until it answers, the sandbox runs and holds its slot.
    if (faults.slowKillMs > 0) await Bun.sleep(faults.slowKillMs)
    await registry.kill(sandbox!)
    return c.body(null, 204)
  })

  route('POST', '/sandboxes/:id/timeout', async (c, sandbox) => {
    const body = (await readJson(c)) as { timeout?: unknown } | null
    if (body?.timeout === undefined) return apiError(c, 400, 'timeout: required')
    const asked = int32Seconds(body.timeout)
    if (sandbox!.state === 'paused')
      return apiError(c, 404, `sandbox "${sandbox!.id}" is paused, it has no timeout to set`)
    // Any length is taken, cut to what is left of the sandbox's lifetime (E2B's KeepAliveFor).
    const granted = keepAliveSeconds(
      asked,
      sandbox!.lifeStartedAt,
      sandbox!.spec.maxLifetimeSeconds,
    )
    registry.setTimeout(sandbox!, granted)
    return c.body(null, 204)
  })

  route('POST', '/sandboxes/:id/pause', async (c, sandbox) => {
    if (sandbox!.state === 'paused')
      return apiError(c, 409, `sandbox "${sandbox!.id}" is already paused`)
    await registry.pause(sandbox!)
    return c.body(null, 204)
  })

  for (const [method, path] of UNSUPPORTED)
    route(method, path, (c) =>
      apiError(c, 501, `${method} ${path} is not served by the E2B stand-in`),
    )

  app.get('/_standin/faults', (c) => c.json(faults))
  // What the contract found so far (for a test in another process): unexplained divergences, and known ones by id.
  app.get('/_standin/contract', (c) =>
    c.json({
      divergences: deps.contract.divergences,
      known: Object.fromEntries(deps.contract.known),
    }),
  )
  app.post('/_standin/faults', async (c) => {
    try {
      applyFaultPatch(faults, await c.req.json())
    } catch (error) {
      return apiError(c, 400, (error as Error).message)
    }
    return c.json(faults)
  })

  app.onError((error, c) => {
    if (error instanceof CreateRefused || error instanceof TimeoutRefused)
      return apiError(c, error.status, error.message)
    return apiError(c, 500, `the stand-in failed: ${error.message}`)
  })
  app.notFound((c) => apiError(c, 404, `no route ${c.req.method} ${c.req.path}`))
  return app
}

function listResponse(
  c: Context,
  sandboxes: StandinSandbox[],
  query: Record<string, string | undefined>,
): Response {
  let listed: ReturnType<typeof listPage>
  try {
    listed = listPage(sandboxes, parseListQuery(query))
  } catch (error) {
    if (error instanceof BadListQuery) return apiError(c, 400, error.message)
    throw error
  }
  const headers: Record<string, string> = {
    'X-Total-Running': String(sandboxes.filter((s) => s.state === 'running').length),
  }
  if (listed.nextToken) headers['X-Next-Token'] = listed.nextToken
  return c.json(listed.page.map(listedShape), 200, headers)
}

/** The JSON body, or null when there is none; a body that is not JSON is a 400. */
async function readJson(c: Context): Promise<unknown> {
  const text = await c.req.text()
  if (text.trim() === '') return null
  try {
    return JSON.parse(text)
  } catch {
    throw new CreateRefused(400, 'the body is not valid JSON')
  }
}

function keyMatches(given: string | undefined, expected: string): boolean {
  if (given === undefined || given.length !== expected.length) return false
  return timingSafeEqual(Buffer.from(given), Buffer.from(expected))
}
