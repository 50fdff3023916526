import { describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { ConfigError, loadConfig, PROJECT_ROOT, VARIABLE_NAMES } from '../../src/config.ts'

describe('config', () => {
  test('defaults', () => {
    const config = loadConfig({})
    expect(config.port).toBe(8000)
    expect(config.host).toBe('127.0.0.1')
    expect(config.defaultBackend).toBe('local')
    expect(config.local.maxWorkers).toBeGreaterThanOrEqual(4)
    expect(config.local.python).toBe(resolve(PROJECT_ROOT, '.venv/bin/python'))
    expect(config.limits.defaultTimeoutMs).toBeLessThanOrEqual(config.limits.maxTimeoutMs)
  })

  test('reads values', () => {
    const config = loadConfig({
      PORT: '9001',
      BLOCKGATE_MAX_WORKERS: '3',
      BLOCKGATE_MAX_BODY_BYTES: '2048',
      WORKFLOWS_CUSTOM_PYTHON_EXECUTION_MODE: 'local',
    })
    expect(config.port).toBe(9001)
    expect(config.local.maxWorkers).toBe(3)
    expect(config.limits.maxBodyBytes).toBe(2048)
  })

  test('e2b is off without a key, and on with one, with the template named after the runtime version', () => {
    expect(loadConfig({}).e2b).toBeNull()
    const config = loadConfig({
      E2B_API_KEY: 'e2b_test',
      WORKFLOWS_CUSTOM_PYTHON_EXECUTION_MODE: 'remote',
      BLOCKGATE_WORKSPACE_BACKENDS: ' acme = e2b , beta=local ',
    })
    expect(config.defaultBackend).toBe('e2b')
    expect(config.workspaceBackends).toEqual({ acme: 'e2b', beta: 'local' })
    expect(config.e2b).toMatchObject({
      apiKey: 'e2b_test',
      mode: 'template',
      lifetimeMs: 300_000,
      idleMs: 60_000,
      maxSandboxes: 20,
      createsPerSecond: 1,
    })
    expect(config.e2b?.templateId).toMatch(/^blockgate-runtime-v\d+-\d+-\d+$/)
    expect(
      loadConfig({ E2B_API_KEY: 'k', BLOCKGATE_E2B_MODE: 'code-interpreter' }).e2b?.templateId,
    ).toBe('code-interpreter-v1')
    expect(loadConfig({ E2B_API_KEY: 'k', E2B_TEMPLATE_ID: 'mine' }).e2b?.templateId).toBe('mine')
  })

  test('telemetry starts with an OTLP endpoint only, keeping 10% of root traces unless OTEL_TRACES_SAMPLER says', () => {
    expect(loadConfig({}).telemetry.enabled).toBe(false)
    const on = loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }).telemetry
    expect(on).toMatchObject({ enabled: true, serviceName: 'blockgate', defaultSampleRatio: 0.1 })
    expect(
      loadConfig({
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318',
        OTEL_TRACES_SAMPLER: 'parentbased_always_on',
      }).telemetry.defaultSampleRatio,
    ).toBeNull()
    expect(
      loadConfig({
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318',
        OTEL_SDK_DISABLED: 'true',
      }).telemetry.enabled,
    ).toBe(false)
    expect(() => loadConfig({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })).toThrow(
      /OTEL_EXPORTER_OTLP_PROTOCOL="grpc": only http\/protobuf is supported/,
    )
  })

  test('an empty value means the default', () => {
    expect(loadConfig({ PORT: '' }).port).toBe(8000)
  })

  const bad: [Record<string, string>, RegExp][] = [
    [{ PORT: 'eighty' }, /PORT="eighty": must be a whole number/],
    [{ PORT: '70000' }, /PORT="70000": must be at most 65535/],
    [{ BLOCKGATE_MAX_WORKERS: '0' }, /BLOCKGATE_MAX_WORKERS="0": must be at least 1/],
    [{ BLOCKGATE_MAX_BODY_BYTES: '-5' }, /BLOCKGATE_MAX_BODY_BYTES="-5": must be a whole number/],
    [
      { WORKFLOWS_CUSTOM_PYTHON_EXECUTION_MODE: 'modal' },
      /WORKFLOWS_CUSTOM_PYTHON_EXECUTION_MODE="modal": must be one of local, remote, e2b/,
    ],
    [
      { BLOCKGATE_DEFAULT_TIMEOUT_MS: '90000', BLOCKGATE_MAX_TIMEOUT_MS: '60000' },
      /BLOCKGATE_DEFAULT_TIMEOUT_MS: must not exceed BLOCKGATE_MAX_TIMEOUT_MS/,
    ],
    [
      { WORKFLOWS_CUSTOM_PYTHON_EXECUTION_MODE: 'remote' },
      /WORKFLOWS_CUSTOM_PYTHON_EXECUTION_MODE=remote: remote execution needs E2B_API_KEY, which is not set/,
    ],
    [
      { BLOCKGATE_WORKSPACE_BACKENDS: 'acme=e2b' },
      /BLOCKGATE_WORKSPACE_BACKENDS: sends acme to e2b, which needs E2B_API_KEY/,
    ],
    [
      { BLOCKGATE_WORKSPACE_BACKENDS: 'acme=modal' },
      /BLOCKGATE_WORKSPACE_BACKENDS="acme=modal": "acme=modal" is not workspace=local or workspace=e2b/,
    ],
    [
      { E2B_API_KEY: 'k', E2B_SANDBOX_IDLE_TIMEOUT: '600', E2B_SANDBOX_TIMEOUT: '300' },
      /E2B_SANDBOX_IDLE_TIMEOUT: must not exceed E2B_SANDBOX_TIMEOUT/,
    ],
    [{ E2B_API_URL: 'not a url' }, /E2B_API_URL="not a url": must be a URL/],
    [
      { BLOCKGATE_E2B_MODE: 'jupyter' },
      /BLOCKGATE_E2B_MODE="jupyter": must be template or code-interpreter/,
    ],
  ]
  for (const [env, message] of bad) {
    test(`rejects ${JSON.stringify(env)}`, () => {
      expect(() => loadConfig(env)).toThrow(ConfigError)
      expect(() => loadConfig(env)).toThrow(message)
    })
  }

  test('every bad variable is named at once', () => {
    expect(() => loadConfig({ PORT: 'x', BLOCKGATE_MAX_WORKERS: 'y' })).toThrow(
      /PORT="x".*\n.*BLOCKGATE_MAX_WORKERS="y"/,
    )
  })

  test('the README documents every variable', () => {
    const readme = readFileSync(resolve(PROJECT_ROOT, 'README.md'), 'utf8')
    for (const name of VARIABLE_NAMES) expect(readme).toContain(`\`${name}\``)
  })

  test('a bad value stops the server at start-up with the variable named', () => {
    const result = Bun.spawnSync({
      cmd: [process.execPath, resolve(PROJECT_ROOT, 'src/server.ts')],
      env: { ...process.env, BLOCKGATE_MAX_WORKERS: 'many' },
      stderr: 'pipe',
    })
    expect(result.exitCode).toBe(2)
    expect(result.stderr.toString()).toContain(
      'BLOCKGATE_MAX_WORKERS="many": must be a whole number',
    )
  })
})

