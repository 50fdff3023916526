// Code-interpreter mode, for users who cannot build a template: E2B's stock code-interpreter
// sandbox, the runtime uploaded into it once, each request a frame file written with
// `files.write`, handled by `runtime.interpreter.run_frame_file` through `runCode`, and the
// reply frame read back with `files.read`. Data travels as files, never through `envs`
// (which breaks on quotes) nor as code text. Three data-plane calls per request: the
// baseline the template mode is measured against.
//
// The stock template lacks some of what a block imports (supervision, shapely, cbor2), and
// its sandboxes have no internet (BLOCKGATE_E2B_ALLOW_INTERNET=0): prepare() uploads the
// wheelhouse setup downloaded (template/code-interpreter/wheelhouse.txt: blockgate's pins of
// those, and the dependencies the template lacks) and pip installs them from it alone.
// Everything else a block imports (numpy, opencv-python, requests) is the template's own.
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { basename, resolve } from 'node:path'
import type { Sandbox } from '@e2b/code-interpreter'
import { Glob } from 'bun'
import { PROJECT_ROOT } from '../../config.ts'
import { log } from '../../log.ts'
import { encodeFrame } from '../framing.ts'
import type { RuntimeRequest } from '../runtime-protocol.ts'
import type { BlockRuntime, RuntimeReply } from '../runtime-session.ts'
import { EdgeRetry, RuntimeTimeout, SandboxGone } from './edge.ts'
import { onlyFrame } from './runtime-http.ts'

/** Where the runtime lives inside the sandbox (the home of E2B's default user). */
const SANDBOX_ROOT = '/home/user/blockgate'
const SANDBOX_REQUIREMENTS = `${SANDBOX_ROOT}/template/requirements.txt`
const SANDBOX_WHEELHOUSE = `${SANDBOX_ROOT}/wheelhouse`
/** pip's `--prefix` for what the wheelhouse adds: the home is writable, whoever runs the kernel. */
const SANDBOX_PREFIX = `${SANDBOX_ROOT}/site`

/** The lock of the wheelhouse, and where template/setup.sh downloads it. */
const WHEELHOUSE_LOCK = 'template/code-interpreter/wheelhouse.txt'
export const WHEELHOUSE_DIR = '.wheelhouse/code-interpreter'
/** What E2B's stock code-interpreter-v1 template installs (github.com/e2b-dev/code-interpreter). */
const STOCK_REQUIREMENTS = 'template/code-interpreter/stock-requirements.txt'
/** The stock template's Python (its image is python:3.13, x86_64): the wheelhouse's target. */
export const STOCK_PYTHON = '3.13'
const STOCK_MACHINE = 'x86_64'

/** The line report_environment() prints before its JSON (template/runtime/interpreter.py). */
const ENVIRONMENT_MARKER = 'blockgate-environment '

/**
 * The distributions that provide what a block imports (runtime.prelude), by the module a
 * block imports: REQUIRED_MODULES of template/runtime/interpreter.py, plus the other names
 * opencv ships under (the stock template has opencv-python, blockgate pins the headless one).
 */
const BLOCK_MODULES: Record<string, string[]> = {
  numpy: ['numpy'],
  cv2: [
    'opencv-python-headless',
    'opencv-python',
    'opencv-contrib-python-headless',
    'opencv-contrib-python',
  ],
  supervision: ['supervision'],
  shapely: ['shapely'],
  cbor2: ['cbor2'],
  msgpack: ['msgpack'],
  requests: ['requests'],
}

/** The files the runtime needs (its Python and protocol.json), relative to the project root: no tests, no vectors. */
export function runtimeFiles(root = PROJECT_ROOT): string[] {
  const patterns = [
    'template/runtime/*.py',
    'template/runtime/*.json',
    'serializers/*.py',
    'serializers/*/*.py',
  ]
  const files = patterns.flatMap((pattern) => [...new Glob(pattern).scanSync({ cwd: root })])
  return [
    ...files.filter((file) => !/(^|\/)(test_[^/]*|conftest|make_vectors)\.py$/.test(file)),
    'template/requirements.txt',
  ].sort()
}

/**
 * The wheels prepare() uploads when a sandbox lacks some of what a block imports: the files
 * template/setup.sh downloaded for the current wheelhouse.txt (absolute paths).
 */
