// An E2B config for a pool on the local stand-in, read by loadConfig from the environment a
// deployment would set, so tests exercise the same defaults and derivations as the server.
import { loadConfig, type E2BConfig } from '../../src/config.ts'
import type { Standin } from '../standin/e2b/index.ts'

/** The environment of a deployment on the stand-in, a deployment id of its own each time. */
export const standinEnv = (standin: Standin): Record<string, string> => ({
  E2B_API_KEY: standin.apiKey,
  E2B_API_URL: standin.apiUrl,
  E2B_SANDBOX_URL: standin.sandboxUrl,
  BLOCKGATE_E2B_CREATES_PER_SECOND: '100',
  BLOCKGATE_DEPLOYMENT_ID: `test-${crypto.randomUUID().slice(0, 8)}`,
})

export function standinE2BConfig(
  standin: Standin,
  env: Record<string, string> = {},
  overrides: Partial<E2BConfig> = {},
): E2BConfig {
  const config = loadConfig({ ...standinEnv(standin), ...env }).e2b
  if (!config) throw new Error('no e2b config although E2B_API_KEY is set')
  // Unless a test sets a tenant's share, one tenant may use the whole pool.
  const tenantMaxSandboxes = env.BLOCKGATE_E2B_TENANT_MAX_SANDBOXES
    ? config.tenantMaxSandboxes
    : (overrides.maxSandboxes ?? config.maxSandboxes)
  return { ...config, tenantMaxSandboxes, ...overrides }
}
