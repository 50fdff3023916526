// The payloads every scenario uses, built once per run by bench/payloads.py so that TS and
// Python, every backend and every baseline, measure the same bytes.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { decodeCbor, encodeCbor } from '../serializers/cbor.ts'
import { decodeKinds } from '../serializers/index.ts'
import type { RunJob } from '../src/backends/backend.ts'
import { blockOf } from '../src/run/block.ts'

export const PYTHON = resolve(import.meta.dir, '../.venv/bin/python')

/** What a block runs on, on every backend, and the block that sends it back. */
export interface BlockPayload {
  id: string
  title: string
  code: string
  /** The inputs as CBOR kinds (what blockgate's clients send). */
  cbor: Uint8Array
  /** The same inputs in the JSON/base64 form (what the seed sent). */
  json: string
}

export interface SerializationPayload {
  name: string
  /** Bytes of data it carries (what MB/s is counted against). */
  bytes: number
  cbor: Uint8Array
}

export interface Payloads {
  blocks: BlockPayload[]
  serialization: SerializationPayload[]
  /** Where the files are, for the Python scripts. */
  dir: string
  remove(): void
}

export function buildPayloads(): Payloads {
  const dir = mkdtempSync(join(tmpdir(), 'blockgate-bench-'))
  const built = Bun.spawnSync({
    cmd: [PYTHON, resolve(import.meta.dir, 'payloads.py'), dir],
    stderr: 'inherit',
  })
  if (built.exitCode !== 0) throw new Error('bench/payloads.py failed')
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8'))
  const bytes = (file: string) => new Uint8Array(readFileSync(join(dir, file)))
  return {
    dir,
    blocks: index.blocks.map(
      (block: { id: string; title: string; code: string; file: string }) => ({
        id: block.id,
        title: block.title,
        code: block.code,
        cbor: bytes(`${block.file}.cbor`),
        json: readFileSync(join(dir, `${block.file}.json`), 'utf8'),
      }),
    ),
    serialization: index.serialization.map(
      (entry: { name: string; bytes: number; file: string }) => ({
        name: entry.name,
        bytes: entry.bytes,
        cbor: bytes(`${entry.file}.cbor`),
      }),
    ),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  }
}

/** The inputs as the proxy holds them after decoding a request. */
function inputsOf(payload: BlockPayload): Record<string, unknown> {
  return decodeKinds(decodeCbor(payload.cbor), 'inputs') as Record<string, unknown>
}

/** A `POST /v1/run` body (CBOR) running the payload's block for `workspace`. */
export function runBody(payload: BlockPayload, workspace: string): Uint8Array {
  return encodeCbor({
    code: { run_function_code: payload.code },
    inputs: inputsOf(payload),
    workspace,
  })
}

/** The same run as a backend receives it. */
export function runJob(payload: BlockPayload, workspace: string): RunJob {
  return {
    block: blockOf({
      run_function_code: payload.code,
      run_function_name: 'run',
      init_function_code: null,
      init_function_name: 'init',
      imports: [],
    }),
    inputs: inputsOf(payload),
    workspace,
    timeoutMs: 60_000,
    outputFormat: 'cbor',
    context: {
      step_name: 'bench',
      step_selector: null,
      block_type: 'custom_python_block',
      workflow_execution_id: 'bench',
    },
  }
}
