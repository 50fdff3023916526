// Values cross blockgate as Python reads them (issue 14, items 6-8): a JSON `2.0` or `-0.0`
// is a float for the block as json.loads makes it (a CBOR float too, as cbor2 makes it);
// NaN and ±Infinity outputs are answered losslessly (a `_type: float` marker on /v1/run
// JSON, Python's bare tokens on /webexec); a lone surrogate reaches the block as the str
// json.loads gives. Real app, real sandboxed workers; Python itself is the oracle.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import { resolve } from 'node:path'
import { gzipSync } from 'node:zlib'
import { createApp } from '../../src/app.ts'
import { checkedApp } from '../support/contract.ts'
import { loadConfig } from '../../src/config.ts'
import { createBackends } from '../../src/backends/index.ts'
import { decodeCbor } from '../../serializers/cbor.ts'
import { cbor, header, join } from '../support/cbor-bytes.ts'
import { PYTHON } from '../support/python.ts'

const config = loadConfig({
  BLOCKGATE_MIN_WARM_WORKERS: '1',
  BLOCKGATE_MAX_WORKERS: '2',
  BLOCKGATE_DEFAULT_TIMEOUT_MS: '10000',
})
const backends = createBackends(config)
const app = checkedApp(createApp({ config, backends }))

beforeAll(async () => {
  await backends.local!.start()
}, 60_000)
afterAll(async () => {
  await backends.local!.stop()
})

const VIEWS = resolve(import.meta.dir, '../support/py-views.py')
const DESCRIBE = Bun.spawnSync({ cmd: [PYTHON, VIEWS, '--describe'] }).stdout.toString()
/** Says what it was given (type and repr of every leaf), and gives it back. */
const ECHO = `${DESCRIBE}\ndef run(self, **inputs):\n    return {"d": describe(inputs), "v": inputs}\n`

async function runJson(text: string, accept = 'application/json') {
  const response = await app.request('/v1/run', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept },
    body: text,
  })
  return { status: response.status, bytes: new Uint8Array(await response.arrayBuffer()) }
}
async function runCbor(body: Uint8Array) {
  const response = await app.request('/v1/run', {
    method: 'POST',
    headers: { 'content-type': 'application/cbor' },
    body,
  })
  return { status: response.status, bytes: new Uint8Array(await response.arrayBuffer()) }
}
/** As Inference's client posts it: inputs_json is the text json.dumps wrote. */
async function webexec(code: string, inputsJson: string) {
  const body = JSON.stringify({
    code_hash: 'h',
    run_function_name: 'run',
    inputs_json: inputsJson,
    workflow_context: {},
    code_str: code,
    imports: [],
  })
  const response = await app.request('/webexec?workspace_id=acme', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
    body: gzipSync(body),
  })
  return { status: response.status, bytes: new Uint8Array(await response.arrayBuffer()) }
}
const runBody = (code: string, inputsText: string, extra = '') =>
  `{"code": ${JSON.stringify({ run_function_code: code })}, "inputs": ${inputsText}${extra}}`
const text = (bytes: Uint8Array) => Buffer.from(bytes).toString('utf8')

interface Case {
  sent: Uint8Array
  sent_as: 'json' | 'cbor'
  answer: Uint8Array
  answer_as: 'json' | 'cbor' | 'webexec'
}
/** Python's view of each case (test/support/py-views.py), in one process. */
function pythonViews(cases: Case[]): { expected: string; seen: string; returned: string }[] {
  const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64')
  const input = JSON.stringify(
    cases.map((c) => ({
      sent: b64(c.sent),
      sent_as: c.sent_as,
      answer: b64(c.answer),
      answer_as: c.answer_as,
    })),
  )
  const result = Bun.spawnSync({ cmd: [PYTHON, VIEWS], stdin: Buffer.from(input), stderr: 'pipe' })
  if (result.exitCode !== 0) throw new Error(result.stderr.toString())
  return JSON.parse(result.stdout.toString())
}

