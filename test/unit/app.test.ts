// The HTTP API in process (app.request), with a scripted backend: parsing, content
// negotiation, validation errors, limits and the error body shape.
import { describe, expect, test } from 'bun:test'
import { createApp } from '../../src/app.ts'
import { checkedApp } from '../support/contract.ts'
import type { Config } from '../../src/config.ts'
import { BlockCodeError, BlockTimeout, Overloaded } from '../../src/errors.ts'
import { FakeBackend } from '../support/fake-backend.ts'
import { FORMATS, readAnswer, runRequest, SUM_BLOCK } from '../support/http.ts'

const config: Pick<Config, 'defaultBackend' | 'limits'> = {
  defaultBackend: 'local',
  limits: {
    maxBodyBytes: 64 * 1024,
    defaultTimeoutMs: 5000,
    maxTimeoutMs: 20_000,
    queueTimeoutMs: 1000,
  },
}

function appWith(backend = new FakeBackend()) {
  return { app: checkedApp(createApp({ config, backends: { local: backend } })), backend }
}

const validBody = { code: { run_function_code: SUM_BLOCK }, inputs: { a: 1, b: 2 } }

describe('POST /v1/run', () => {
  for (const format of FORMATS) {
    test(`answers in the request's type (${format})`, async () => {
      const { app, backend } = appWith()
      const response = await app.request('/v1/run', runRequest(validBody, format))
      expect(response.status).toBe(200)
      expect(response.headers.get('content-type')).toStartWith(`application/${format}`)
      const answer = await readAnswer(response)
      expect(answer.outputs).toEqual({ echoed: { a: 1, b: 2 } })
      expect(answer.backend).toBe('local')
      expect(answer.cold_start).toBe(false)
      expect(Object.keys(answer.timings_ms).sort()).toEqual([
        'acquire',
        'execute',
        'queue',
        'total',
      ])
      expect(backend.jobs).toHaveLength(1)
    })
  }

  test('Accept overrides the request type', async () => {
    const { app } = appWith()
    const response = await app.request(
      '/v1/run',
      runRequest(validBody, 'json', { accept: 'application/cbor' }),
    )
    expect(response.headers.get('content-type')).toStartWith('application/cbor')
    expect((await readAnswer(response)).outputs.echoed).toEqual({ a: 1, b: 2 })
  })

  test('fills Roboflow defaults, hashes the code and caps the timeout', async () => {
    const { app, backend } = appWith()
    const body = { ...validBody, timeout_ms: 999_999, workspace: 'acme', step_name: 'sum_step' }
    expect((await app.request('/v1/run', runRequest(body, 'json'))).status).toBe(200)
    const job = backend.jobs[0]!
    expect(job.block.code).toEqual({
      run_function_code: SUM_BLOCK,
      run_function_name: 'run',
      init_function_code: null,
      init_function_name: 'init',
      imports: [],
    })
    expect(job.block.hash).toMatch(/^[0-9a-f]{64}$/)
    expect(job.timeoutMs).toBe(20_000)
    expect(job.workspace).toBe('acme')
    expect(job.context.step_name).toBe('sum_step')
    expect(job.context.workflow_execution_id).toMatch(/^[0-9a-f-]{36}$/)
  })

  test('the same code gets the same hash; different code a different one', async () => {
    const { app, backend } = appWith()
    const other = { ...validBody, code: { run_function_code: SUM_BLOCK.replace('a + b', 'b + a') } }
    for (const body of [validBody, validBody, other])
      await app.request('/v1/run', runRequest(body, 'json'))
    const [first, second, third] = backend.jobs.map((job) => job.block.hash)
    expect(first).toBe(second!)
    expect(third).not.toBe(first!)
  })

  test('keeps integers beyond 32 bits exact on the JSON path', async () => {
    const { app, backend } = appWith()
    const body =
      '{"code":{"run_function_code":"def run(self): pass"},"inputs":{"ts":1700000000123,"huge":12345678901234567890,"f":1.5}}'
    const response = await app.request('/v1/run', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    })
    expect(response.status).toBe(200)
    expect(backend.jobs[0]!.inputs).toEqual({
      ts: 1700000000123n,
      huge: 12345678901234567890n,
      f: 1.5,
    })
    const text = await response.text()
    expect(text).toContain('"ts":1700000000123')
    expect(text).toContain('"huge":12345678901234567890')
  })
})

