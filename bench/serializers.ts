// Serialization throughput in TS: CBOR (RFC 8746 typed arrays, what blockgate speaks)
// against the JSON/base64 form (what JSON clients and today's webexec path send), for the
// same payloads. Encode + decode of one payload counts as one operation.
import { measure } from 'mitata'
import { decodeCbor, encodeCbor } from '../serializers/cbor.ts'
import { decodeKinds } from '../serializers/index.ts'
import { NDArray } from '../serializers/ndarray/index.ts'
import { framePayloads, type Payload } from './payloads.ts'

export interface ThroughputRow {
  payload: string
  form: 'cbor' | 'json-base64'
  p50_ms: number
  mb_per_s: number
}

function jsonBase64RoundTrip(array: NDArray): NDArray {
  const text = JSON.stringify({
    _type: 'ndarray',
    dtype: array.dtype,
    shape: array.shape,
    encoding: 'base64',
    value: Buffer.from(array.bytes.buffer, array.bytes.byteOffset, array.bytes.byteLength).toString('base64'),
  })
  const parsed = JSON.parse(text)
  return NDArray.fromBytes(parsed.dtype, parsed.shape, new Uint8Array(Buffer.from(parsed.value, 'base64')))
}

function cborRoundTrip(value: unknown): unknown {
  return decodeKinds(decodeCbor(encodeCbor(value)), 'x')
}

const options = { min_cpu_time: 0.4e9, batch_samples: 1, batch_unroll: 1, max_samples: 200 }

export async function serializationThroughput(payloads: Payload[] = framePayloads()): Promise<ThroughputRow[]> {
  const rows: ThroughputRow[] = []
  for (const payload of payloads) {
    for (const form of ['cbor', 'json-base64'] as const) {
      const run = form === 'cbor' ? () => cborRoundTrip(payload.value) : () => jsonBase64RoundTrip(payload.value as NDArray)
      const stats = await measure(run, options)
      const ms = stats.p50 / 1e6
      rows.push({ payload: payload.name, form, p50_ms: +ms.toFixed(3), mb_per_s: Math.round(payload.bytes / 1e6 / (ms / 1000)) })
    }
  }
  return rows
}
