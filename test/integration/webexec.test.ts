// Roboflow Inference's remote-execution protocol (POST /webexec) against the real app and
// real local workers: its shapes, gzip, the code-hash cache, the `_type` markers of every
// kind, errors in Inference's terms, credentials, limits, and a replay of the requests the
// real Inference client sent (test/fixtures/webexec, recorded by `npm run test:inference -- --record`).
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import type { Hono } from 'hono'
import { createApp } from '../../src/app.ts'
import { checkedApp } from '../support/contract.ts'
import { loadConfig } from '../../src/config.ts'
import { KeyRing } from '../../src/auth/keys.ts'
import { setLogSink } from '../../src/log.ts'
import { createBackends } from '../../src/backends/index.ts'
import { webexecRequest, withCode, withHash } from '../support/webexec.ts'

const MAX_BODY = 1024 * 1024
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex')
const config = loadConfig({
  BLOCKGATE_MIN_WARM_WORKERS: '1',
  BLOCKGATE_MAX_WORKERS: '4',
  BLOCKGATE_MAX_BODY_BYTES: String(MAX_BODY),
  BLOCKGATE_DEFAULT_TIMEOUT_MS: '3000',
  // Inference sends MODAL_TOKEN_ID as Modal-Key (the key's id) and MODAL_TOKEN_SECRET as Modal-Secret (the key).
  BLOCKGATE_API_KEYS: JSON.stringify({
    keys: [
      {
        id: 'key-a',
        sha256: sha256('secret-a'),
        workspaces: ['acme', 'init-test', 'slow', 'cache-test', 'someone-else', 'anonymous'],
      },
      { id: 'key-b', sha256: sha256('secret:with:colons'), workspaces: ['acme'] },
      { id: 'inference-proof-key', sha256: sha256('replayed'), workspaces: ['anonymous'] },
    ],
  }),
})
const backends = createBackends(config)
const app = checkedApp(createApp({ config, backends }))
const KEYS = { 'modal-key': 'key-a', 'modal-secret': 'secret-a' }

beforeAll(async () => {
  await backends.local!.start()
}, 60_000)
afterAll(async () => {
  await backends.local!.stop()
})

interface Send {
  workspace?: string | null
  headers?: Record<string, string>
  gzip?: boolean
  on?: Hono<any>
}

/** POSTs a webexec body as Inference's client does: gzip JSON with its credentials. */
async function post(
  body: unknown,
  { workspace = 'acme', headers = KEYS, gzip = true, on = app }: Send = {},
) {
  const query = workspace === null ? '' : `?workspace_id=${encodeURIComponent(workspace)}`
  const response = await on.request(`/webexec${query}`, webexecRequest(body, { headers, gzip }))
  return { status: response.status, answer: (await response.json()) as any }
}

const result = (answer: { result: string }) => JSON.parse(answer.result)