describe('bad requests get a 400 that names the problem', () => {
  const cases: [string, RequestInit, RegExp][] = [
    [
      'garbage CBOR',
      {
        method: 'POST',
        headers: { 'content-type': 'application/cbor' },
        body: new Uint8Array([0xff, 0x13, 0x37, 0xa5]),
      },
      /not valid CBOR/,
    ],
    [
      'truncated CBOR',
      {
        method: 'POST',
        headers: { 'content-type': 'application/cbor' },
        body: new Uint8Array([0xa2, 0x64, 0x63]),
      },
      /not valid CBOR/,
    ],
    [
      'invalid JSON',
      { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"code": ' },
      /not valid JSON/,
    ],
    ['a JSON array', runRequest([1, 2, 3], 'json'), /^body: must be an object/],
    ['a JSON string', runRequest('run this', 'json'), /^body: must be an object/],
    [
      'an empty body',
      { method: 'POST', headers: { 'content-type': 'application/json' }, body: '' },
      /body: empty/,
    ],
    ['no code', runRequest({ inputs: {} }, 'json'), /^code: is required/],
    [
      'no run_function_code',
      runRequest({ code: { run_function_name: 'run' } }, 'cbor'),
      /^code\.run_function_code: is required/,
    ],
    [
      'blank run_function_code',
      runRequest({ code: { run_function_code: '   ' } }, 'json'),
      /code\.run_function_code: must not be empty/,
    ],
    [
      'a non-identifier function name',
      runRequest({ code: { run_function_code: 'x', run_function_name: 'os.system' } }, 'json'),
      /code\.run_function_name: must be a Python identifier/,
    ],
    [
      'inputs that are a list',
      runRequest({ ...validBody, inputs: [1] }, 'json'),
      /^inputs: must be an object of named inputs/,
    ],
    [
      'an unknown backend',
      runRequest({ ...validBody, backend: 'lambda' }, 'json'),
      /^backend: must be "local" or "e2b"/,
    ],
    [
      'a fractional timeout',
      runRequest({ ...validBody, timeout_ms: 1.5 }, 'json'),
      /^timeout_ms: must be a whole number/,
    ],
    [
      'a workspace with a slash',
      runRequest({ ...validBody, workspace: '../etc' }, 'json'),
      /^workspace: must be 1-128/,
    ],
  ]
  for (const [name, init, message] of cases) {
    test(name, async () => {
      const { app, backend } = appWith()
      const response = await app.request('/v1/run', init)
      expect(response.status).toBe(400)
      const answer = await readAnswer(response)
      expect(answer.error.type).toBe('BadRequest')
      expect(answer.error.message).toMatch(message)
      expect(backend.jobs).toHaveLength(0)
    })
  }

  test('several problems are all named', async () => {
    const { app } = appWith()
    const response = await app.request('/v1/run', runRequest({ code: {}, inputs: 3 }, 'json'))
    const { error } = await readAnswer(response)
    expect(error.problems).toEqual([
      'code.run_function_code: is required',
      'inputs: must be an object of named inputs',
    ])
  })

  test('an unsupported content type is a 415', async () => {
    const { app } = appWith()
    const response = await app.request('/v1/run', {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: 'hi',
    })
    expect(response.status).toBe(415)
    expect((await readAnswer(response)).error.message).toContain('application/cbor')
  })

  test('a backend that is not enabled is named', async () => {
    const { app } = appWith()
    const response = await app.request(
      '/v1/run',
      runRequest({ ...validBody, backend: 'e2b' }, 'json'),
    )
    expect(response.status).toBe(400)
    expect((await readAnswer(response)).error.message).toBe(
      'backend: "e2b" is not enabled on this server (enabled: local) (set E2B_API_KEY to enable e2b)',
    )
  })
})

describe('limits and errors', () => {
  test('a body over the limit is a 413 naming the limit', async () => {
    const { app, backend } = appWith()
    const big = { ...validBody, inputs: { blob: 'x'.repeat(100 * 1024) } }
    const response = await app.request('/v1/run', runRequest(big, 'json'))
    expect(response.status).toBe(413)
    const { error } = await readAnswer(response)
    expect(error.type).toBe('PayloadTooLarge')
    expect(error.message).toContain('65536')
    expect(backend.jobs).toHaveLength(0)
  })

  test('a chunked body over the limit is a 413 too', async () => {
    const { app } = appWith()
    const chunk = new TextEncoder().encode('x'.repeat(16 * 1024))
    const stream = new ReadableStream({
      start(controller) {
        for (let i = 0; i < 8; i++) controller.enqueue(chunk)
        controller.close()
      },
    })
    const response = await app.request('/v1/run', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: stream,
    })
    expect(response.status).toBe(413)
  })

  const thrown: [string, Error, number, string][] = [
    [
      'a block error',
      new BlockCodeError('BlockRuntimeError', 'ValueError: boom', { line: 3, function: 'run' }),
      422,
      'BlockRuntimeError',
    ],
    ['a timeout', new BlockTimeout(100), 504, 'BlockTimeout'],
    ['overload', new Overloaded('busy', 2), 503, 'Overloaded'],
    ['a bug', new TypeError('undefined is not a function'), 500, 'InternalError'],
  ]
  for (const [name, error, status, type] of thrown) {
    test(`${name} becomes a ${status} error body, in CBOR too`, async () => {
      const { app } = appWith(
        new FakeBackend(() => {
          throw error
        }),
      )
      const response = await app.request('/v1/run', runRequest(validBody, 'cbor'))
      expect(response.status).toBe(status)
      const answer = await readAnswer(response)
      expect(answer.error.type).toBe(type)
      if (status === 503) expect(response.headers.get('retry-after')).toBe('2')
      if (status === 422) expect(answer.error.line).toBe(3)
      if (status === 500) expect(answer.error.message).not.toContain('undefined is not a function')
    })
  }

  test('unknown routes are a JSON 404', async () => {
    const { app } = appWith()
    const response = await app.request('/v2/nothing')
    expect(response.status).toBe(404)
    expect((await readAnswer(response)).error).toEqual({
      type: 'NotFound',
      message: 'no route for GET /v2/nothing',
    })
  })
})

describe('health', () => {
  test('/healthz is always ok; /readyz follows the default backend', async () => {
    const { app, backend } = appWith()
    expect((await app.request('/healthz')).status).toBe(200)
    expect((await app.request('/readyz')).status).toBe(200)
    backend.ready = false
    const response = await app.request('/readyz')
    expect(response.status).toBe(503)
    // Without keys configured (a loopback-only server) the detail shows, without workspace names.
    expect(await readAnswer(response)).toEqual({
      ready: false,
      default_backend: 'local',
      backends: { local: { ready: false, queued: 0, live: 0 } },
      shared: { mode: 'off' }, // no BLOCKGATE_REDIS_URL: this instance's own state
    })
  })
})