describe('config reaches the backend it is for', () => {
  test('the e2b queue has its own bound; the tenant bound applies within it', () => {
    const e2b = (env: Record<string, string>) => loadConfig({ E2B_API_KEY: 'k', ...env }).e2b
    expect(e2b({ BLOCKGATE_MAX_QUEUE: '8' })).toMatchObject({ maxQueue: 256, tenantMaxQueue: 64 })
    expect(e2b({ BLOCKGATE_E2B_MAX_QUEUE: '8' })).toMatchObject({ maxQueue: 8, tenantMaxQueue: 2 })
    expect(e2b({ BLOCKGATE_E2B_MAX_QUEUE: '8', BLOCKGATE_TENANT_MAX_QUEUE: '50' })).toMatchObject({
      maxQueue: 8,
      tenantMaxQueue: 8,
    })
    expect(loadConfig({ BLOCKGATE_E2B_MAX_QUEUE: '8' }).local.maxQueue).toBe(256)
  })

  test('BLOCKGATE_BLOCK_CACHE_SIZE and BLOCKGATE_MAX_CAPTURE_BYTES reach both backends', () => {
    const config = loadConfig({
      E2B_API_KEY: 'k',
      BLOCKGATE_BLOCK_CACHE_SIZE: '7',
      BLOCKGATE_MAX_CAPTURE_BYTES: '9',
    })
    expect(config.local).toMatchObject({ blockCacheSize: 7, maxCaptureBytes: 9 })
    expect(config.e2b).toMatchObject({ blockCacheSize: 7, maxCaptureBytes: 9 })
  })

  // Config is read before any backend starts and must not load one (or its SDK) to do it.
  test('config.ts imports no backend module, directly or through another module', () => {
    const transpiler = new Bun.Transpiler({ loader: 'ts' })
    const seen = new Set<string>()
    const visit = (file: string) => {
      if (seen.has(file)) return
      seen.add(file)
      for (const { path } of transpiler.scanImports(readFileSync(file, 'utf8'))) {
        if (path.startsWith('.')) visit(resolve(file, '..', path))
      }
    }
    visit(resolve(PROJECT_ROOT, 'src/config.ts'))
    const backends = resolve(PROJECT_ROOT, 'src/backends')
    expect([...seen].filter((file) => file.startsWith(backends))).toEqual([])
    expect(seen.size).toBeGreaterThan(3) // it did follow the imports
  })
})
