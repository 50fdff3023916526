// `bun run bench` (`--quick` for fewer samples): cold start against warm start, then
// serialization throughput in TS and in Python. Absolute times are for this machine;
// compare the ratios.
import { resolve } from 'node:path'
import { LARGE_BUFFER_MALLOC } from '../src/backends/local/worker.ts'
import { coldAndWarm } from './cold-warm.ts'
import { serializationThroughput, type ThroughputRow } from './serializers.ts'

const quick = process.argv.includes('--quick')
console.error(`blockgate bench${quick ? ' (quick)' : ''}: ${navigator.hardwareConcurrency} cores, Bun ${Bun.version}`)

const startup = await coldAndWarm(quick)
console.log('\nCold start against warm start')
console.table(startup.rows)
console.log(`cold/warm ratio (p50): ${startup.ratio.toFixed(0)}x`)

console.error('serialization: TS…')
const ts = await serializationThroughput()
console.error('serialization: Python…')
const python = Bun.spawnSync({
  cmd: [resolve(import.meta.dir, '../.venv/bin/python'), resolve(import.meta.dir, 'serializers.py'), ...(quick ? ['--quick'] : [])],
  stderr: 'inherit',
  env: { ...process.env, ...LARGE_BUFFER_MALLOC }, // as a worker runs
})
if (python.exitCode !== 0) throw new Error('bench/serializers.py failed')
const py: ThroughputRow[] = python.stdout.toString().trim().split('\n').map((line) => JSON.parse(line))

for (const [language, rows] of [['TS', ts], ['Python', py]] as const) {
  console.log(`\nSerialization, encode + decode (${language})`)
  console.table(rows)
  for (const payload of new Set(rows.map((row) => row.payload))) {
    const cbor = rows.find((row) => row.payload === payload && row.form === 'cbor')!
    const json = rows.find((row) => row.payload === payload && row.form === 'json-base64')!
    console.log(`${payload}: CBOR is ${(json.p50_ms / cbor.p50_ms).toFixed(1)}x faster than JSON/base64`)
  }
}
