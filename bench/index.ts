// `bun run bench` (`--quick` for fewer samples): cold start against warm start, then
// serialization throughput in TS and in Python on the same payloads. Absolute times are
// for this machine; compare the ratios.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { LARGE_BUFFER_MALLOC } from '../src/backends/local/worker.ts'
import { coldAndWarm } from './cold-warm.ts'
import { e2bColdAndWarm } from './e2b.ts'
import { httpScenarios } from './http.ts'
import { serializationThroughput, type ThroughputRow } from './serializers.ts'

const quick = process.argv.includes('--quick')
console.error(`blockgate bench${quick ? ' (quick)' : ''}: ${navigator.hardwareConcurrency} cores, Bun ${Bun.version}`)

const startup = await coldAndWarm(quick)
console.log('\nCold start against warm start')
console.table(startup.rows)
console.log(`zygote fork vs fresh interpreter (p50): ${startup.forkVsFresh.toFixed(0)}x faster; cold (fork) vs warm run: ${startup.coldVsWarm.toFixed(0)}x`)

const e2b = await e2bColdAndWarm(quick)
console.log(`\nE2B backend, cold against warm (${e2b.cloud ? 'offline stand-in and E2B cloud' : 'offline stand-in only: set E2B_API_KEY to add E2B itself'})`)
console.table(e2b.rows)
console.table(e2b.summary)

const http = await httpScenarios(quick)
console.log('\nOver HTTP (server here, load from a separate process; overhead = server time minus the block\'s own code)')
console.table(http)

const python = resolve(import.meta.dir, '../.venv/bin/python')
const script = resolve(import.meta.dir, 'serializers.py')
const pythonEnv = { ...process.env, ...LARGE_BUFFER_MALLOC } // as a worker runs
function runPython(args: string[]): string {
  const result = Bun.spawnSync({ cmd: [python, script, ...args], stderr: 'inherit', env: pythonEnv })
  if (result.exitCode !== 0) throw new Error(`bench/serializers.py ${args.join(' ')} failed`)
  return result.stdout.toString()
}

const payloadDir = mkdtempSync(join(tmpdir(), 'blockgate-bench-'))
try {
  console.error('serialization: building payloads…')
  runPython(['--emit', payloadDir])
  console.error('serialization: TS…')
  const ts = await serializationThroughput(payloadDir)
  console.error('serialization: Python…')
  const py: ThroughputRow[] = runPython(quick ? ['--quick'] : []).trim().split('\n').map((line) => JSON.parse(line))

  for (const [language, rows] of [['TS', ts], ['Python', py]] as const) {
    console.log(`\nSerialization, encode + decode (${language})`)
    console.table(rows)
    for (const payload of new Set(rows.map((row) => row.payload))) {
      const cbor = rows.find((row) => row.payload === payload && row.form === 'cbor')!
      const json = rows.find((row) => row.payload === payload && row.form.startsWith('json'))!
      console.log(`${payload}: CBOR ${(json.p50_ms / cbor.p50_ms).toFixed(1)}x faster than ${json.form}`)
    }
  }
} finally {
  rmSync(payloadDir, { recursive: true, force: true })
}