describe('the protocol', () => {
  test('a success is {success, result as JSON text, stdout, stderr}', async () => {
    const { status, answer } = await post(
      withCode('def run(self, a, b):\n    return {"sum": a + b}\n', { a: 10.5, b: 20.3 }),
    )
    expect(status).toBe(200)
    expect(answer).toMatchObject({
      success: true,
      result: '{"sum":30.8}',
      stdout: null,
      stderr: null,
    })
    expect(answer.execution_time_seconds).toBeGreaterThanOrEqual(0)
    expect(answer.blockgate.backend).toBe('local')
  })

  test('prints come back as stdout and stderr', async () => {
    const { answer } = await post(
      withCode(
        'import sys\ndef run(self):\n    print("hello")\n    print("careful", file=sys.stderr)\n    return {}\n',
      ),
    )
    expect(answer).toMatchObject({
      success: true,
      result: '{}',
      stdout: 'hello\n',
      stderr: 'careful\n',
    })
  })

  test('a body without gzip is read too', async () => {
    const { answer } = await post(withCode('def run(self):\n    return {"plain": True}\n'), {
      gzip: false,
    })
    expect(result(answer)).toEqual({ plain: true })
  })

  test('a hash blockgate does not hold is UnknownCodeHash, marked as the server’s; after the code it runs warm', async () => {
    const code = 'def run(self, x):\n    return {"x": x + 1}\n'
    const hashOnly = withHash(code, { x: 1 })
    const unknown = (await post(hashOnly, { workspace: 'cache-test' })).answer
    expect(unknown).toMatchObject({
      success: false,
      error_type: 'UnknownCodeHash',
      server_error: true,
      line_number: null,
    })
    expect((await post(withCode(code, { x: 1 }), { workspace: 'cache-test' })).answer.success).toBe(
      true,
    )
    const known = (await post(hashOnly, { workspace: 'cache-test' })).answer
    expect(result(known)).toEqual({ x: 2 })
    expect(known.blockgate.cold_start).toBe(false)
    // Another workspace cannot run that code by naming its hash.
    expect((await post(hashOnly, { workspace: 'someone-else' })).answer.error_type).toBe(
      'UnknownCodeHash',
    )
  })

  test('the hash covers the import lines, and the imports are in scope', async () => {
    const code = 'def run(self, n, d):\n    return {"f": str(fractions.Fraction(n, d))}\n'
    const imports = ['import fractions']
    expect((await post(withCode(code, { n: 2, d: 4 }, { imports }))).answer.success).toBe(true)
    const { answer } = await post(withHash(code, { n: 3, d: 9 }, imports))
    expect(result(answer)).toEqual({ f: '1/3' })
    expect((await post(withHash(code))).answer.error_type).toBe('UnknownCodeHash')
  })

  test('a run function without self is called without it, like Inference’s validation block', async () => {
    const validation =
      'import ast\n\ndef validate_syntax():\n    ast.parse("x = 1")\n    return {"valid": True}\n'
    const { answer } = await post(
      withCode(validation, {}, { run_function_name: 'validate_syntax' }),
    )
    expect(result(answer)).toEqual({ valid: true })
  })

  test('the workflow context is what get_workflow_context() returns', async () => {
    const context = {
      step_name: 'probe',
      step_selector: '$steps.probe',
      block_type: 'Probe',
      workflow_execution_id: 'run-42',
    }
    const { answer } = await post(
      withCode(
        'def run(self):\n    return self.get_workflow_context()\n',
        {},
        { workflow_context: context },
      ),
    )
    expect(result(answer)).toEqual(context)
  })

  test('init found in the run code runs once per loaded block; self keeps state between runs', async () => {
    const code =
      'def init():\n    return {"base": 100}\n\ndef run(self, x):\n    self.calls = getattr(self, "calls", 0) + 1\n    return {"y": self._init_results["base"] + x, "calls": self.calls}\n'
    const first = result((await post(withCode(code, { x: 1 }), { workspace: 'init-test' })).answer)
    const second = result((await post(withCode(code, { x: 2 }), { workspace: 'init-test' })).answer)
    expect(first).toEqual({ y: 101, calls: 1 })
    expect(second).toEqual({ y: 102, calls: 2 })
  })

  test('a Batch input arrives as a Batch with its indices; a list of outputs goes back as a list', async () => {
    const code =
      'def run(self, values):\n    assert isinstance(values, Batch), type(values)\n    return [{"double": v * 2, "index": list(i)} for i, v in zip(values.indices, values)]\n'
    const inputs = {
      values: {
        _type: 'batch',
        value: [1, { _type: 'ndarray', dtype: 'int32', shape: [2], value: [3, 4] }],
        indices: [
          [0, 1],
          [0, 2],
        ],
      },
    }
    const { answer } = await post(withCode(code, inputs))
    expect(result(answer)).toEqual([
      { double: 2, index: [0, 1] },
      { double: { _type: 'ndarray', dtype: 'int32', shape: [2], value: [6, 8] }, index: [0, 2] },
    ])
  })
})

