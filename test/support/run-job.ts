// A RunJob as the router would build it, for tests that drive a pool directly, and the
// outputs of its outcome decoded (the runtime sends a finished CBOR or JSON document).
import { OutputsDocument, type RunJob, type RunOutcome } from '../../src/backends/backend.ts'
import { blockOf } from '../../src/run/block.ts'
import { decodeCbor } from '../../serializers/cbor.ts'

export interface JobOptions {
  inputs?: Record<string, unknown>
  workspace?: string
  timeoutMs?: number
  outputFormat?: RunJob['outputFormat']
}

export function runJob(run_function_code: string, options: JobOptions = {}): RunJob {
  const { inputs = {}, workspace = 'acme', timeoutMs = 10_000, outputFormat = 'cbor' } = options
  return {
    block: blockOf({
      run_function_code,
      run_function_name: 'run',
      init_function_code: null,
      init_function_name: 'init',
      imports: [],
    }),
    inputs,
    workspace,
    timeoutMs,
    outputFormat,
    context: {
      step_name: null,
      step_selector: null,
      block_type: 'custom_python_block',
      workflow_execution_id: 'test',
    },
  }
}

/** The outputs a run returned, decoded from the runtime's document (plain values as they came). */
export function outputsOf(outcome: Pick<RunOutcome, 'outputs'>): any {
  const document = outcome.outputs
  if (!(document instanceof OutputsDocument)) return document
  const bytes = Buffer.concat(document.pieces)
  return document.format === 'cbor' ? decodeCbor(bytes) : JSON.parse(bytes.toString())
}
