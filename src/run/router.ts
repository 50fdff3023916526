// Which backend runs a request: the request's `backend` field, else the configured default.
import type { Backend, BackendName } from '../backends/backend.ts'
import { BadRequest } from '../errors.ts'

export type Backends = Partial<Record<BackendName, Backend>>

export function pickBackend(requested: BackendName | undefined, backends: Backends, defaultBackend: BackendName): Backend {
  const name = requested ?? defaultBackend
  const backend = backends[name]
  if (!backend) {
    const enabled = Object.keys(backends).join(', ') || 'none'
    throw new BadRequest(`backend: "${name}" is not enabled on this server (enabled: ${enabled})`)
  }
  return backend
}
