// What blockgate agrees on with its Python runtime (template/runtime/) and the E2B template
// built from it (template/e2b.*, template/build.ts): the runtime's version, the template's
// name, which carries it, and the port the runtime's server listens on in a sandbox. A leaf
// module: config reads it without reaching into a backend.
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'

const RUNTIME_PACKAGE = resolve(import.meta.dir, '../template/runtime/__init__.py')

let version: string | null = null

/** The Python runtime's `__version__`: a sandbox built from an older template would speak an older protocol. */
export function runtimeVersion(): string {
  // Read once: every sandbox create and every config load asks for it.
  if (version === null) {
    const match = readFileSync(RUNTIME_PACKAGE, 'utf8').match(/^__version__ = "([^"]+)"/m)
    if (!match?.[1]) throw new Error(`${RUNTIME_PACKAGE} has no __version__ line`)
    version = match[1]
  }
  return version
}

/** E2B template names allow lowercase letters, digits and dashes: `blockgate-runtime-v0-2-0`. */
export function defaultTemplateId(version = runtimeVersion()): string {
  return `blockgate-runtime-v${version.replace(/[^0-9a-z]+/gi, '-').toLowerCase()}`
}

/** Where `python -m runtime.server` listens inside a sandbox built from the template. */
export const RUNTIME_PORT = 8000

/** The template the code-interpreter SDK creates by default (no template build needed). */
export const CODE_INTERPRETER_TEMPLATE = 'code-interpreter-v1'
