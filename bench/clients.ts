// The clients against their floors (issue 19): the same warm run through the Python client
// (bench/clients.py, from .venv-client) and through the TypeScript client, each against the
// request sent by hand in its language (CBOR built directly, the answer only decoded). A no-op
// and a 1080p frame inverted; modes interleave per round, one local server for all.
import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { Client, NDArray } from '../clients/ts/index.ts'
import { decodeCbor, encodeCbor } from '../serializers/cbor.ts'
import type { BenchContext } from './context.ts'
import { rowOf, type Row } from './stats.ts'

const CLIENT_PYTHON = resolve(import.meta.dir, '../.venv-client/bin/python')
const NO_OP = 'def run(self):\n    return {}\n'
const INVERT = "def run(self, image):\n    return {'inverted': 255 - image}\n"
type Payload = 'no-op' | '1080p-frame'
const TITLES: Record<Payload, string> = {
  'no-op': 'a no-op',
  '1080p-frame': 'a 1080p frame inverted',
}

export async function clientRoundTrips(ctx: BenchContext): Promise<Row[]> {
  if (!existsSync(CLIENT_PYTHON)) throw new Error(`no ${CLIENT_PYTHON}: run npm run setup`)
  const origin = new URL((await ctx.localServer()).url).origin // its url is the run route's
  const runs = ctx.count(100, 300)
  const rows: Row[] = []

  ctx.progress(`clients: Python, ${ctx.rounds} rounds, client and by hand interleaved`)
  const python = Bun.spawn({
    cmd: [
      CLIENT_PYTHON,
      resolve(import.meta.dir, 'clients.py'),
      origin,
      String(ctx.rounds),
      String(runs),
    ],
    stdout: 'pipe',
    stderr: 'inherit',
  })
  const output = await new Response(python.stdout).text()
  if ((await python.exited) !== 0) throw new Error('bench/clients.py failed')
  const pythonRounds = output
    .trim()
    .split('\n')
    .map(
      (line) =>
        JSON.parse(line) as { mode: 'raw' | 'client'; payload: Payload; rounds: number[][] },
    )
  rows.push(...pairRows('python', pythonRounds))

  ctx.progress(`clients: TypeScript, ${ctx.rounds} rounds, client and by hand interleaved`)
  const client = new Client({ url: origin })
  const frame = NDArray.fromBytes(
    'uint8',
    [1080, 1920, 3],
    Uint8Array.from({ length: 1080 * 1920 * 3 }, (_, i) => (i * 7) & 0xff),
  )
  const byHand = async (code: string, inputs: Record<string, unknown>) => {
    const response = await fetch(`${origin}/v1/run`, {
      method: 'POST',
      headers: { 'content-type': 'application/cbor', accept: 'application/cbor' },
      body: encodeCbor({ code: { run_function_code: code }, inputs }) as Uint8Array<ArrayBuffer>,
    })
    if (response.status !== 200) throw new Error(`by hand: ${response.status}`)
    decodeCbor(new Uint8Array(await response.arrayBuffer()))
  }
  const calls: [mode: 'raw' | 'client', payload: Payload, call: () => Promise<unknown>][] = [
    ['raw', 'no-op', () => byHand(NO_OP, {})],
    ['client', 'no-op', () => client.run(NO_OP)],
    ['raw', '1080p-frame', () => byHand(INVERT, { image: frame })],
    ['client', '1080p-frame', () => client.run(INVERT, { image: frame })],
  ]
  for (const [, , call] of calls) for (let i = 0; i < 5; i++) await call()
  const tsRounds = calls.map(([mode, payload]) => ({ mode, payload, rounds: [] as number[][] }))
  for (let round = 0; round < ctx.rounds; round++) {
    for (const [i, [, payload, call]] of calls.entries()) {
      const times: number[] = []
      const count = payload === 'no-op' ? runs : Math.max(5, Math.floor(runs / 10))
      for (let n = 0; n < count; n++) {
        const startedAt = performance.now()
        await call()
        times.push(performance.now() - startedAt)
      }
      tsRounds[i]!.rounds.push(times)
    }
  }
  rows.push(...pairRows('ts', tsRounds))
  return rows
}

/** A row per mode and payload; each client row carries its ratio to the by-hand row. */
function pairRows(
  language: 'python' | 'ts',
  measured: { mode: 'raw' | 'client'; payload: Payload; rounds: number[][] }[],
): Row[] {
  const words = language === 'python' ? 'Python (httpx + cbor2)' : 'TypeScript (fetch + cbor-x)'
  const rows = measured.map(({ mode, payload, rounds }) =>
    rowOf(
      {
        scenario: 'clients',
        name:
          mode === 'client'
            ? `${language === 'python' ? 'Python' : 'TypeScript'} client: ${TITLES[payload]}, warm (kinds in and out)`
            : `${words} by hand: ${TITLES[payload]}, warm (the floor: CBOR built directly, the answer only decoded)`,
        backend: `${language}-${mode === 'client' ? 'client' : 'by-hand'}`,
        target: 'local',
        payload,
        concurrency: 1,
      },
      rounds,
    ),
  )
  for (const row of rows) {
    if (!row.backend.endsWith('-client')) continue
    const floor = rows.find((r) => r.payload === row.payload && r.backend.endsWith('-by-hand'))!
    row.extra.over_floor = Number((row.p50_ms / floor.p50_ms).toFixed(3))
  }
  return rows
}
