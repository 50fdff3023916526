// Which backend runs a request: the request's `backend` field, else the workspace's
// policy (BLOCKGATE_WORKSPACE_BACKENDS), else the configured default.
import type { Backend, BackendName, Backends } from '../backends/backend.ts'
import { BadRequest } from '../errors.ts'

export interface RoutingPolicy {
  defaultBackend: BackendName
  workspaceBackends?: Record<string, BackendName>
}

export function pickBackend(
  requested: BackendName | undefined,
  workspace: string,
  backends: Backends,
  policy: RoutingPolicy,
): Backend {
  const name = requested ?? policy.workspaceBackends?.[workspace] ?? policy.defaultBackend
  const backend = backends[name]
  if (!backend) {
    const enabled = Object.keys(backends).join(', ') || 'none'
    const hint = name === 'e2b' ? ' (set E2B_API_KEY to enable e2b)' : ''
    throw new BadRequest(
      `backend: "${name}" is not enabled on this server (enabled: ${enabled})${hint}`,
    )
  }
  return backend
}
