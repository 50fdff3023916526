// A block's code, as Roboflow's `PythonCode` names its fields, and its identity.
import { createHash } from 'node:crypto'

export interface BlockCode {
  run_function_code: string
  run_function_name: string
  init_function_code: string | null
  init_function_name: string
  imports: string[]
}

export interface Block {
  /** sha256 over the code fields: runtimes cache loaded blocks under it. */
  hash: string
  code: BlockCode
}

export function blockOf(code: BlockCode): Block {
  // A JSON array of the fields in fixed order: unambiguous, and easy to recompute in Python.
  const canonical = JSON.stringify([
    code.run_function_code,
    code.run_function_name,
    code.init_function_code,
    code.init_function_name,
    code.imports,
  ])
  return { hash: createHash('sha256').update(canonical).digest('hex'), code }
}
