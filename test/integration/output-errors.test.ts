// What a block returns that blockgate cannot send is the block's doing, answered as such
// against the real sandboxed pool: OutputTooLarge (413) as soon as encoding passes the
// reply limit (the body limit plus 1 MiB), before the whole document is built, and a
// BlockRuntimeError (422) naming the output's path for the rest. Never a 500, and the
// pool goes on serving. Also: a timeout_ms past 2^31 is capped like any other.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createApp } from '../../src/app.ts'
import { checkedApp } from '../support/contract.ts'
import { loadConfig } from '../../src/config.ts'
import type { LocalPool } from '../../src/backends/local/pool.ts'
import { createBackends, frameLimitFor } from '../../src/backends/index.ts'
import { encodeCbor } from '../../serializers/cbor.ts'
import { readAnswer, runRequest, SUM_BLOCK } from '../support/http.ts'

const MiB = 1024 * 1024
const config = loadConfig({
  BLOCKGATE_MIN_WARM_WORKERS: '2',
  BLOCKGATE_MAX_WORKERS: '3',
  BLOCKGATE_MAX_BODY_BYTES: String(MiB),
  BLOCKGATE_MAX_TIMEOUT_MS: '20000',
})
const LIMIT = frameLimitFor(config) // 2 MiB
const backends = createBackends(config)
const pool = backends.local as LocalPool
const app = checkedApp(createApp({ config, backends }))

beforeAll(async () => {
  await pool.start()
}, 60_000)
afterAll(async () => {
  await pool.stop()
})

async function run(source: string, format: 'json' | 'cbor', extra: Record<string, unknown> = {}) {
  const startedAt = performance.now()
  const response = await app.request(
    '/v1/run',
    runRequest({ code: { run_function_code: source }, ...extra }, format),
  )
  return {
    status: response.status,
    answer: await readAnswer(response),
    ms: performance.now() - startedAt,
  }
}

async function stillServes() {
  const { status, answer } = await run(SUM_BLOCK, 'json', { inputs: { a: 1, b: 2 } })
  expect(status).toBe(200)
  expect(answer.outputs).toEqual({ sum: 3 })
}

const overLimit = (path: string) =>
  new RegExp(
    `^${path.replace(/[.[\]]/g, '\\$&')}: the outputs are over the reply limit of ${LIMIT} bytes`,
  )

describe('outputs too large: 413 while encoding, not after', () => {
  for (const format of ['json', 'cbor'] as const) {
    test(`300 MB of bytes in ${format}`, async () => {
      const { status, answer, ms } = await run(
        'def run(self):\n    return {"x": b"x" * 300_000_000}\n',
        format,
      )
      expect(status).toBe(413)
      expect(answer.error.type).toBe('OutputTooLarge')
      // Caught on the value itself (its path named), not by measuring a finished 300 MB reply.
      expect(answer.error.message).toMatch(overLimit('outputs.x'))
      expect(ms).toBeLessThan(3000)
      await stillServes()
    })
  }

  test('a map of a million keys stops at the limit', async () => {
    const { status, answer } = await run(
      'def run(self):\n    return {"x": {"y": {i: i for i in range(1_000_000)}}}\n',
      'json',
    )
    expect(status).toBe(413)
    // Counted key by key: the path names where the limit was passed.
    expect(answer.error.message).toMatch(
      /^outputs\.x\.y\[\d+\]( \(key\))?: the outputs are over the reply limit of 2097152 bytes/,
    )
    await stillServes()
  })

  test('an array of 64 M elements as JSON lists is refused before it is turned into lists', async () => {
    const { status, answer, ms } = await run(
      'def run(self):\n    return {"x": np.zeros((8000, 8000), np.uint8)}\n',
      'json',
    )
    expect(status).toBe(413)
    expect(answer.error.message).toMatch(overLimit('outputs.x'))
    expect(ms).toBeLessThan(2000)
  })
})

