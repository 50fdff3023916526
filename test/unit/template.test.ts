// The E2B template agrees with the proxy: its name carries the runtime's version, its
// server listens where the proxy looks, and code-interpreter mode uploads every module.
import { describe, expect, test } from 'bun:test'
import { readdirSync } from 'node:fs'
import { resolve } from 'node:path'
import { readTemplateConfig } from '../../template/build.ts'
import { runtimeFiles } from '../../src/backends/e2b/runtime-interpreter.ts'
import { defaultTemplateId, runtimeVersion } from '../../src/runtime-template.ts'
import { PROJECT_ROOT } from '../../src/config.ts'

describe('the E2B template', () => {
  test('e2b.toml names the template after the runtime version and starts the server on RUNTIME_PORT', async () => {
    const config = await readTemplateConfig()
    expect(config.templateName).toBe(defaultTemplateId())
    expect(defaultTemplateId('1.2.3')).toBe('blockgate-runtime-v1-2-3')
    expect(runtimeVersion()).toMatch(/^\d+\.\d+\.\d+/)
  })

  test('code-interpreter mode uploads every runtime module and no tests', () => {
    const files = runtimeFiles()
    for (const module of readdirSync(resolve(PROJECT_ROOT, 'template/runtime')).filter((f) =>
      f.endsWith('.py'),
    )) {
      expect(files).toContain(`template/runtime/${module}`)
    }
    expect(files).toContain('serializers/registry.py')
    expect(files).toContain('template/requirements.txt')
    expect(files.filter((f) => /test_|conftest|vectors/.test(f))).toEqual([])
  })
})
