// Load from a separate process (bench/http-client.ts), so the client never shares the
// server's event loop: one call is one round of `requests` at `concurrency`.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

export interface LoadRound {
  latencies_ms: number[]
  /** Per request: the server's own time minus the block's code (blockgate servers only). */
  overhead_ms: number[]
  seconds: number
}

export async function runLoad(
  url: string,
  body: Uint8Array,
  requests: number,
  concurrency: number,
  contentType = 'application/cbor',
  /** API keys, sent as `Authorization: Bearer` in turn, one per request. */
  keys: string[] = [],
): Promise<LoadRound> {
  const dir = mkdtempSync(join(tmpdir(), 'blockgate-load-'))
  try {
    const file = join(dir, 'body')
    writeFileSync(file, body)
    // Not spawnSync: the server answering it lives on this event loop.
    const client = Bun.spawn({
      cmd: [
        process.execPath,
        resolve(import.meta.dir, 'http-client.ts'),
        url,
        file,
        contentType,
        String(requests),
        String(concurrency),
        ...(keys.length > 0 ? [keys.join(',')] : []),
      ],
      stdout: 'pipe',
      stderr: 'inherit',
    })
    const output = await new Response(client.stdout).text()
    if ((await client.exited) !== 0) throw new Error(`the load client failed against ${url}`)
    return JSON.parse(output)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** `rounds` rounds of load; the latencies of each, and each round's wall time. */
export async function loadRounds(
  url: string,
  body: Uint8Array,
  rounds: number,
  requests: number,
  concurrency: number,
  contentType?: string,
) {
  const results: LoadRound[] = []
  for (let i = 0; i < rounds; i++)
    results.push(await runLoad(url, body, requests, concurrency, contentType))
  return {
    latencies: results.map((r) => r.latencies_ms),
    seconds: results.map((r) => r.seconds),
    overheads: results.flatMap((r) => r.overhead_ms),
  }
}
