// Serialization, encode + decode of one payload, CBOR against the JSON/base64 form, in TS
// (here, timed with mitata) and in Python (bench/serializers.py), on the payloads
// bench/payloads.py built. TS CBOR: encode the kind values and decode them back
// (decodeKinds included). TS JSON/base64: the same values as JSON with every byte buffer
// base64'd (the lossless JSON a TS client could send), written and read back.
import { measure } from 'mitata'
import { resolve } from 'node:path'
import { decodeCbor, encodeCbor } from '../serializers/cbor.ts'
import { decodeKinds } from '../serializers/index.ts'
import { LARGE_BUFFER_MALLOC } from '../src/backends/local/worker.ts'
import type { BenchContext } from './context.ts'
import { PYTHON } from './payloads.ts'
import { rowOf, type Row } from './stats.ts'

// Byte buffers become {"base64": …}; everything else is written as its fields.
function toJsonBase64(this: unknown, _key: string, value: unknown): unknown {
  if (value instanceof Uint8Array)
    return {
      base64: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64'),
    }
  if (typeof value === 'bigint') return Number(value)
  return value
}

function fromJsonBase64(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(fromJsonBase64)
  if (value === null || typeof value !== 'object') return value
  const record = value as Record<string, unknown>
  if (typeof record.base64 === 'string') return new Uint8Array(Buffer.from(record.base64, 'base64'))
  for (const key of Object.keys(record)) record[key] = fromJsonBase64(record[key])
  return record
}

function serializationRow(
  language: 'ts' | 'python',
  payload: string,
  bytes: number,
  form: string,
  rounds: number[][],
): Row {
  const row = rowOf(
    {
      scenario: 'serialization',
      name: `${language === 'ts' ? 'TS' : 'Python'}: ${payload}, ${form}, encode + decode`,
      backend: language,
      target: 'local',
      payload,
      form,
    },
    rounds,
  )
  row.extra.mb_per_s = Math.round(bytes / 1e6 / (row.p50_ms / 1000))
  return row
}

export async function serializationTs(ctx: BenchContext): Promise<Row[]> {
  const rows: Row[] = []
  // Per round: a few samples of the slow forms, many of the fast ones. No full collection
  // before a round (mitata's default): after one, the next ~50 runs of a 1080p frame take
  // 3 ms instead of 0.6 ms, and a round would measure that recovery, not the steady state.
  const options = {
    gc: false,
    min_cpu_time: ctx.count(0.15, 0.5) * 1e9,
    min_samples: ctx.count(3, 8),
    max_samples: ctx.count(100, 300),
    batch_samples: 1,
    batch_unroll: 1,
  }
  for (const payload of ctx.payloads.serialization) {
    ctx.progress(`serialization (TS): ${payload.name}`)
    const value = decodeKinds(decodeCbor(payload.cbor), 'x')
    const forms = {
      cbor: () => decodeKinds(decodeCbor(encodeCbor(value)), 'x'),
      'json-base64': () => fromJsonBase64(JSON.parse(JSON.stringify(value, toJsonBase64))),
    }
    for (const [form, run] of Object.entries(forms)) {
      // The first ~50 runs are up to 6x slower (the JIT and the heap settle); a proxy
      // serializes thousands, so the steady state is the figure. mitata's own warm-up is shorter.
      const warmUntil = performance.now() + ctx.count(300, 1500)
      for (let i = 0; i < 150 && performance.now() < warmUntil; i++) run()
      const rounds: number[][] = []
      for (let r = 0; r < ctx.rounds; r++)
        rounds.push((await measure(run, options)).samples.map((ns) => ns / 1e6))
      rows.push(serializationRow('ts', payload.name, payload.bytes, form, rounds))
    }
  }
  return rows
}

export async function serializationPython(ctx: BenchContext): Promise<Row[]> {
  ctx.progress(
    'serialization (Python): every payload, CBOR (worker frame and plain) and JSON/base64',
  )
  const child = Bun.spawn({
    cmd: [PYTHON, resolve(import.meta.dir, 'serializers.py'), ...(ctx.quick ? ['--quick'] : [])],
    env: { ...process.env, ...LARGE_BUFFER_MALLOC }, // as a worker runs
    stdout: 'pipe',
    stderr: 'inherit',
  })
  const output = await new Response(child.stdout).text()
  if ((await child.exited) !== 0) throw new Error('bench/serializers.py failed')
  return output
    .trim()
    .split('\n')
    .map(
      (line) =>
        JSON.parse(line) as { payload: string; form: string; bytes: number; rounds: number[][] },
    )
    .map(({ payload, form, bytes, rounds }) =>
      serializationRow('python', payload, bytes, form, rounds),
    )
}
