// The templates the stand-in knows, and what a sandbox of each runs from its first moment
// (what a real template's snapshot would already hold).
import { CODE_INTERPRETER_TEMPLATE } from '../../../src/runtime-template.ts'

export interface TemplateKind {
  /** The Python kernel behind port 49999 starts with the sandbox (else on first use). */
  kernelAtStart: boolean
  /** blockgate's runtime server listens behind port 8000. */
  runtimeServer: boolean
}

export const RUNTIME_TEMPLATE_PREFIX = 'blockgate-runtime-'

/** The template's kind, or null for a template E2B would not find. */
export function templateKind(templateId: string): TemplateKind | null {
  if (templateId === CODE_INTERPRETER_TEMPLATE || templateId === 'base')
    return { kernelAtStart: true, runtimeServer: false }
  if (templateId.startsWith(RUNTIME_TEMPLATE_PREFIX))
    return { kernelAtStart: false, runtimeServer: true }
  return null
}