describe('whole-number floats stay floats (item 7)', () => {
  test('/v1/run JSON: 2.0, -0.0, 3000000000.0 and 1e3 are floats; -0 and big integers stay integers, as json.loads reads them', async () => {
    const inputs =
      '{"a": 2.0, "b": -0.0, "c": 3000000000.0, "e": 1e3, "f": 1E400, "d": -0, "g": 12345678901234567890123, "h": [1.0, {"x": -2.50}]}'
    const { status, bytes } = await runJson(runBody(ECHO, inputs, ', "timeout_ms": 9000.0'))
    expect(status).toBe(200)
    const [view] = pythonViews([
      {
        sent: Buffer.from(runBody(ECHO, inputs)),
        sent_as: 'json',
        answer: bytes,
        answer_as: 'json',
      },
    ])
    expect(view!.seen).toBe(view!.expected)
    expect(view!.seen).toContain("'a':float:2.0")
    expect(view!.seen).toContain("'b':float:-0.0")
    expect(view!.seen).toContain("'c':float:3000000000.0")
    expect(view!.seen).toContain("'d':int:0")
    expect(view!.seen).toContain("'f':float:inf")
    expect(view!.returned).toBe(view!.expected)
    // The answer writes them as Python does: 2.0 and -0.0, not 2 and 0.
    expect(text(bytes)).toContain('"a":2.0,"b":-0.0,"c":3000000000.0')
  })

  test('/v1/run CBOR: floats of whole value (float16, float32, float64) stay floats, as cbor2 reads them', async () => {
    const f16 = (bits: number) => new Uint8Array([0xf9, bits >> 8, bits & 0xff])
    const f32 = (v: number) => {
      const b = new Uint8Array(5)
      b[0] = 0xfa
      new DataView(b.buffer).setFloat32(1, v)
      return b
    }
    const f64 = (v: number) => {
      const b = new Uint8Array(9)
      b[0] = 0xfb
      new DataView(b.buffer).setFloat64(1, v)
      return b
    }
    const sent = cbor.map(
      ['code', cbor.map(['run_function_code', cbor.text(ECHO)])],
      [
        'inputs',
        cbor.map(
          ['a', f64(2)],
          ['b', f16(0x8000)],
          ['c', f32(3e9)],
          ['d', cbor.array(f16(0x3c00), cbor.uint(1))],
          ['e', cbor.map(['k', f64(-1e300)])],
          ['i', cbor.uint(7)],
        ),
      ],
      ['timeout_ms', f64(9000)],
    )
    const { status, bytes } = await runCbor(sent)
    expect(status).toBe(200)
    const [view] = pythonViews([{ sent, sent_as: 'cbor', answer: bytes, answer_as: 'cbor' }])
    expect(view!.seen).toBe(view!.expected)
    expect(view!.seen).toContain("'a':float:2.0")
    expect(view!.seen).toContain("'b':float:-0.0")
    expect(view!.seen).toContain("'d':[float:1.0,int:1]")
    expect(view!.returned).toBe(view!.expected)
  })

  test("/webexec: Inference's inputs_json keeps 2.0, -0.0 and 3000000000.0 floats, and reads NaN and Infinity", async () => {
    const inputsJson =
      '{"a": 2.0, "b": -0.0, "c": 3000000000.0, "n": NaN, "i": [Infinity, -Infinity], "s": "NaN Infinity"}'
    const { status, bytes } = await webexec(ECHO, inputsJson)
    expect(status).toBe(200)
    const [view] = pythonViews([
      { sent: Buffer.from(inputsJson), sent_as: 'json', answer: bytes, answer_as: 'webexec' },
    ])
    expect(view!.seen).toBe(view!.expected)
    expect(view!.seen).toContain("'a':float:2.0")
    expect(view!.seen).toContain("'n':float:nan")
    expect(view!.seen).toContain("'s':str:'NaN Infinity'")
    expect(view!.returned).toBe(view!.expected)
  })
})

const NON_FINITE_BLOCK = `import numpy as np
import supervision as sv
def run(self):
    dets = sv.Detections(xyxy=np.array([[1.0, 2.0, 3.0, 4.0]]), confidence=np.array([np.nan]), class_id=np.array([0]))
    return {"n": float("nan"), "i": float("inf"), "m": -np.inf, "arr": np.array([1.0, np.nan, np.inf], dtype=np.float32), "dets": dets, "whole": 2.0}
`

