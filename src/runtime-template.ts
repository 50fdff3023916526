// What blockgate agrees on with its Python runtime (template/runtime/) and the E2B template
// built from it (template/e2b.*, template/build.ts): the runtime's version, the template's
// name, which carries it, and the values both sides read from template/runtime/protocol.json
// (the frame's content type, the port the runtime's server listens on in a sandbox, the
// runtime's defaults). A leaf module: config reads it without reaching into a backend.
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { z } from 'zod'

const RUNTIME_PACKAGE = resolve(import.meta.dir, '../template/runtime/__init__.py')
const SHARED_VALUES = resolve(import.meta.dir, '../template/runtime/protocol.json')

const count = z.number().int().positive()
const shared = z
  .object({
    frame_content_type: z.string().min(1),
    runtime_port: count.max(65535),
    default_max_frame_bytes: count,
    zygote_control_frame_bytes: count,
    default_block_cache_size: count,
    max_block_cache_size: count,
    default_max_capture_bytes: count,
  })
  .parse(JSON.parse(readFileSync(SHARED_VALUES, 'utf8')))

/** The Content-Type of a frame over HTTP (POST /frame of the runtime's server). */
export const FRAME_CONTENT_TYPE = shared.frame_content_type

/** Where `python -m runtime.server` listens inside a sandbox built from the template. */
export const RUNTIME_PORT = shared.runtime_port

/** The limit on a frame between the proxy and the zygote (spawn, kill and their events). */
export const ZYGOTE_CONTROL_FRAME_BYTES = shared.zygote_control_frame_bytes

/**
 * What a runtime uses when it is not told otherwise. The proxy tells its local workers its
 * own settings, and an E2B sandbox its block cache size; a template's server starts with these.
 */
export const RUNTIME_DEFAULTS = {
  /** The proxy's own frame limit at the default body limit (src/server.ts, frameLimitFor). */
  maxFrameBytes: shared.default_max_frame_bytes,
  blockCacheSize: shared.default_block_cache_size,
  /** The most blocks a runtime keeps loaded, whatever it is told. */
  maxBlockCacheSize: shared.max_block_cache_size,
  maxCaptureBytes: shared.default_max_capture_bytes,
} as const

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

/** The template the code-interpreter SDK creates by default (no template build needed). */
export const CODE_INTERPRETER_TEMPLATE = 'code-interpreter-v1'
