// An offline stand-in for E2B: the control plane (E2B_API_URL) and the sandbox edge
// (E2B_SANDBOX_URL) on 127.0.0.1, driven unchanged by the real `e2b` and
// `@e2b/code-interpreter` SDKs. Sandboxes are bubblewrapped local processes.
import { randomBytes } from 'node:crypto'
import { CallLog } from './calls.ts'
import { Contract, loadSpecs } from './contract.ts'
import { controlPlane } from './control-plane.ts'
import { dataPlane } from './data-plane.ts'
import { applyFaultPatch, noFaults, type Faults } from './faults.ts'
import { resolveIsolation } from './isolation.ts'
import { SANDBOX_KILLED } from './kernel.ts'
import type { Plan } from './plan.ts'
import { SandboxRegistry } from './registry.ts'
import type { SandboxState } from './sandbox.ts'

export type { Faults } from './faults.ts'
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
  const api = Bun.serve({
    hostname: '127.0.0.1',
    port: options.apiPort ?? 0,
    idleTimeout: 0, // a slow create (slowCreateMs, a runtime's boot) may take longer than Bun's default 10 s
    fetch: controlPlane({
      apiKey,
      registry,
      faults,
      calls,
      contract,
      isolation,
      bootTimeoutMs: options.bootTimeoutMs ?? 30_000,
    }).fetch,
  })
  const edge = Bun.serve({
    hostname: '127.0.0.1',
    port: options.sandboxPort ?? 0,
    idleTimeout: 0, // a long execution streams nothing for a while
    fetch: contract.edge(dataPlane(registry, faults, calls)),
    // A response broken off on purpose (its sandbox was killed mid-stream) is no error of
    // ours: answered quietly here, and development mode would print it anyway.
    development: false,
    error: (error) =>
      error.message === SANDBOX_KILLED
        ? new Response(null, { status: 502 })
        : new Response(error.message, { status: 500 }),
  })
  let stopping: Promise<void> | null = null
  return {
    apiUrl: `http://127.0.0.1:${api.port}`,
    sandboxUrl: `http://127.0.0.1:${edge.port}`,
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
        await Promise.all([api.stop(true), edge.stop(true)])
        await registry.killAll()
      })()
      await stopping
      contract.assertNone()
    },
  }
}