describe('the _type markers round-trip', () => {
  const echo = (body: string) => withCode(`def run(self, value):\n${body}\n`)

  test('ndarray: dtype and shape kept', async () => {
    const value = {
      _type: 'ndarray',
      dtype: 'int16',
      shape: [2, 3],
      value: [
        [1, -2, 3],
        [4, 5, -6],
      ],
    }
    const { answer } = await post({
      ...echo('    return {"out": value * 2, "dtype": str(value.dtype)}'),
      inputs_json: JSON.stringify({ value }),
    })
    expect(result(answer)).toEqual({
      out: {
        _type: 'ndarray',
        dtype: 'int16',
        shape: [2, 3],
        value: [
          [2, -4, 6],
          [8, 10, -12],
        ],
      },
      dtype: 'int16',
    })
  })

  test('workflow_image: pixels decoded, and an unchanged image goes back as the same file', async () => {
    // 6×4 PNG: left half blue, right half red (BGR).
    const png =
      'iVBORw0KGgoAAAANSUhEUgAAAAYAAAAECAIAAAAiZtkUAAAAIUlEQVQIHR3BAQkAAAACIPs/uiANdRUX6iou1FVcqKu4AUhfCAHhyAc8AAAAAElFTkSuQmCC'
    const value = { _type: 'workflow_image', type: 'base64', value: png, video_metadata: null }
    const code =
      'def run(self, value, copy):\n    return {"same": value, "shape": list(copy.numpy_image.shape), "corner": copy.numpy_image[0, 0].tolist()}\n'
    const { answer } = await post(withCode(code, { value, copy: value }))
    const out = result(answer)
    expect(out.shape).toEqual([4, 6, 3])
    expect(out.corner).toEqual([255, 0, 0])
    expect(out.same).toMatchObject({ _type: 'workflow_image', type: 'base64', value: png })
  })

  test('sv_detections: boxes, classes, confidence and ids', async () => {
    const value = {
      _type: 'sv_detections',
      image: { width: 120, height: 100 },
      predictions: [
        {
          x: 20,
          y: 40,
          width: 20,
          height: 40,
          confidence: 0.9,
          class_id: 0,
          class: 'dog',
          detection_id: 'd-1',
        },
        {
          x: 65,
          y: 30,
          width: 50,
          height: 40,
          confidence: 0.75,
          class_id: 2,
          class: 'car',
          detection_id: 'd-3',
        },
      ],
    }
    const code = '    return {"kept": value[value.class_id == 2], "xyxy": value.xyxy.tolist()}'
    const { answer } = await post({ ...echo(code), inputs_json: JSON.stringify({ value }) })
    const out = result(answer)
    expect(out.xyxy).toEqual([
      [10, 20, 30, 60],
      [40, 10, 90, 50],
    ])
    expect(out.kept).toMatchObject({ _type: 'sv_detections', image: { width: 120, height: 100 } })
    expect(out.kept.predictions).toEqual([
      {
        x: 65,
        y: 30,
        width: 50,
        height: 40,
        confidence: 0.75,
        class_id: 2,
        class: 'car',
        detection_id: 'd-3',
      },
    ])
  })

  test('video_metadata, with its datetime inside', async () => {
    const value = {
      _type: 'video_metadata',
      video_identifier: 'cam-1',
      frame_number: 42,
      frame_timestamp: { _type: 'datetime', value: '2025-03-04T05:06:07.500000+00:00' },
      fps: 30,
      measured_fps: null,
      comes_from_video_file: false,
    }
    const code =
      '    return {"same": value, "frame": value.frame_number, "year": value.frame_timestamp.year}'
    const { answer } = await post({ ...echo(code), inputs_json: JSON.stringify({ value }) })
    const out = result(answer)
    expect(out).toMatchObject({ frame: 42, year: 2025 })
    expect(out.same).toMatchObject({
      _type: 'video_metadata',
      video_identifier: 'cam-1',
      frame_number: 42,
      fps: 30,
      comes_from_video_file: false,
    })
    expect(out.same.frame_timestamp).toEqual({
      _type: 'datetime',
      value: '2025-03-04T05:06:07.500000+00:00',
    })
  })

  test('datetime, bytes and object', async () => {
    const inputs = {
      value: { _type: 'datetime', value: '2025-01-31T23:00:00+00:00' },
      blob: { _type: 'bytes', value: Buffer.from('abc').toString('base64') },
      thing: { _type: 'object', class: 'Foo', value: 'a Foo' },
    }
    const code =
      'def run(self, value, blob, thing):\n    return {"later": value.replace(day=1), "blob": blob[::-1], "thing": thing}\n'
    const { answer } = await post(withCode(code, inputs))
    expect(result(answer)).toEqual({
      later: { _type: 'datetime', value: '2025-01-01T23:00:00+00:00' },
      blob: { _type: 'bytes', value: Buffer.from('cba').toString('base64') },
      thing: 'a Foo',
    })
  })
})

