// Fuzzing the decoders: random bytes and mutated golden vectors of every kind, sent as a
// run's input. The only acceptable answers are a run (200) or a clean 400 naming the
// problem: never a 500, a crash or a hang.
import { describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import { decodeCbor, encodeCbor } from '../../../serializers/cbor.ts'
import { createApp } from '../../../src/app.ts'
import { FakeBackend } from '../../support/fake-backend.ts'
import { allGoldenVectors } from '../../support/vectors.ts'

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
  backends: { local: new FakeBackend() },
})

/** A run request whose `inputs.x` is the given raw CBOR item, spliced in as bytes. */
function bodyWithRawInput(item: Uint8Array): Uint8Array {
  const prefix = encodeCbor({ code: { run_function_code: 'def run(self, x): pass' } })
  // prefix is a 1-entry map (0xa1 …); make it 2 entries and append "inputs": {"x": item}.
  const tail = Buffer.concat([
    Buffer.from(encodeCbor('inputs')),
    Buffer.from([0xa1]),
    Buffer.from(encodeCbor('x')),
    Buffer.from(item),
  ])
  return Buffer.concat([Buffer.from([0xa2]), Buffer.from(prefix.subarray(1)), tail])
}

async function statusFor(item: Uint8Array): Promise<{ status: number; message: string }> {
  const response = await app.request('/v1/run', {
    method: 'POST',
    headers: { 'content-type': 'application/cbor' },
    body: bodyWithRawInput(item),
  })
  const answer = decodeCbor(new Uint8Array(await response.arrayBuffer())) as {
    error?: { message: string }
  }
  return { status: response.status, message: answer.error?.message ?? '' }
}

const vectors: Uint8Array[] = allGoldenVectors().map(({ raw }) => raw)

const mutation = fc.oneof(
  fc.record({
    kind: fc.constant('flip' as const),
    at: fc.nat(),
    value: fc.integer({ min: 0, max: 255 }),
  }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant('insert' as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
  }),
)

function mutate(
  vector: Uint8Array,
  steps: { kind: string; at: number; value?: number; bytes?: Uint8Array }[],
): Uint8Array {
  let out = Buffer.from(vector)
  for (const step of steps) {
    const at = out.length === 0 ? 0 : step.at % out.length
    if (step.kind === 'flip') out[at] = step.value!
    else if (step.kind === 'truncate') out = out.subarray(0, at)
    else out = Buffer.concat([out.subarray(0, at), Buffer.from(step.bytes!), out.subarray(at)])
  }
  return out
}

describe('decoder fuzzing', () => {
  test('the golden vectors themselves are accepted', async () => {
    expect(vectors.length).toBeGreaterThan(10)
    for (const vector of vectors) expect((await statusFor(vector)).status).toBe(200)
  })

  test('mutated vectors get a 200 or a clean 400, nothing else', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...vectors),
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        async (vector, steps) => {
          const { status, message } = await statusFor(mutate(vector, steps))
          if (status !== 200 && status !== 400) throw new Error(`status ${status}: ${message}`)
          if (status === 400) expect(message.length).toBeGreaterThan(5)
        },
      ),
      { numRuns: 1500, seed: 7 },
    )
  })

  test('random bytes get a clean 400 (or, rarely, a valid value)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 64 }), async (bytes) => {
        const { status } = await statusFor(bytes)
        expect([200, 400]).toContain(status)
      }),
      { numRuns: 1500, seed: 11 },
    )
  })
})
