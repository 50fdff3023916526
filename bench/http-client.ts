// A load generator in its own process (so it does not share the server's event loop):
//   bun bench/http-client.ts URL BODY_FILE CONTENT_TYPE REQUESTS CONCURRENCY [KEYS]
// Prints {latencies_ms, overhead_ms, seconds} as JSON: per request, the client's latency
// and the server's own time minus the block's code (timings_ms.total − user_code). KEYS,
// when given: API keys separated by commas, sent as `Authorization: Bearer` in turn.
import { readFileSync } from 'node:fs'
import { decodeCbor } from '../serializers/cbor.ts'

const [url, bodyFile, contentType, requestsText, concurrencyText, keysText] = process.argv.slice(2)
const keys = keysText ? keysText.split(',') : []
const body = readFileSync(bodyFile!)
const requests = Number(requestsText)
const concurrency = Number(concurrencyText)
const latencies: number[] = []
const overheads: number[] = []
let next = 0
const startedAt = performance.now()
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (next < requests) {
      const key = keys.length > 0 ? keys[next % keys.length] : undefined
      next++
      const sentAt = performance.now()
      const response = await fetch(url!, {
        method: 'POST',
        headers: {
          'content-type': contentType!,
          ...(key ? { authorization: `Bearer ${key}` } : {}),
        },
        body,
      })
      const bytes = new Uint8Array(await response.arrayBuffer())
      latencies.push(performance.now() - sentAt)
      if (response.status !== 200)
        throw new Error(
          `status ${response.status}: ${new TextDecoder().decode(bytes.subarray(0, 300))}`,
        )
      // An echo (the floor scenario) answers with the request itself: no timings to read.
      if (contentType === 'application/cbor') {
        const timings = (decodeCbor(bytes) as { timings_ms: { total: number; user_code?: number } })
          .timings_ms
        overheads.push(timings.total - (timings.user_code ?? 0))
      }
    }
  }),
)
console.log(
  JSON.stringify({
    latencies_ms: latencies,
    overhead_ms: overheads,
    seconds: (performance.now() - startedAt) / 1000,
  }),
)