describe('failures in Inference’s terms', () => {
  test('a raise names the exception, its text, the line in code_str and the function, with what was printed', async () => {
    const code =
      'def run(self, value):\n    print("about to divide")\n    doubled = value * 2\n    return {"ratio": doubled / (value - value)}\n'
    const { status, answer } = await post(withCode(code, { value: 3 }))
    expect(status).toBe(200)
    expect(answer).toEqual({
      success: false,
      error: 'division by zero',
      error_type: 'ZeroDivisionError',
      line_number: 4,
      function_name: 'run',
      stdout: 'about to divide\n',
      stderr: null,
    })
  })

  test('the line is the user’s own even when the exception comes from inside a library', async () => {
    const code =
      'def helper(s):\n    return json.loads(s)\n\ndef run(self, s):\n    return {"v": helper(s)}\n'
    const { answer } = await post(withCode(code, { s: '{oops' }))
    expect(answer).toMatchObject({
      success: false,
      error_type: 'JSONDecodeError',
      line_number: 2,
      function_name: 'helper',
    })
  })

  test('a syntax error names its line', async () => {
    const { answer } = await post(withCode('def run(self):\n    x = (1,\n    return {}\n'))
    expect(answer).toMatchObject({ success: false, error_type: 'SyntaxError', line_number: 2 })
  })

  test('a failing import line has no line in code_str', async () => {
    const { answer } = await post(
      withCode('def run(self):\n    return {}\n', {}, { imports: ['import no_such_module_here'] }),
    )
    expect(answer).toMatchObject({
      success: false,
      error_type: 'ModuleNotFoundError',
      error: "No module named 'no_such_module_here'",
      line_number: null,
    })
    expect(answer.server_error).toBeUndefined()
  })

  test('a block past its time is BlockTimeout', async () => {
    const { answer } = await post(withCode('def run(self):\n    time.sleep(30)\n    return {}\n'), {
      workspace: 'slow',
    })
    expect(answer).toMatchObject({ success: false, error_type: 'BlockTimeout', line_number: null })
    expect(answer.error).toContain('timeout_ms=3000')
  }, 20_000)

  test('an output whose encoding raises is the block’s error naming the output, on both routes, and forges no log line', async () => {
    // The block's own exception text ends up in the answer, never as a line of the log.
    const code =
      'class Evil(dict):\n    def items(self):\n        raise RuntimeError("x\\n{\\"level\\":\\"error\\",\\"message\\":\\"forged\\"}")\n\ndef run(self):\n    return {"x": Evil(a=1)}\n'
    const lines: string[] = []
    const previous = setLogSink((line) => lines.push(line))
    let answer: any
    let run: Response
    try {
      answer = (await post(withCode(code))).answer
      run = await app.request('/v1/run', {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer secret-a' },
        body: JSON.stringify({ code: { run_function_code: code }, inputs: {}, workspace: 'acme' }),
      })
    } finally {
      setLogSink(previous)
    }
    const message =
      'outputs.x: cannot encode this Evil: RuntimeError: x\n{"level":"error","message":"forged"}'
    expect(answer).toMatchObject({
      success: false,
      error_type: 'BlockRuntimeError',
      error: message,
    })
    expect(answer.server_error).toBeUndefined()
    expect(run.status).toBe(422)
    expect(((await run.json()) as any).error).toMatchObject({ type: 'BlockRuntimeError', message })
    const logged = lines.map((line) => JSON.parse(line))
    expect(logged.filter((record) => record.level === 'error')).toEqual([])
    expect(logged.filter((record) => record.message === 'forged')).toEqual([])
  })

  test('a malformed request is InvalidRequest or BadRequest, marked as the server’s', async () => {
    const noCode = (await post({ run_function_name: 'run', inputs_json: '{}' })).answer
    expect(noCode).toMatchObject({
      success: false,
      error_type: 'InvalidRequest',
      server_error: true,
    })
    const badName = (
      await post({
        ...withCode('def run(self):\n    return {}\n'),
        run_function_name: 'not a name',
      })
    ).answer
    expect(badName).toMatchObject({ error_type: 'InvalidRequest' })
    expect(badName.error).toContain('run_function_name: must be a Python identifier')
    const badInputs = (
      await post({ ...withCode('def run(self):\n    return {}\n'), inputs_json: '[1, 2]' })
    ).answer
    expect(badInputs).toMatchObject({
      success: false,
      error_type: 'BadRequest',
      error: 'inputs_json: must be a map of named inputs',
      server_error: true,
    })
    const badKind = (
      await post(
        withCode('def run(self, a):\n    return {}\n', {
          a: { _type: 'ndarray', dtype: 'uint8', shape: [3], value: [1] },
        }),
      )
    ).answer
    expect(badKind).toMatchObject({ success: false, error_type: 'BadRequest' })
    expect(badKind.error).toContain('inputs.a')
  })
})