describe('NaN and ±Infinity outputs are answered, not null and not a 500 (item 8)', () => {
  test('/v1/run JSON: the documented marker, also inside arrays and detections; sent back as inputs, they are floats again', async () => {
    const { status, bytes } = await runJson(runBody(NON_FINITE_BLOCK, '{}'))
    expect(status).toBe(200)
    const { outputs } = JSON.parse(text(bytes))
    expect(outputs.n).toEqual({ _type: 'float', value: 'NaN' })
    expect(outputs.i).toEqual({ _type: 'float', value: 'Infinity' })
    expect(outputs.m).toEqual({ _type: 'float', value: '-Infinity' })
    expect(outputs.arr.value).toEqual([
      1,
      { _type: 'float', value: 'NaN' },
      { _type: 'float', value: 'Infinity' },
    ])
    expect(outputs.dets.predictions[0].confidence).toEqual({ _type: 'float', value: 'NaN' })
    // The answer's outputs as inputs: the block gets the floats (and arrays, detections) back.
    const check =
      'import math\ndef run(self, n, i, m, arr, dets, whole):\n    return {"ok": [math.isnan(n), i == math.inf, m == -math.inf, str(arr.dtype), repr(arr.tolist()), math.isnan(dets.confidence[0]), repr(whole)]}\n'
    // Written back by Python (JSON.stringify would write the 2.0 as 2).
    const outputsText = Bun.spawnSync({
      cmd: [
        PYTHON,
        '-c',
        'import json,sys; print(json.dumps(json.loads(sys.stdin.read())["outputs"]))',
      ],
      stdin: bytes,
    }).stdout.toString()
    expect(outputsText).toContain('"whole": 2.0')
    const back = await runJson(runBody(check, outputsText))
    expect(back.status).toBe(200)
    expect(JSON.parse(text(back.bytes)).outputs.ok).toEqual([
      true,
      true,
      true,
      'float32',
      '[1.0, nan, inf]',
      true,
      '2.0',
    ])
  })

  test('/v1/run CBOR: NaN and infinities as CBOR floats', async () => {
    const response = await app.request('/v1/run', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/cbor' },
      body: runBody(NON_FINITE_BLOCK, '{}'),
    })
    expect(response.status).toBe(200)
    const { outputs } = decodeCbor(new Uint8Array(await response.arrayBuffer())) as {
      outputs: Record<string, unknown>
    }
    expect(outputs.n).toBeNaN()
    expect(outputs.i).toBe(Infinity)
    expect(outputs.m).toBe(-Infinity)
  })

  test("/webexec: bare NaN and Infinity tokens, as Modal answers and Inference's json.loads reads", async () => {
    const { status, bytes } = await webexec(NON_FINITE_BLOCK, '{}')
    expect(status).toBe(200)
    const answer = JSON.parse(text(bytes))
    expect(answer.success).toBe(true)
    expect(answer.result).toContain(
      '"n":NaN,"i":Infinity,"m":-Infinity,"arr":{"_type":"ndarray","value":[1.0,NaN,Infinity]',
    )
    expect(answer.result).toContain('"confidence":NaN')
    const py = Bun.spawnSync({
      cmd: [
        PYTHON,
        '-c',
        'import json,sys; r = json.loads(json.loads(sys.stdin.read())["result"]); print(repr([r["n"], r["i"], r["m"], r["whole"]]))',
      ],
      stdin: bytes,
    })
    expect(py.stdout.toString().trim()).toBe('[nan, inf, -inf, 2.0]')
  })
})

