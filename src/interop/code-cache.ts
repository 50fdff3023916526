// Block code the webexec endpoint has seen, per (workspace, code hash). Inference sends a
// block's code once, then only its hash; a hash found here runs without the code, a hash
// not found is answered UnknownCodeHash and Inference resends the code.
import { createHash } from 'node:crypto'

export interface CachedCode {
  code: string
  imports: string[]
}

/** Inference's own hash of a block's code: md5 over the code, a newline, the import lines. */
export function inferenceCodeHash(code: string, imports: readonly string[]): string {
  return createHash('md5').update(`${code}\n${imports.join('\n')}`, 'utf8').digest('hex')
}

/** Least recently used entries go first once the code held passes `maxBytes`. */
export class CodeCache {
  readonly #entries = new Map<string, CachedCode & { bytes: number }>()
  #bytes = 0

  constructor(readonly maxBytes: number) {}

  remember(workspace: string, hash: string, code: CachedCode): void {
    const key = keyOf(workspace, hash)
    this.#drop(key)
    const bytes = Buffer.byteLength(code.code) + code.imports.reduce((sum, line) => sum + Buffer.byteLength(line), 0)
    if (bytes > this.maxBytes) return
    this.#entries.set(key, { ...code, bytes })
    this.#bytes += bytes
    for (const [oldest] of this.#entries) {
      if (this.#bytes <= this.maxBytes) break
      this.#drop(oldest)
    }
  }

  recall(workspace: string, hash: string): CachedCode | undefined {
    const key = keyOf(workspace, hash)
    const entry = this.#entries.get(key)
    if (!entry) return undefined
    // Map order is insertion order: re-inserting marks it most recently used.
    this.#entries.delete(key)
    this.#entries.set(key, entry)
    return { code: entry.code, imports: entry.imports }
  }

  #drop(key: string): void {
    const entry = this.#entries.get(key)
    if (!entry) return
    this.#entries.delete(key)
    this.#bytes -= entry.bytes
  }
}

// A workspace's code is found only under that workspace: a hash alone never reaches another tenant's block.
const keyOf = (workspace: string, hash: string) => `${workspace}\u0000${hash}`
