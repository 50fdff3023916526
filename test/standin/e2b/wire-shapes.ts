// The sandbox as E2B's API describes it, in the three shapes the SDK reads: `Sandbox`
// (create, connect), `SandboxDetail` (get info) and `ListedSandbox` (list).
import type { StandinSandbox } from './sandbox.ts'

/**
 * The envd version the stand-in claims. The SDK picks features by it: from 0.4.0 it sends
 * no default username, from 0.5.7 it may upload files as octet-stream (both are served).
 */
export const ENVD_VERSION = '0.5.7'
export const CLIENT_ID = 'standin'

const RESOURCES = { cpuCount: 2, memoryMB: 512, diskSizeMB: 2048 } as const

/** The fields every shape starts with: which sandbox, from which template, which envd. */
function identity(sandbox: StandinSandbox) {
  return {
    sandboxID: sandbox.id,
    templateID: sandbox.spec.templateId,
    alias: sandbox.spec.templateId,
    clientID: CLIENT_ID,
    envdVersion: ENVD_VERSION,
  }
}

export function sandboxShape(sandbox: StandinSandbox) {
  return {
    ...identity(sandbox),
    domain: null,
    ...(sandbox.spec.envdAccessToken ? { envdAccessToken: sandbox.spec.envdAccessToken } : {}),
    trafficAccessToken: sandbox.spec.trafficAccessToken,
  }
}

export function listedShape(sandbox: StandinSandbox) {
  return {
    ...identity(sandbox),
    ...RESOURCES,
    metadata: sandbox.spec.metadata,
    startedAt: sandbox.startedAt.toISOString(),
    endAt: sandbox.endAt.toISOString(),
    state: sandbox.state,
    volumeMounts: [],
  }
}

export function detailShape(sandbox: StandinSandbox) {
  return {
    ...listedShape(sandbox),
    domain: null,
    ...(sandbox.spec.envdAccessToken ? { envdAccessToken: sandbox.spec.envdAccessToken } : {}),
    allowInternetAccess: sandbox.spec.allowInternetAccess,
    ...(sandbox.spec.network ? { network: sandbox.spec.network } : {}),
    lifecycle: { onTimeout: sandbox.spec.autoPause ? 'pause' : 'kill', autoResume: false },
  }
}
