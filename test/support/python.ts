// Runs the Python halves of the serializers from TS tests.
import { resolve } from 'node:path'
import { PROJECT_ROOT } from '../../src/config.ts'

export const PYTHON = resolve(PROJECT_ROOT, '.venv/bin/python')

/** Sends CBOR through Python's registry (decode into real objects, encode back). */
export function pythonRoundTrip(cbor: Uint8Array): Uint8Array {
  const result = Bun.spawnSync({
    cmd: [PYTHON, resolve(import.meta.dir, 'py-roundtrip.py')],
    stdin: cbor,
    stderr: 'pipe',
  })
  if (result.exitCode !== 0) throw new Error(result.stderr.toString())
  return new Uint8Array(result.stdout)
}
