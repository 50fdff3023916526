// An offline stand-in for E2B: the control plane (E2B_API_URL) and the sandbox edge
// (E2B_SANDBOX_URL) on 127.0.0.1, driven unchanged by the real `e2b` and
// `@e2b/code-interpreter` SDKs. Sandboxes are bubblewrapped local processes.
import { randomBytes } from 'node:crypto'
import { CallLog } from './calls.ts'
import { Contract, loadSpecs } from './contract.ts'
import { controlPlane } from './control-plane.ts'
import { dataPlane } from './data-plane.ts'
import { makeEdgeCertificate } from './edge-tls.ts'
import { applyFaultPatch, noFaults, type Faults } from './faults.ts'
import { resolveIsolation } from './isolation.ts'
import { SANDBOX_KILLED } from './kernel.ts'
import type { Plan } from './plan.ts'
import { SandboxRegistry } from './registry.ts'
import type { SandboxState } from './sandbox.ts'

export type { Faults } from './faults.ts'
export type { EdgeAnswer, EdgeAnswerReason } from './edge-answers.ts'
export type { Plan } from './plan.ts'
export { CallLog } from './calls.ts'
export { Contract, type Divergence, KNOWN_DIVERGENCES } from './contract.ts'

export interface StandinOptions {
  /** Ports to listen on (127.0.0.1); 0 or absent lets the OS choose. */
  apiPort?: number
  sandboxPort?: number
  /** The key every control-plane call must send as X-API-KEY; random if absent. */
  apiKey?: string
  /** Run sandboxes without bubblewrap (also BLOCKGATE_ALLOW_UNSANDBOXED=1); otherwise bwrap is required. */
  unsandboxed?: boolean
  /** The venv interpreter (default: BLOCKGATE_PYTHON, else the repo's .venv). */
  python?: string
  /** The directory holding the `runtime` package (default: the repo's template/). */
  runtimeDir?: string
  /** How long a runtime template's server may take to answer GET /health (default 30 s). */
  bootTimeoutMs?: number
  /** The team's plan (default hobby: 1 h lifetimes; pro: 24 h); also the `plan` switch. */
  plan?: Plan
  /** Initial fault switches. */
  faults?: Partial<Faults>
  /**
   * Also serve E2B's production route: HTTPS on 127.0.0.1 (`port`, default any), routed by
   * Host, for the domain `e2b.localhost:<port>` (`e2b.localhost` on port 443): the sandbox
   * hosts `<port>-<id>.e2b.localhost` the SDK builds from E2B_DOMAIN, and the API at
   * `api.e2b.localhost`. Bun resolves every `*.localhost` name to 127.0.0.1 itself (RFC 6761
   * §6.3), and its certificate comes from a throwaway CA (`caFile`, for NODE_EXTRA_CA_CERTS).
   * Needs the openssl CLI.
   */
  hostEdge?: boolean | { port?: number }
}

export interface LiveSandbox {
  sandboxId: string
  templateId: string
  state: SandboxState
  metadata: Record<string, string>
  endAt: Date
  /** Its live processes, bubblewrap included. */
  pids: number[]
}

export interface Standin {
  apiUrl: string
  sandboxUrl: string
  /** With `hostEdge`: the E2B_DOMAIN that reaches it (`e2b.localhost:<port>`), else null. */
  domain: string | null
  /** With `hostEdge`: the CA certificate a client must trust (NODE_EXTRA_CA_CERTS), else null. */
  caFile: string | null
  apiKey: string
  /** The fault switches; change them in place. */
  faults: Faults
  calls: CallLog
  /** Every call and answer checked against E2B's published spec: the divergences found. */
  contract: Contract
  /** The sandboxes alive now, running or paused. */
  alive(): LiveSandbox[]
  /**
   * Kills every sandbox and closes both ports, then throws if the contract recorded a
   * divergence from E2B's spec that is not a known one (so a suite that stops it fails).
   */
  stop(): Promise<void>
}