describe('outputs that cannot be encoded: 422 naming the path', () => {
  const cases: [string, string, 'json' | 'cbor', Record<string, unknown>, RegExp][] = [
    [
      'an object whose __repr__ raises',
      'class Bad:\n    def __repr__(self):\n        raise RuntimeError("no repr")\ndef run(self):\n    return {"x": {"y": Bad()}}\n',
      'json',
      {},
      /^outputs\.x\.y: this Bad has no kind, so it is sent as its str\(\), which raised RuntimeError: no repr$/,
    ],
    [
      'an object whose __str__ raises',
      'class Bad:\n    def __str__(self):\n        raise ValueError("no str")\ndef run(self):\n    return {"x": [0, Bad()]}\n',
      'cbor',
      {},
      /^outputs\.x\[1\]: .*ValueError: no str$/,
    ],
    [
      'a key whose __str__ raises (JSON keys are text)',
      'class Bad:\n    def __str__(self):\n        raise ValueError("no str")\ndef run(self):\n    return {"x": {Bad(): 1}}\n',
      'json',
      {},
      /^outputs\.x\[<Bad object>\] \(key\): .*ValueError: no str$/,
    ],
    [
      'a key CBOR cannot carry',
      'class K:\n    pass\ndef run(self):\n    return {"x": {K(): 1}}\n',
      'cbor',
      {},
      /^outputs\.x\[<K object>\] \(key\): this K cannot be a map key in CBOR/,
    ],
    [
      'a mapping whose items() raises',
      'class Evil(dict):\n    def items(self):\n        raise KeyError("gone")\ndef run(self):\n    return {"x": Evil(a=1)}\n',
      'json',
      {},
      /^outputs\.x: cannot encode this Evil: KeyError: 'gone'$/,
    ],
    [
      'an integer of 5,000 digits in a JSON answer',
      'def run(self):\n    return {"x": {"y": 10 ** 5000}}\n',
      'json',
      {},
      /^outputs\.x\.y: an integer of more than 4300 digits/,
    ],
    [
      'a CBOR bignum input of 4,500 digits returned in a JSON answer',
      'def run(self, n):\n    return {"n": n}\n',
      'json',
      { inputs: { n: 10n ** 4500n } },
      /^outputs\.n: an integer of more than 4300 digits/,
    ],
    [
      'an exception whose __str__ raises',
      'class Bad(Exception):\n    def __str__(self):\n        raise RuntimeError("no str")\ndef run(self):\n    raise Bad()\n',
      'json',
      {},
      /^Bad: <str\(\) of the exception raised RuntimeError>$/,
    ],
    [
      'printing a value whose __str__ raises',
      'class Bad:\n    def __str__(self):\n        raise RuntimeError("no str")\ndef run(self):\n    print(Bad())\n    return {}\n',
      'json',
      {},
      /^RuntimeError: no str$/,
    ],
    [
      'printing a CBOR bignum input of 4,500 digits',
      'def run(self, n):\n    print(n)\n    return {}\n',
      'cbor',
      { inputs: { n: 10n ** 4500n } },
      /^ValueError: Exceeds the limit \(4300 digits\)/,
    ],
  ]
  for (const [name, source, format, extra, message] of cases) {
    test(name, async () => {
      // A JSON body cannot hold a BigInt: those inputs go as CBOR, asking for a JSON answer.
      const init = runRequest(
        { code: { run_function_code: source }, ...extra },
        extra.inputs ? 'cbor' : format,
        format === 'json' ? { accept: 'application/json' } : {},
      )
      const response = await app.request('/v1/run', init)
      const answer = await readAnswer(response)
      expect({ status: response.status, type: answer.error?.type }).toEqual({
        status: 422,
        type: 'BlockRuntimeError',
      })
      expect(answer.error.message).toMatch(message)
    })
  }

  test('a CBOR answer carries the 5,000-digit integer JSON cannot', async () => {
    const response = await app.request(
      '/v1/run',
      runRequest(
        {
          code: { run_function_code: 'def run(self, n):\n    return {"n": n + 1}\n' },
          inputs: { n: 10n ** 4500n },
        },
        'cbor',
      ),
    )
    expect(response.status).toBe(200)
    expect(
      Buffer.from(await response.arrayBuffer()).includes(
        Buffer.from(encodeCbor(10n ** 4500n + 1n)),
      ),
    ).toBe(true)
    await stillServes()
  })
})

describe('timeout_ms past 2^31', () => {
  for (const [format, value] of [
    ['json', 2 ** 31],
    ['json', 10 ** 30],
    ['cbor', 2 ** 53],
    ['cbor', 10n ** 40n],
  ] as const) {
    test(`${format} ${value} is capped at BLOCKGATE_MAX_TIMEOUT_MS, like any timeout over it`, async () => {
      const body = {
        code: {
          run_function_code: 'def run(self):\n    time.sleep(0.05)\n    return {"ok": True}\n',
        },
        timeout_ms: value,
      }
      const init =
        format === 'json'
          ? {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify(body).replace(JSON.stringify(value), String(value)),
            }
          : runRequest(body, 'cbor')
      const response = await app.request('/v1/run', init)
      expect(response.status).toBe(200)
      expect((await readAnswer(response)).outputs).toEqual({ ok: true })
    })
  }
})