describe('a lone surrogate in a JSON input (item 6)', () => {
  const SURROGATE =
    'def run(self, s):\n    return {"seen": [len(s), hex(ord(s[0])), repr(s)], "s": s}\n'

  test('/v1/run: reaches the block as the str json.loads makes of it, and comes back as the same escape', async () => {
    const { status, bytes } = await runJson(runBody(SURROGATE, '{"s": "\\ud800x"}'))
    expect(status).toBe(200)
    expect(text(bytes)).toContain('"s":"\\ud800x"')
    const { outputs } = JSON.parse(text(bytes))
    expect(outputs.seen).toEqual([2, '0xd800', "'\\ud800x'"])
    expect(outputs.s).toBe('\ud800x')
  })

  test('/webexec: the same', async () => {
    const { status, bytes } = await webexec(SURROGATE, '{"s": "\\udfff"}')
    expect(status).toBe(200)
    const answer = JSON.parse(text(bytes))
    expect(JSON.parse(answer.result).seen).toEqual([1, '0xdfff', "'\\udfff'"])
  })

  test('in a key, or in a field that is not an input, it is a 400 naming where', async () => {
    const key = await runJson(runBody(SURROGATE, '{"s": {"\\ud800": 1}}'))
    expect(key.status).toBe(400)
    expect(JSON.parse(text(key.bytes)).error.message).toStartWith(
      'inputs.s: the key "\\ud800" holds a lone surrogate',
    )
    const code = await runJson(
      `{"code": {"run_function_code": "def run(self):\\n    return {'s': '\\udc00'}\\n"}}`,
    )
    expect(code.status).toBe(400)
    expect(JSON.parse(text(code.bytes)).error.message).toStartWith(
      'code.run_function_code: holds a lone surrogate',
    )
  })
})

// ---- the property: random nested values, as JSON and as CBOR, against Python's reading ----

type Leaf = { int: bigint } | { float: number } | { str: string } | { bool: boolean } | null
type Value = Leaf | Value[] | { map: [string, Value][] }

const lonely = fc.integer({ min: 0xd800, max: 0xdfff }).map((unit) => String.fromCharCode(unit))
const strings = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 6 }),
  fc
    .tuple(fc.string({ unit: 'binary', maxLength: 4 }), lonely, fc.nat(4))
    .map(([s, u, at]) => s.slice(0, at) + u + s.slice(at)),
)
const floats = fc.oneof(
  fc.double(), // NaN, ±Infinity, -0 and whole values among them
  fc.integer({ min: -(2 ** 40), max: 2 ** 40 }).map((n) => n * 1.0), // whole, written as 12.0
  fc.constantFrom(0, -0, 2 ** 31, 2 ** 53, 1e21, 1e300),
)
const leaf: fc.Arbitrary<Value> = fc.oneof(
  fc
    .oneof(
      fc.integer(),
      fc.bigInt({ min: -(2n ** 200n), max: 2n ** 200n }),
      fc.constantFrom(2n ** 31n, -(2n ** 63n), 2n ** 64n),
    )
    .map((n) => ({ int: BigInt(n) })),
  floats.map((v) => ({ float: v })),
  strings.map((s) => ({ str: s })),
  fc.boolean().map((b) => ({ bool: b })),
  fc.constant(null),
)
const { tree } = fc.letrec<{ tree: Value }>((tie) => ({
  tree: fc.oneof(
    { maxDepth: 3, depthIdentifier: 'tree' },
    leaf,
    fc.array(tie('tree'), { maxLength: 4 }),
    fc
      .uniqueArray(fc.tuple(fc.string({ unit: 'binary', maxLength: 5 }), tie('tree')), {
        maxLength: 4,
        selector: ([k]) => k,
      })
      .map((map) => ({ map })),
  ),
}))

const isWellFormed = (s: string) => (s as unknown as { isWellFormed(): boolean }).isWellFormed()

/** JSON text as Python's json.dumps would write it: floats with a fraction or exponent, NaN as a bare token. */
function toJson(value: Value): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return `[${value.map(toJson).join(', ')}]`
  if ('map' in value)
    return `{${value.map.map(([k, v]) => `${JSON.stringify(k)}: ${toJson(v)}`).join(', ')}}`
  if ('int' in value) return value.int.toString()
  if ('str' in value) return JSON.stringify(value.str) // a lone surrogate as its \u escape
  if ('bool' in value) return String(value.bool)
  const v = value.float
  if (Number.isNaN(v)) return 'NaN'
  if (!Number.isFinite(v)) return v > 0 ? 'Infinity' : '-Infinity'
  if (Object.is(v, -0)) return '-0.0'
  const written = String(v)
  return /[.e]/.test(written) ? written : `${written}.0`
}