export async function startStandin(options: StandinOptions = {}): Promise<Standin> {
  const isolation = resolveIsolation(options)
  const apiKey = options.apiKey ?? `e2b_${randomBytes(20).toString('hex')}`
  const faults: Faults = noFaults()
  applyFaultPatch(faults, { ...(options.plan ? { plan: options.plan } : {}), ...options.faults })
  const calls = new CallLog()
  const contract = new Contract(await loadSpecs())
  const registry = new SandboxRegistry()
  const apiFetch = controlPlane({
    apiKey,
    registry,
    faults,
    calls,
    contract,
    isolation,
    bootTimeoutMs: options.bootTimeoutMs ?? 30_000,
  }).fetch
  const api = Bun.serve({
    hostname: '127.0.0.1',
    port: options.apiPort ?? 0,
    idleTimeout: 0, // a slow create (slowCreateMs, a runtime's boot) may take longer than Bun's default 10 s
    fetch: apiFetch,
  })
  const edgeFetch = contract.edge(dataPlane(registry, faults, calls))
  const edge = Bun.serve({
    hostname: '127.0.0.1',
    port: options.sandboxPort ?? 0,
    idleTimeout: 0, // a long execution streams nothing for a while
    fetch: edgeFetch,
    // A response broken off on purpose (its sandbox was killed mid-stream) is no error of
    // ours: answered quietly here, and development mode would print it anyway.
    development: false,
    error: edgeFailed,
  })
  const hostEdge = options.hostEdge
    ? await startHostEdge(options.hostEdge, apiFetch, edgeFetch).catch(async (error) => {
        await Promise.all([api.stop(true), edge.stop(true)])
        throw error
      })
    : null
  let stopping: Promise<void> | null = null
  return {
    apiUrl: `http://127.0.0.1:${api.port}`,
    sandboxUrl: `http://127.0.0.1:${edge.port}`,
    domain: hostEdge?.domain ?? null,
    caFile: hostEdge?.caFile ?? null,
    apiKey,
    faults,
    calls,
    contract,
    alive: () =>
      registry.all().map((sandbox) => ({
        sandboxId: sandbox.id,
        templateId: sandbox.spec.templateId,
        state: sandbox.state,
        metadata: sandbox.spec.metadata,
        endAt: sandbox.endAt,
        pids: sandbox.pids(),
      })),
    stop: async () => {
      stopping ??= (async () => {
        await Promise.all([api.stop(true), edge.stop(true), hostEdge?.stop()])
        await registry.killAll()
      })()
      await stopping
      contract.assertNone()
    },
  }
}

/** A response broken off on purpose (its sandbox was killed mid-stream) is no error of ours. */
function edgeFailed(error: Error): Response {
  return error.message === SANDBOX_KILLED
    ? new Response(null, { status: 502 })
    : new Response(error.message, { status: 500 })
}

/** The edge's domain name; every name under `.localhost` resolves to loopback in Bun. */
const EDGE_HOSTNAME = 'e2b.localhost'

/**
 * E2B's production route: one HTTPS listener for every `*.e2b.localhost` name, as E2B
 * serves `*.e2b.app`. `api.<domain>` is the control plane; any other name goes to the edge,
 * which routes it by its Host (data-plane.ts). Both answer as the plain listeners do.
 */
async function startHostEdge(
  option: true | { port?: number },
  apiFetch: (request: Request) => Response | Promise<Response>,
  edgeFetch: (request: Request) => Promise<Response>,
): Promise<{ domain: string; caFile: string; stop: () => Promise<void> }> {
  const certificate = await makeEdgeCertificate(EDGE_HOSTNAME)
  const apiHost = new RegExp(`^api\\.${EDGE_HOSTNAME.replaceAll('.', '\\.')}(:\\d+)?$`)
  let server: ReturnType<typeof Bun.serve>
  try {
    server = Bun.serve({
      hostname: '127.0.0.1',
      port: option === true ? 0 : (option.port ?? 0),
      idleTimeout: 0,
      tls: { cert: certificate.cert, key: certificate.key },
      development: false,
      error: edgeFailed,
      fetch: (request) =>
        apiHost.test(request.headers.get('host') ?? '') ? apiFetch(request) : edgeFetch(request),
    })
  } catch (error) {
    certificate.dispose()
    throw error
  }
  return {
    domain: server.port === 443 ? EDGE_HOSTNAME : `${EDGE_HOSTNAME}:${server.port}`,
    caFile: certificate.caFile,
    stop: async () => {
      await server.stop(true)
      certificate.dispose()
    },
  }
}
