import { describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { ConfigError, loadConfig, PROJECT_ROOT, VARIABLE_NAMES } from '../src/config.ts'

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
    const config = loadConfig({ PORT: '9001', BLOCKGATE_MAX_WORKERS: '3', BLOCKGATE_MAX_BODY_BYTES: '2048', WORKFLOWS_CUSTOM_PYTHON_EXECUTION_MODE: 'local' })
    expect(config.port).toBe(9001)
    expect(config.local.maxWorkers).toBe(3)
    expect(config.limits.maxBodyBytes).toBe(2048)
  })

  test('an empty value means the default', () => {
    expect(loadConfig({ PORT: '' }).port).toBe(8000)
  })

  const bad: [Record<string, string>, RegExp][] = [
    [{ PORT: 'eighty' }, /PORT="eighty": must be a whole number/],
    [{ PORT: '70000' }, /PORT="70000": must be at most 65535/],
    [{ BLOCKGATE_MAX_WORKERS: '0' }, /BLOCKGATE_MAX_WORKERS="0": must be at least 1/],
    [{ BLOCKGATE_MAX_BODY_BYTES: '-5' }, /BLOCKGATE_MAX_BODY_BYTES="-5": must be a whole number/],
    [{ WORKFLOWS_CUSTOM_PYTHON_EXECUTION_MODE: 'modal' }, /WORKFLOWS_CUSTOM_PYTHON_EXECUTION_MODE="modal": must be one of local, remote, e2b/],
    [{ BLOCKGATE_DEFAULT_TIMEOUT_MS: '90000', BLOCKGATE_MAX_TIMEOUT_MS: '60000' }, /BLOCKGATE_DEFAULT_TIMEOUT_MS: must not exceed BLOCKGATE_MAX_TIMEOUT_MS/],
  ]
  for (const [env, message] of bad) {
    test(`rejects ${JSON.stringify(env)}`, () => {
      expect(() => loadConfig(env)).toThrow(ConfigError)
      expect(() => loadConfig(env)).toThrow(message)
    })
  }

  test('every bad variable is named at once', () => {
    expect(() => loadConfig({ PORT: 'x', BLOCKGATE_MAX_WORKERS: 'y' })).toThrow(/PORT="x".*\n.*BLOCKGATE_MAX_WORKERS="y"/)
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
    expect(result.stderr.toString()).toContain('BLOCKGATE_MAX_WORKERS="many": must be a whole number')
  })
})