/** CBOR written here byte by byte (not by the code under test): every float a float64. */
function toCbor(value: Value): Uint8Array {
  if (value === null) return new Uint8Array([0xf6])
  if (Array.isArray(value)) return cbor.array(...value.map(toCbor))
  if ('map' in value)
    return join(
      header(5, value.map.length),
      ...value.map.flatMap(([k, v]) => [cbor.text(k), toCbor(v)]),
    )
  if ('str' in value) return cbor.text(value.str)
  if ('bool' in value) return new Uint8Array([value.bool ? 0xf5 : 0xf4])
  if ('int' in value) {
    const n = value.int
    const negative = n < 0n
    const magnitude = negative ? -1n - n : n
    if (magnitude < 2n ** 64n) return header(negative ? 1 : 0, magnitude)
    const hex = magnitude.toString(16)
    return cbor.bignum(
      new Uint8Array(Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex')),
      negative,
    )
  }
  const out = new Uint8Array(9)
  out[0] = 0xfb
  new DataView(out.buffer).setFloat64(1, value.float)
  return out
}

/** CBOR text must be UTF-8: a value with a lone surrogate has no CBOR form to test. */
function wellFormed(value: Value): boolean {
  if (value === null) return true
  if (Array.isArray(value)) return value.every(wellFormed)
  if ('map' in value) return value.map.every(([k, v]) => isWellFormed(k) && wellFormed(v))
  return 'str' in value ? isWellFormed(value.str) : true
}
/** Keys with a lone surrogate are refused by design (a 400): none in what is sent. */
const keysWellFormed = (value: Value): boolean =>
  value === null ||
  (Array.isArray(value)
    ? value.every(keysWellFormed)
    : 'map' in value
      ? value.map.every(([k, v]) => isWellFormed(k) && keysWellFormed(v))
      : true)

describe('property: random nested values come back as Python reads the same bytes', () => {
  const seed = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31)
  const RUNS = Number(process.env.FC_RUNS ?? 40)
  const BATCH = 10

  test(`JSON on /v1/run and /webexec, CBOR on /v1/run (${RUNS} values each, seed ${seed})`, async () => {
    const values = fc.sample(tree.filter(keysWellFormed), { numRuns: RUNS, seed })
    const cases: (Case & { values: Value[] })[] = []
    for (let at = 0; at < values.length; at += BATCH) {
      const batch = values.slice(at, at + BATCH)
      const names = batch.map((_, i) => `i${i}`)
      const inputsJson = `{${batch.map((v, i) => `"${names[i]}": ${toJson(v)}`).join(', ')}}`
      const sentJson = Buffer.from(runBody(ECHO, inputsJson))
      const json = await runJson(sentJson.toString())
      expect(json.status, text(json.bytes)).toBe(200)
      cases.push({
        values: batch,
        sent: sentJson,
        sent_as: 'json',
        answer: json.bytes,
        answer_as: 'json',
      })

      const viaWebexec = await webexec(ECHO, inputsJson)
      expect(viaWebexec.status).toBe(200)
      expect(JSON.parse(text(viaWebexec.bytes)).success, text(viaWebexec.bytes)).toBe(true)
      cases.push({
        values: batch,
        sent: Buffer.from(inputsJson),
        sent_as: 'json',
        answer: viaWebexec.bytes,
        answer_as: 'webexec',
      })

      const cborValues = batch.filter(wellFormed)
      const sentCbor = cbor.map(
        ['code', cbor.map(['run_function_code', cbor.text(ECHO)])],
        [
          'inputs',
          join(
            header(5, cborValues.length),
            ...cborValues.flatMap((v, i) => [cbor.text(names[i]!), toCbor(v)]),
          ),
        ],
      )
      const viaCbor = await runCbor(sentCbor)
      expect(viaCbor.status, text(viaCbor.bytes)).toBe(200)
      cases.push({
        values: cborValues,
        sent: sentCbor,
        sent_as: 'cbor',
        answer: viaCbor.bytes,
        answer_as: 'cbor',
      })
    }
    const views = pythonViews(cases)
    views.forEach((view, i) => {
      const where = `${cases[i]!.sent_as} → ${cases[i]!.answer_as} (seed ${seed}): ${text(cases[i]!.sent).slice(0, 2000)}`
      expect(view.seen, where).toBe(view.expected)
      expect(view.returned, where).toBe(view.expected)
    })
  }, 60_000)
})
