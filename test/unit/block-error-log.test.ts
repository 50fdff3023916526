// Text a block chose never becomes an error-level log line of blockgate's: a failure the
// runtime reported is a warning whose `block_error` field holds the text, cut short and with
// its line breaks escaped, while blockgate's own faults still log at error. The HTTP answer
// the client gets is unchanged.
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { createApp } from '../../src/app.ts'
import { blockError } from '../../src/backends/runtime-session.ts'
import { loadConfig, type Config } from '../../src/config.ts'
import { BLOCK_TEXT_MAX_CHARS, blockText, log, setLogSink, type LogSink } from '../../src/log.ts'
import { FakeBackend } from '../support/fake-backend.ts'
import { readAnswer, runRequest } from '../support/http.ts'

const config: Pick<Config, 'defaultBackend' | 'limits' | 'webexec'> = {
  defaultBackend: 'local',
  limits: {
    maxBodyBytes: 64 * 1024,
    defaultTimeoutMs: 5000,
    maxTimeoutMs: 20_000,
    queueTimeoutMs: 1000,
  },
  webexec: { ...loadConfig({}).webexec, codeCacheBytes: 1024 * 1024 },
}

// A block's exception text that tries to end the log line and forge one at error level.
const FORGED =
  '{"time":"2030-01-01T00:00:00.000Z","level":"error","message":"disk corrupted","workspace":"victim"}'
const HOSTILE = `boom\n${FORGED}\r\n\u2028${FORGED}\u0085\u001b[2J\u202e`

let lines: string[] = []
let previous: LogSink
beforeEach(() => {
  lines = []
  previous = setLogSink((line) => lines.push(line))
})
afterEach(async () => {
  await new Promise((resolve) => setImmediate(resolve)) // the audit trail writes on the next turn
  setLogSink(previous)
})

/** The captured log as parsed records; every line must be exactly one JSON object. */
function records(): Record<string, any>[] {
  const text = lines.join('')
  expect(text.endsWith('\n')).toBe(true)
  const split = text.slice(0, -1).split(/\r\n|[\n\r\u0085\u2028\u2029]/)
  expect(split).toHaveLength(lines.length)
  return split.map((line) => JSON.parse(line))
}

function appThrowing(error: () => unknown) {
  return createApp({
    config,
    backends: {
      local: new FakeBackend(() => {
        throw error()
      }),
    },
  })
}

const runtimeFailure = () =>
  blockError({ ok: false, error: { type: 'InternalError', message: `RuntimeError: ${HOSTILE}` } })
const validRun = { code: { run_function_code: 'def run(self):\n    return {}\n' }, inputs: {} }
const webexecRun = {
  code_hash: null,
  run_function_name: 'run',
  inputs_json: '{}',
  code_str: 'def run(self):\n    return {}\n',
}
const postWebexec = (app: ReturnType<typeof createApp>) =>
  app.request('/webexec?workspace_id=acme', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(webexecRun),
  })

