// Builds blockgate's E2B sandbox template with E2B's Template SDK (the build runs remotely):
//
//   bun run template/build.ts [--alias NAME] [--dry-run]
//
// The image is template/e2b.Dockerfile, built from the repository root; the start command,
// ready check and machine size come from template/e2b.toml, so they are written down once.
// Needs E2B_API_KEY (not for --dry-run, which prints the steps E2B would run). Prints the
// template id on success.
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { Template, defaultBuildLogger, type TemplateClass } from 'e2b'
import { RUNTIME_PORT, defaultTemplateId } from '../src/runtime-template.ts'

const REPO_ROOT = resolve(import.meta.dir, '..')
const DOCKERFILE = resolve(import.meta.dir, 'e2b.Dockerfile')
const CONFIG = resolve(import.meta.dir, 'e2b.toml')

/** The fields of template/e2b.toml this build uses. */
export interface TemplateConfig {
  templateName: string
  startCmd: string
  readyCmd: string
  cpuCount: number
  memoryMB: number
}

function field<T>(raw: Record<string, unknown>, name: string, type: 'string' | 'number'): T {
  const value = raw[name]
  if (typeof value !== type)
    throw new Error(`${CONFIG}: ${name} must be a ${type}, got ${JSON.stringify(value)}`)
  return value as T
}

/** Reads e2b.toml and checks it against what the proxy expects of a sandbox. */
export async function readTemplateConfig(path = CONFIG): Promise<TemplateConfig> {
  const raw = Bun.TOML.parse(await Bun.file(path).text()) as Record<string, unknown>
  const config: TemplateConfig = {
    templateName: field(raw, 'template_name', 'string'),
    startCmd: field(raw, 'start_cmd', 'string'),
    readyCmd: field(raw, 'ready_cmd', 'string'),
    cpuCount: field(raw, 'cpu_count', 'number'),
    memoryMB: field(raw, 'memory_mb', 'number'),
  }
  // The proxy reaches the server on RUNTIME_PORT and names the template by the runtime's
  // version: a config that drifted from either would build a template nobody can use.
  if (!config.startCmd.includes(`--port ${RUNTIME_PORT}`)) {
    throw new Error(`${path}: start_cmd must listen on --port ${RUNTIME_PORT} (RUNTIME_PORT)`)
  }
  if (!config.readyCmd.includes(`:${RUNTIME_PORT}/health`)) {
    throw new Error(`${path}: ready_cmd must poll :${RUNTIME_PORT}/health`)
  }
  if (config.templateName !== defaultTemplateId()) {
    throw new Error(
      `${path}: template_name is ${config.templateName}, the runtime's version says ${defaultTemplateId()}`,
    )
  }
  return config
}

export function defineTemplate(config: TemplateConfig): TemplateClass {
  return Template({
    // COPY paths in the Dockerfile are relative to the repository root.
    fileContextPath: REPO_ROOT,
    fileIgnorePatterns: ['**/__pycache__/**', '**/*.pyc', '**/.pytest_cache/**'],
  })
    .fromDockerfile(DOCKERFILE)
    .setStartCmd(config.startCmd, config.readyCmd)
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      alias: { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
    },
  })
  const config = await readTemplateConfig()
  const template = defineTemplate(config)
  if (values['dry-run']) {
    console.log(Template.toDockerfile(template))
    return 0
  }
  const apiKey = process.env.E2B_API_KEY
  if (!apiKey) {
    console.error(
      'template/build.ts: E2B_API_KEY is not set. Create a key at https://e2b.dev/dashboard and run: E2B_API_KEY=e2b_... bun run template/build.ts',
    )
    return 2
  }
  const name = values.alias ?? defaultTemplateId()
  const info = await Template.build(template, name, {
    apiKey,
    cpuCount: config.cpuCount,
    memoryMB: config.memoryMB,
    onBuildLogs: defaultBuildLogger(),
  })
  console.log(info.templateId)
  return 0
}

if (import.meta.main) process.exit(await main())
