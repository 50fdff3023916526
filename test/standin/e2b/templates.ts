// The templates the stand-in knows, and what a sandbox of each runs from its first moment
// (what a real template's snapshot would already hold).
import { CODE_INTERPRETER_TEMPLATE } from '../../../src/runtime-template.ts'

/**
 * The Python the kernel behind port 49999 runs on. 'stock': the copy of E2B's stock
 * code-interpreter-v1 environment (.venv-code-interpreter, built by template/setup.sh from
 * template/code-interpreter/stock-requirements.txt: numpy, opencv-python, … but no
 * supervision, shapely or cbor2), with nothing of blockgate's on its path. 'runtime':
 * blockgate's own .venv, the runtime importable, as in a sandbox of blockgate's template.
 */
export type KernelEnvironment = 'stock' | 'runtime'

export interface TemplateKind {
  /** The Python kernel behind port 49999 starts with the sandbox (else on first use). */
  kernelAtStart: boolean
  kernelEnvironment: KernelEnvironment
  /** blockgate's runtime server listens behind port 8000. */
  runtimeServer: boolean
}

export const RUNTIME_TEMPLATE_PREFIX = 'blockgate-runtime-'

/** The template's kind, or null for a template E2B would not find. */
export function templateKind(templateId: string): TemplateKind | null {
  if (templateId === CODE_INTERPRETER_TEMPLATE)
    return { kernelAtStart: true, kernelEnvironment: 'stock', runtimeServer: false }
  // E2B's base template serves no code interpreter; the stand-in's tests of the kernel
  // itself use it, on the repo's .venv.
  if (templateId === 'base')
    return { kernelAtStart: true, kernelEnvironment: 'runtime', runtimeServer: false }
  if (templateId.startsWith(RUNTIME_TEMPLATE_PREFIX))
    return { kernelAtStart: false, kernelEnvironment: 'runtime', runtimeServer: true }
  return null
}
