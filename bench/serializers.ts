// Serialization throughput in TS, on the payloads bench/serializers.py emits (the same
// values the Python half measures). CBOR: encode the kind values and decode them back
// (decodeKinds included). JSON/base64: the same values as JSON with every byte buffer
// base64'd (the lossless JSON a TS client could send), written and read back.
import { measure } from 'mitata'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { decodeCbor, encodeCbor } from '../serializers/cbor.ts'
import { decodeKinds } from '../serializers/index.ts'

export interface ThroughputRow {
  payload: string
  form: string
  p50_ms: number
  mb_per_s: number
}

const options = { min_cpu_time: 0.4e9, batch_samples: 1, batch_unroll: 1, max_samples: 200 }

// Byte buffers become {"base64": …}; everything else is written as its fields.
function toJsonBase64(this: unknown, _key: string, value: unknown): unknown {
  if (value instanceof Uint8Array) return { base64: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') }
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

export async function serializationThroughput(payloadDir: string): Promise<ThroughputRow[]> {
  const index: { name: string; bytes: number; file: string }[] = JSON.parse(readFileSync(resolve(payloadDir, 'index.json'), 'utf8'))
  const rows: ThroughputRow[] = []
  for (const payload of index) {
    const value = decodeKinds(decodeCbor(new Uint8Array(readFileSync(resolve(payloadDir, `${payload.file}.cbor`)))), 'x')
    const forms = {
      cbor: () => decodeKinds(decodeCbor(encodeCbor(value)), 'x'),
      'json-base64': () => fromJsonBase64(JSON.parse(JSON.stringify(value, toJsonBase64))),
    }
    for (const [form, run] of Object.entries(forms)) {
      const stats = await measure(run, options)
      const ms = stats.p50 / 1e6
      rows.push({ payload: payload.name, form, p50_ms: +ms.toFixed(3), mb_per_s: Math.round(payload.bytes / 1e6 / (ms / 1000)) })
    }
  }
  return rows
}
