// Issue 13, through the HTTP API in process: huge integers in a body (a 256 KiB CBOR
// bignum froze the server for 13 s) answer a quick 400 naming the limit; integers within
// it cross exactly; a "__proto__" key in the inputs survives as JSON.parse keeps it.
import { describe, expect, test } from 'bun:test'
import { BIGNUM, encodeCbor } from '../../serializers/cbor.ts'
import { createApp } from '../../src/app.ts'
import { FakeBackend } from '../support/fake-backend.ts'
import { readAnswer } from '../support/http.ts'
import { cbor, join, patternBytes } from '../support/cbor-bytes.ts'

const backend = new FakeBackend()
const app = createApp({
  config: {
    defaultBackend: 'local',
    limits: {
      maxBodyBytes: 1 << 20,
      defaultTimeoutMs: 1000,
      maxTimeoutMs: 1000,
      queueTimeoutMs: 1000,
    },
  },
  backends: { local: backend },
})

const code = { run_function_code: 'def run(self, n): return {"n": n}' }

/** A CBOR run request whose inputs map is the raw bytes given. */
const cborRun = (inputs: Uint8Array) =>
  join(cbor.map(['code', encodeCbor(code)], ['inputs', inputs]))

async function post(body: Uint8Array | string, type: 'cbor' | 'json') {
  const started = performance.now()
  const response = await app.request('/v1/run', {
    method: 'POST',
    headers: { 'content-type': `application/${type}` },
    body,
  })
  const answer = await readAnswer(response)
  return { status: response.status, answer, ms: performance.now() - started }
}

describe('huge integers in a run request', () => {
  test('a 256 KiB CBOR bignum is a quick 400 that names the limit', async () => {
    const { status, answer, ms } = await post(
      cborRun(cbor.map(['n', cbor.bignum(patternBytes(256 * 1024))])),
      'cbor',
    )
    expect(status).toBe(400)
    expect(answer.error.message).toStartWith(
      'body: a bignum (tag 2) of 262144 bytes (its bytes from offset ',
    )
    expect(answer.error.message).toContain(`over the ${BIGNUM.maxBytes}-byte limit`)
    expect(ms).toBeLessThan(200) // was 13 s of a frozen event loop
  })

  test('a JSON integer of 300,000 digits is a quick 400 that names the limit', async () => {
    const body = `{"code": ${JSON.stringify(code)}, "inputs": {"n": ${'9'.repeat(300_000)}}}`
    const { status, answer, ms } = await post(body, 'json')
    expect(status).toBe(400)
    expect(answer.error.message).toBe(
      `body: the integer under "n" has 300000 digits, over the limit of ${BIGNUM.maxDigits} (${BIGNUM.maxBytes}-byte bignums)`,
    )
    expect(ms).toBeLessThan(200)
  })

  test('integers within the limit cross exactly, in either format (JSON used to turn 309 digits into Infinity)', async () => {
    for (const digits of [400, BIGNUM.maxDigits]) {
      const n = BigInt('7'.repeat(digits))
      const json = await post(
        `{"code": ${JSON.stringify(code)}, "inputs": {"n": ${n}, "m": -${n}}}`,
        'json',
      )
      expect(json.status).toBe(200)
      expect(backend.jobs.at(-1)!.inputs).toEqual({ n, m: -n })
      const fromCbor = await post(encodeCbor({ code, inputs: { n, m: -n } }), 'cbor')
      expect(fromCbor.status).toBe(200)
      expect(fromCbor.answer.outputs.echoed).toEqual({ n, m: -n })
    }
  })
})

describe('a "__proto__" key in the inputs', () => {
  for (const type of ['json', 'cbor'] as const) {
    test(`is kept as an own key with its value (${type})`, async () => {
      const text = `{"code": ${JSON.stringify(code)}, "inputs": {"n": {"__proto__": {"polluted": true}, "after": 1}}}`
      const { status } = await post(type === 'json' ? text : encodeCbor(JSON.parse(text)), type)
      expect(status).toBe(200)
      const n = backend.jobs.at(-1)!.inputs.n as Record<string, unknown>
      expect(Object.keys(n)).toEqual(['__proto__', 'after'])
      expect(Object.getPrototypeOf(n)).toBe(Object.prototype)
      expect(Object.getOwnPropertyDescriptor(n, '__proto__')?.value).toEqual({ polluted: true })
      expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    })
  }
})