export function wheelhouseFiles(root = PROJECT_ROOT): string[] {
  const dir = resolve(root, WHEELHOUSE_DIR)
  const lock = createHash('sha256')
    .update(readFileSync(resolve(root, WHEELHOUSE_LOCK)))
    .digest('hex')
  const stamp = resolve(dir, '.blockgate-lock')
  if (!existsSync(stamp) || readFileSync(stamp, 'utf8').trim() !== lock)
    throw new Error(
      `code-interpreter mode needs the wheelhouse of ${WHEELHOUSE_LOCK} in ${dir}, and it is ${existsSync(stamp) ? 'out of date' : 'missing'}: run \`npm run setup\``,
    )
  return readdirSync(dir)
    .filter((name) => name.endsWith('.whl'))
    .sort()
    .map((name) => resolve(dir, name))
}

/** What a block sees in a sandbox: its Python and the versions of the packages it imports. */
export interface BlockPackages {
  mode: 'template' | 'code-interpreter'
  /**
   * 'sandbox': as the last sandbox this process prepared reported them (code-interpreter
   * mode, after its first create). 'pinned': read from the files the environment is built
   * from (template/requirements.txt and the template's Dockerfile in template mode; the stock
   * template's requirements and the wheelhouse in code-interpreter mode).
   */
  source: 'sandbox' | 'pinned'
  /** The Python version a block runs on (major.minor when only that is pinned). */
  python: string
  /** Distribution → version, for each package of a block's standard imports. */
  packages: Record<string, string>
  /** Those of `packages` that code-interpreter mode installs from its wheelhouse (blockgate's pins); the rest are the template's own. */
  installed: string[]
}

let lastPrepared: BlockPackages | null = null

/**
 * Which versions a block sees in `mode`: in template mode, the runtime's pins (the template
 * is built from them); in code-interpreter mode, the stock template's own numpy, opencv and
 * requests, with supervision, shapely and cbor2 at blockgate's pins, as the last sandbox
 * prepared by this process reported them (before one is, as pinned). For /readyz.
 */
export function blockPackages(mode: 'template' | 'code-interpreter'): BlockPackages {
  if (mode === 'code-interpreter' && lastPrepared) return lastPrepared
  // The pinned files do not change while the server runs: read once, not on every status.
  const known = pinnedPackages.get(mode)
  if (known) return known
  const pinned = readPinnedPackages(mode)
  pinnedPackages.set(mode, pinned)
  return pinned
}

const pinnedPackages = new Map<BlockPackages['mode'], BlockPackages>()

function readPinnedPackages(mode: BlockPackages['mode']): BlockPackages {
  const root = PROJECT_ROOT
  const own = pinsOf(readFileSync(resolve(root, 'template/requirements.txt'), 'utf8'))
  if (mode === 'template') {
    const dockerfile = readFileSync(resolve(root, 'template/e2b.Dockerfile'), 'utf8')
    return {
      mode,
      source: 'pinned',
      python: dockerfile.match(/^FROM python:(\d+\.\d+)/m)?.[1] ?? 'unknown',
      packages: pick(own),
      installed: [],
    }
  }
  const stock = pick(pinsOf(readFileSync(resolve(root, STOCK_REQUIREMENTS), 'utf8')))
  const wheelhouse = pinsOf(readFileSync(resolve(root, WHEELHOUSE_LOCK), 'utf8'))
  const installed = Object.keys(pick(own)).filter((name) => name in wheelhouse)
  const packages = { ...stock }
  for (const name of installed) packages[name] = wheelhouse[name] as string
  return { mode, source: 'pinned', python: STOCK_PYTHON, packages: sorted(packages), installed }
}

/** `name==version` lines (comments, hashes and other options left out) → name → version. */
function pinsOf(text: string): Record<string, string> {
  const pins: Record<string, string> = {}
  for (const raw of text.split('\n')) {
    const match = raw
      .split('#', 1)[0]
      ?.trim()
      .match(/^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)/)
    if (match?.[1] && match[2]) pins[match[1].toLowerCase().replace(/[._]+/g, '-')] = match[2]
  }
  return pins
}

/** The first distribution of each block module that `pins` has. */
function pick(pins: Record<string, string>): Record<string, string> {
  const packages: Record<string, string> = {}
  for (const names of Object.values(BLOCK_MODULES)) {
    const name = names.find((candidate) => candidate in pins)
    if (name) packages[name] = pins[name] as string
  }
  return sorted(packages)
}

function sorted(record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => a.localeCompare(b)))
}