describe('the HTTP envelope', () => {
  test("credentials: an API key's id and the key, as Modal-Key and Modal-Secret, or the key as a bearer token", async () => {
    const body = withCode('def run(self):\n    return {}\n')
    expect((await post(body, { headers: {} })).status).toBe(401)
    expect(
      (await post(body, { headers: { 'modal-key': 'key-a', 'modal-secret': 'wrong' } })).status,
    ).toBe(401)
    expect(
      (
        await post(body, {
          headers: { 'modal-key': 'key-a', 'modal-secret': 'secret:with:colons' },
        })
      ).status,
    ).toBe(401)
    const refused = await post(body, {
      headers: { 'modal-key': 'key-b', 'modal-secret': 'secret' },
    })
    expect(refused.status).toBe(401)
    expect(refused.answer.error.type).toBe('Unauthorized')
    expect(
      (
        await post(body, {
          headers: { 'modal-key': 'key-b', 'modal-secret': 'secret:with:colons' },
        })
      ).answer.success,
    ).toBe(true)
    expect(
      (await post(body, { headers: { authorization: 'Bearer secret:with:colons' } })).answer
        .success,
    ).toBe(true)
  })

  test('a key used for a workspace it does not hold is a 403', async () => {
    const body = withCode('def run(self):\n    return {}\n')
    const other = await post(body, {
      workspace: 'init-test',
      headers: { 'modal-key': 'key-b', 'modal-secret': 'secret:with:colons' },
    })
    expect(other.status).toBe(403)
    expect(other.answer.error.type).toBe('Forbidden')
  })

  test('with no keys configured, any request is accepted (the server then binds to loopback only)', async () => {
    const open = createApp({
      config: { ...config, auth: { keys: KeyRing.empty(), openBind: false } },
      backends,
    })
    expect(
      (await post(withCode('def run(self):\n    return {}\n'), { headers: {}, on: open })).answer
        .success,
    ).toBe(true)
  })

  test('workspace_id is required and must be a workspace name', async () => {
    const body = withCode('def run(self):\n    return {}\n')
    expect((await post(body, { workspace: null })).status).toBe(400)
    const bad = await post(body, { workspace: '../etc' })
    expect(bad.status).toBe(400)
    expect(bad.answer.error.message).toStartWith('workspace_id: must be 1-128 letters')
  })

  test('a gzip bomb is a 413 once it passes the limit, never inflated whole', async () => {
    const bomb = gzipSync(Buffer.alloc(256 * 1024 * 1024, 0x20))
    expect(bomb.byteLength).toBeLessThan(MAX_BODY)
    const before = process.memoryUsage().rss
    const response = await app.request('/webexec?workspace_id=acme', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip', ...KEYS },
      body: bomb,
    })
    expect(response.status).toBe(413)
    expect(((await response.json()) as any).error.message).toContain('once decompressed')
    expect(process.memoryUsage().rss - before).toBeLessThan(64 * 1024 * 1024)
  })

  test('a compressed body over the limit is a 413; a broken or unknown encoding is refused', async () => {
    const big = await app.request('/webexec?workspace_id=acme', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip', ...KEYS },
      body: new Uint8Array(MAX_BODY + 1),
    })
    expect(big.status).toBe(413)
    const broken = await app.request('/webexec?workspace_id=acme', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip', ...KEYS },
      body: 'not gzip',
    })
    expect(broken.status).toBe(400)
    expect(((await broken.json()) as any).error.message).toStartWith('body: not valid gzip')
    const brotli = await app.request('/webexec?workspace_id=acme', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'br', ...KEYS },
      body: '{}',
    })
    expect(brotli.status).toBe(415)
  })
})