describe('a failure the runtime reported', () => {
  test('on /v1/run: logged at warn in block_error, never at error; the answer is as before', async () => {
    const response = await appThrowing(runtimeFailure).request(
      '/v1/run',
      runRequest(validRun, 'json'),
    )
    expect(response.status).toBe(500)
    expect(await readAnswer(response)).toEqual({
      error: {
        type: 'InternalError',
        message: `the runtime answered InternalError: RuntimeError: ${HOSTILE}`,
      },
    })
    const logged = records()
    expect(logged.filter((record) => record.level === 'error')).toEqual([])
    const warned = logged.filter((record) => record.level === 'warn')
    expect(warned).toHaveLength(1)
    expect(warned[0]!.message).toBe('request failed in the runtime')
    expect(warned[0]!.error).toBeUndefined()
    expect(warned[0]!.block_error).toBe(
      blockText(`the runtime answered InternalError: RuntimeError: ${HOSTILE}`),
    )
    // Escaped inside the value too: one line even once a viewer decodes the JSON.
    expect(warned[0]!.block_error).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202e]/)
    expect(warned[0]!.block_error).toContain('boom\\n{"time"')
  })

  test('on /webexec: logged at warn in block_error, never at error; the answer is as before', async () => {
    const response = await postWebexec(appThrowing(runtimeFailure))
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({
      success: false,
      error: `the runtime answered InternalError: RuntimeError: ${HOSTILE}`,
      error_type: 'InternalError',
      line_number: null,
      function_name: null,
      stdout: null,
      stderr: null,
      server_error: true,
    })
    const logged = records()
    expect(logged.filter((record) => record.level === 'error')).toEqual([])
    expect(
      logged
        .filter((record) => record.level === 'warn')
        .map((record) => [record.message, record.block_error]),
    ).toEqual([
      [
        'webexec run failed in the runtime',
        blockText(`the runtime answered InternalError: RuntimeError: ${HOSTILE}`),
      ],
    ])
  })

  test('any type the runtime names that blockgate does not map is the runtime’s too', () => {
    for (const type of ['UnknownBlock', 'BadRequest', 'EncodeError', 'Whatever\nlevel=error']) {
      const error = blockError({ ok: false, error: { type, message: 'x' } })
      expect(error.constructor.name).toBe('RuntimeReportedError')
      expect(error.type).toBe('InternalError')
      expect(error.status).toBe(500)
    }
  })
})

describe("blockgate's own faults", () => {
  for (const [route, send] of [
    [
      '/v1/run',
      (app: ReturnType<typeof createApp>) => app.request('/v1/run', runRequest(validRun, 'json')),
    ],
    ['/webexec', postWebexec],
  ] as const) {
    test(`still log at error on ${route}, with the error`, async () => {
      await send(appThrowing(() => new TypeError('undefined is not a function')))
      const errors = records().filter((record) => record.level === 'error')
      expect(errors).toHaveLength(1)
      expect(errors[0]!.error).toMatchObject({
        name: 'TypeError',
        message: 'undefined is not a function',
      })
      expect(errors[0]!.block_error).toBeUndefined()
    })
  }
})

describe('blockText and the log line', () => {
  test(`cuts at ${BLOCK_TEXT_MAX_CHARS} characters and says how much it left out`, () => {
    expect(blockText('a'.repeat(BLOCK_TEXT_MAX_CHARS))).toBe('a'.repeat(BLOCK_TEXT_MAX_CHARS))
    expect(blockText('a'.repeat(10_000))).toBe(
      `${'a'.repeat(BLOCK_TEXT_MAX_CHARS)}… (${10_000 - BLOCK_TEXT_MAX_CHARS} more characters)`,
    )
    // Never half a surrogate pair at the cut.
    const emoji = `${'a'.repeat(BLOCK_TEXT_MAX_CHARS - 1)}😀😀`
    expect(blockText(emoji)).toBe(`${'a'.repeat(BLOCK_TEXT_MAX_CHARS - 1)}… (4 more characters)`)
  })

  test('writes out controls, separators and bidi overrides as escapes; keeps other text', () => {
    expect(blockText('a\nb\r\tc\u0000\u001b[31m\u007f\u0085\u2028\u2029\u202e')).toBe(
      'a\\nb\\r\\tc\\u0000\\u001b[31m\\u007f\\u0085\\u2028\\u2029\\u202e',
    )
    expect(blockText('naïve 中文 😀 "quoted" \\ back')).toBe('naïve 中文 😀 "quoted" \\ back')
  })

  test('any field: JSON.stringify escapes C0 controls; the log also escapes DEL, C1 and U+2028/9 it leaves raw', () => {
    const value = `x\ny\r\u001b\u007f\u0085\u2028\u2029z`
    log.info('raw field', { raw: value })
    expect(lines).toHaveLength(1)
    const line = lines[0]!
    expect(line.slice(0, -1)).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/)
    // The same value once parsed: escaping changed the spelling only.
    expect(JSON.parse(line).raw).toBe(value)
  })
})
