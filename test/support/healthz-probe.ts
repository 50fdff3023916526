// Asks a server's /healthz over and over from a process of its own (so that a stall of the
// test's own event loop is not counted), until SIGTERM; then prints what it saw as JSON.
//   bun test/support/healthz-probe.ts <base url> [interval ms]
export {}

const [url = 'http://127.0.0.1:8000', intervalText = '20'] = process.argv.slice(2)
const intervalMs = Number(intervalText)
const latencies: number[] = []
let failures = 0
let stopping = false

process.on('SIGTERM', () => {
  stopping = true
})
// Bounded in time whatever happens to the test that started it.
setTimeout(() => {
  stopping = true
}, 120_000).unref()

while (!stopping) {
  const startedAt = performance.now()
  try {
    const response = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(5000) })
    await response.arrayBuffer()
    if (!response.ok) failures++
  } catch {
    failures++
  }
  latencies.push(performance.now() - startedAt)
  await Bun.sleep(intervalMs)
}

const sorted = [...latencies].sort((a, b) => a - b)
console.log(
  JSON.stringify({
    count: latencies.length,
    failures,
    maxMs: sorted.at(-1) ?? 0,
    p50Ms: sorted[Math.floor(sorted.length / 2)] ?? 0,
  }),
)