describe('requests recorded from the real Inference client', () => {
  const dir = join(import.meta.dir, '../fixtures/webexec')
  const fixtures = readdirSync(dir)
    .filter((name) => name.endsWith('.json'))
    .sort()
    .map((name) => ({
      name,
      ...(JSON.parse(readFileSync(join(dir, name), 'utf8')) as {
        request: any
        response: { status: number; body: any }
      }),
    }))

  test('the recordings cover the issue’s cases', () => {
    const steps = fixtures.map(
      ({ request }) => request.body.workflow_context?.step_name ?? request.body.run_function_name,
    )
    for (const step of [
      'validate_syntax',
      'sum',
      'after_restart',
      'invert',
      'keepconfident',
      'raiser',
      'batchbrightness',
    ])
      expect(steps).toContain(step)
    expect(
      fixtures.some(({ request }) => request.body.code_str === undefined && request.body.code_hash),
    ).toBe(true)
    expect(
      fixtures.every(
        ({ request }) =>
          request.headers['content-encoding'] === 'gzip' && request.headers['modal-key'],
      ),
    ).toBe(true)
  })

  test('replayed in order, each gets the answer the client got', async () => {
    // The key the recording used (its id as Modal-Key), and an empty code cache, as the recording
    // blockgate had; its default body limit (the client's chunked case is over 1 MiB).
    const replayConfig = { ...config, limits: { ...config.limits, maxBodyBytes: 64 * 1024 * 1024 } }
    let replay = createApp({ config: replayConfig, backends })
    for (const { name, request, response } of fixtures) {
      // The recording restarted blockgate where the client met UnknownCodeHash; so does the replay.
      if (response.body.error_type === 'UnknownCodeHash')
        replay = createApp({ config: replayConfig, backends })
      const { status, answer } = await post(request.body, {
        workspace: request.workspace_id,
        headers: { 'modal-key': request.headers['modal-key'], 'modal-secret': 'replayed' },
        on: replay,
      })
      const { blockgate: _, execution_time_seconds: __, ...got } = answer
      expect({
        name,
        status,
        body: { ...got, result: got.result && JSON.parse(got.result) },
      }).toEqual({
        name,
        status: response.status,
        body: {
          ...response.body,
          result: response.body.result && JSON.parse(response.body.result),
        },
      })
    }
  }, 60_000)
})