/** What report_environment() prints (template/runtime/interpreter.py, environment()). */
interface SandboxEnvironment {
  python: string
  implementation: string
  machine: string
  packages: Record<string, string>
  missing: string[]
}

/** How long each step of the last prepare() took, and how much it uploaded. */
export interface PrepareTimings {
  uploadRuntimeMs: number
  checkMs: number
  /** Zero when the sandbox had everything (no wheel uploaded, nothing installed). */
  uploadWheelsMs: number
  installMs: number
  wheelBytes: number
  totalMs: number
}

export class InterpreterRuntime implements BlockRuntime {
  readonly loaded = new Set<string>()
  private uploaded = false
  /** What a block sees in this sandbox, once prepared. */
  packages: BlockPackages | null = null
  timings: PrepareTimings | null = null

  constructor(
    private readonly sandbox: Sandbox,
    private readonly maxFrameBytes: number,
  ) {}

  /**
   * Uploads the runtime and imports it; when the sandbox lacks some of what a block imports,
   * uploads the wheelhouse and installs that from it, with no index (the sandbox has no internet).
   */
  async prepare(timeoutMs: number): Promise<void> {
    const started = performance.now()
    const deadline = started + timeoutMs
    const left = () => Math.max(1, deadline - performance.now())
    const entries = runtimeFiles().map((file) => ({
      path: `${SANDBOX_ROOT}/${file}`,
      data: new Blob([readFileSync(resolve(PROJECT_ROOT, file))]),
    }))
    await this.call(deadline, () => this.sandbox.files.write(entries, { requestTimeoutMs: left() }))
    const uploadedRuntime = performance.now()
    const requirements = JSON.stringify(SANDBOX_REQUIREMENTS)
    let environment = await this.environment(
      [
        'import sys',
        `sys.path[:0] = [${JSON.stringify(`${SANDBOX_ROOT}/template`)}, ${JSON.stringify(SANDBOX_ROOT)}]`,
        'from runtime.interpreter import ensure_requirements, report_environment, run_frame_file',
        `report_environment(${requirements})`,
      ].join('\n'),
      left(),
    )
    const checked = performance.now()
    const missing = environment.missing
    let wheelBytes = 0
    let uploadedWheels = checked
    if (missing.length > 0) {
      const [major, minor] = environment.python.split('.')
      if (`${major}.${minor}` !== STOCK_PYTHON || environment.machine !== STOCK_MACHINE)
        throw new Error(
          `the sandbox lacks ${missing.join(', ')} and runs Python ${environment.python} on ${environment.machine}; the wheelhouse holds wheels for Python ${STOCK_PYTHON} on ${STOCK_MACHINE} (E2B's code-interpreter-v1)`,
        )
      const wheels = wheelhouseFiles().map((path) => ({
        path: `${SANDBOX_WHEELHOUSE}/${basename(path)}`,
        data: Bun.file(path),
      }))
      wheelBytes = wheels.reduce((sum, wheel) => sum + wheel.data.size, 0)
      await this.call(deadline, () =>
        this.sandbox.files.write(wheels, { requestTimeoutMs: left() }),
      )
      uploadedWheels = performance.now()
      environment = await this.environment(
        [
          `ensure_requirements(${requirements}, ${JSON.stringify(SANDBOX_WHEELHOUSE)}, ${JSON.stringify(SANDBOX_PREFIX)})`,
          `report_environment(${requirements})`,
        ].join('\n'),
        left(),
      )
      if (environment.missing.length > 0)
        throw new Error(
          `the sandbox still lacks ${environment.missing.join(', ')} after installing the wheelhouse`,
        )
    }
    const done = performance.now()
    this.packages = {
      mode: 'code-interpreter',
      source: 'sandbox',
      python: environment.python,
      packages: sorted(environment.packages),
      installed: missing.map((line) => line.split(/[=<>~!;[ ]/, 1)[0]?.toLowerCase() ?? line),
    }
    lastPrepared = this.packages
    this.timings = {
      uploadRuntimeMs: uploadedRuntime - started,
      checkMs: checked - uploadedRuntime,
      uploadWheelsMs: uploadedWheels - checked,
      installMs: missing.length > 0 ? done - uploadedWheels : 0,
      wheelBytes,
      totalMs: done - started,
    }
    log.info('e2b code-interpreter sandbox prepared', {
      sandbox: this.sandbox.sandboxId,
      installed: this.packages.installed,
      ...this.timings,
    })
    this.uploaded = true
  }

  async request(message: RuntimeRequest, timeoutMs: number): Promise<RuntimeReply> {
    if (!this.uploaded) throw new Error('the runtime was not uploaded to this sandbox')
    const deadline = performance.now() + timeoutMs
    const left = () => Math.max(1, deadline - performance.now())
    // One request at a time per sandbox: the same two files serve every request, so nothing piles up.
    const name = `${SANDBOX_ROOT}/io/frame`
    await this.call(deadline, () =>
      this.sandbox.files.write(`${name}.in`, new Blob(encodeFrame(message)), {
        requestTimeoutMs: left(),
      }),
    )
    await this.execute(
      `run_frame_file(${JSON.stringify(`${name}.in`)}, ${JSON.stringify(`${name}.out`)}, ${this.maxFrameBytes})`,
      left(),
    )
    const reply = await this.call(deadline, () =>
      this.sandbox.files.read(`${name}.out`, { format: 'bytes', requestTimeoutMs: left() }),
    )
    return onlyFrame(reply, this.maxFrameBytes)
  }

  /** Runs `code`, which ends with report_environment(), and reads the line it printed. */
  private async environment(code: string, timeoutMs: number): Promise<SandboxEnvironment> {
    const stdout = (await this.execute(code, timeoutMs)).join('')
    const line = stdout.split('\n').find((text) => text.startsWith(ENVIRONMENT_MARKER))
    if (!line)
      throw new Error(`the code interpreter printed no environment report: ${stdout.slice(0, 500)}`)
    return JSON.parse(line.slice(ENVIRONMENT_MARKER.length)) as SandboxEnvironment
  }

  /** Runs `code` in the kernel; returns what it printed on stdout. */
  private async execute(code: string, timeoutMs: number): Promise<string[]> {
    const execution = await this.call(performance.now() + timeoutMs, () =>
      this.sandbox.runCode(code, { timeoutMs, requestTimeoutMs: timeoutMs }),
    )
    // run_frame_file answers every block error in its reply frame; an error here is the runtime's own.
    if (execution.error)
      throw new Error(
        `the code interpreter raised ${execution.error.name}: ${execution.error.value}`,
      )
    return execution.logs.stdout
  }

  /**
   * One data-plane call, its SDK errors sorted. E2B's edge answers (403, 409, 429) reach us
   * as the SDK's SandboxError or RateLimitError: a 409 or 429 is waited out and the call made
   * again (it never reached the sandbox), a 403 retires the sandbox, as in template mode. The
   * SDK reports a vanished sandbox (the edge's 502) as a TimeoutError, so a timeout before our
   * deadline means "gone".
   */
  private async call<T>(deadline: number, operation: () => Promise<T>): Promise<T> {
    const edge = new EdgeRetry(deadline, deadline - performance.now())
    for (;;) {
      try {
        return await operation()
      } catch (error) {
        const { name, message } = error as Error
        const status = edgeStatusOf(error)
        if (status !== null) {
          const stop = AbortSignal.timeout(Math.max(0, deadline - performance.now()))
          await edge.waitToResend(status, `HTTP ${status}: ${message}`, null, stop)
          if (performance.now() >= deadline)
            throw new RuntimeTimeout(`the code interpreter gave no reply in time (${message})`)
          continue
        }
        if (name === 'NotFoundError' || name === 'SandboxNotFoundError')
          throw new SandboxGone(message)
        if (name === 'TimeoutError') {
          if (performance.now() >= deadline - 5)
            throw new RuntimeTimeout(`the code interpreter gave no reply in time (${message})`)
          throw new SandboxGone(`the sandbox stopped answering (${name}: ${message})`)
        }
        throw error
      }
    }
  }
}

/**
 * The status of an answer E2B's edge gave itself, from the SDK's error, or null. The SDK keeps
 * no status on most data-plane errors, only in the message: envd's "403: …", the code
 * interpreter's "429 Too Many Requests"; a 429 from envd is its RateLimitError.
 */
function edgeStatusOf(error: unknown): 403 | 409 | 429 | null {
  if (!(error instanceof Error)) return null
  if (error.name === 'RateLimitError') return 429
  if (error.name !== 'SandboxError') return null
  const status =
    (error as { statusCode?: number }).statusCode ?? Number(/^(\d{3})[: ]/.exec(error.message)?.[1])
  return status === 403 || status === 409 || status === 429 ? status : null
}
