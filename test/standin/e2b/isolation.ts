// How a stand-in sandbox's processes are started: inside bubblewrap with the same walls as
// blockgate's local workers (src/backends/local/bubblewrap.ts), plus a writable /home/user;
// or, only when asked for explicitly, directly on the host.
import type { Subprocess } from 'bun'
import { existsSync, realpathSync } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'
import {
  bubblewrapAvailable,
  bubblewrapCommand,
  SANDBOX_HOME_DIR,
  SANDBOX_PATHS,
  SANDBOX_SOCKET_DIR,
} from '../../../src/backends/local/bubblewrap.ts'
import { workerEnvironment } from '../../../src/backends/local/worker.ts'

const PROJECT_ROOT = resolve(import.meta.dir, '../../..')

export interface Isolation {
  sandboxed: boolean
  /** The venv's interpreter on the host. */
  python: string
  pythonHome: string
  /** The runtime template directory on the host (holds the `runtime` package). */
  runtimeDir: string
}

export interface IsolationOptions {
  python?: string
  runtimeDir?: string
  unsandboxed?: boolean
}

export function resolveIsolation(options: IsolationOptions): Isolation {
  const python =
    options.python ?? process.env.BLOCKGATE_PYTHON ?? join(PROJECT_ROOT, '.venv/bin/python')
  if (!existsSync(python))
    throw new Error(
      `no Python interpreter at ${python}: run \`npm run setup\` or set BLOCKGATE_PYTHON`,
    )
  const unsandboxed =
    options.unsandboxed ?? ['1', 'true'].includes(process.env.BLOCKGATE_ALLOW_UNSANDBOXED ?? '')
  if (!unsandboxed && !bubblewrapAvailable()) {
    throw new Error(
      'the E2B stand-in runs sandboxes inside bubblewrap, and `bwrap` is not on PATH: install bubblewrap, or pass { unsandboxed: true } / set BLOCKGATE_ALLOW_UNSANDBOXED=1 to run them on the host without isolation',
    )
  }
  return {
    sandboxed: !unsandboxed,
    python,
    pythonHome: pythonHome(python),
    runtimeDir: options.runtimeDir ?? join(PROJECT_ROOT, 'template'),
  }
}

/**
 * The E2B stand-in's copy of E2B's stock code-interpreter environment (a venv that
 * template/setup.sh builds from template/code-interpreter/stock-requirements.txt on a
 * Python 3.13, and links at .venv-code-interpreter), in place of `isolation`'s Python.
 */
export function stockIsolation(isolation: Isolation): Isolation {
  const venv = process.env.BLOCKGATE_STOCK_VENV ?? join(PROJECT_ROOT, '.venv-code-interpreter')
  const python = join(existsSync(venv) ? realpathSync(venv) : venv, 'bin', 'python')
  if (!existsSync(python))
    throw new Error(
      `no stock code-interpreter environment at ${venv}: run \`npm run setup\` (it needs a Python 3.13; set BLOCKGATE_CODE_INTERPRETER_PYTHON to one)`,
    )
  let home = stockHomes.get(python)
  if (home === undefined) {
    home = pythonHome(python)
    stockHomes.set(python, home)
  }
  return { ...isolation, python, pythonHome: home }
}

const stockHomes = new Map<string, string>()

/** Where things are as the sandboxed process sees them (inside bubblewrap, or the host's own paths). */
export interface Places {
  python: string
  runtimeDir: string
  /** The sandbox's private directory for sockets and the stand-in's helper files. */
  socketDir: string
  home: string
}

export interface SandboxDirs {
  socketDir: string
  homeDir: string
}

export interface LaunchSpec {
  command: (at: Places) => string[]
  env?: Record<string, string>
  stdin: 'pipe' | 'ignore'
  stdout: 'pipe' | 'ignore'
}

/** Starts one sandbox process in a process group of its own, so it can be killed as a group. */
export function launch(
  isolation: Isolation,
  dirs: SandboxDirs,
  spec: LaunchSpec,
): Subprocess<'pipe' | 'ignore', 'pipe' | 'ignore', 'pipe'> {
  const at: Places = isolation.sandboxed
    ? {
        python: join(SANDBOX_PATHS.venv, 'bin', basename(isolation.python)),
        runtimeDir: SANDBOX_PATHS.runtimeDir,
        socketDir: SANDBOX_SOCKET_DIR,
        home: SANDBOX_HOME_DIR,
      }
    : {
        python: isolation.python,
        runtimeDir: isolation.runtimeDir,
        socketDir: dirs.socketDir,
        home: dirs.homeDir,
      }
  const env = { ...workerEnvironment(at.runtimeDir), HOME: at.home, ...spec.env }
  const command = spec.command(at)
  const cmd = isolation.sandboxed
    ? bubblewrapCommand(
        {
          python: isolation.python,
          pythonHome: isolation.pythonHome,
          venv: dirname(dirname(isolation.python)),
          runtimeDir: isolation.runtimeDir,
          serializersDir: join(dirname(isolation.runtimeDir), 'serializers'),
          socketDir: dirs.socketDir,
          regionDir: null,
          homeDir: dirs.homeDir,
        },
        command,
        env,
      )
    : command
  return Bun.spawn({
    cmd,
    cwd: isolation.runtimeDir,
    env,
    stdin: spec.stdin,
    stdout: spec.stdout,
    stderr: 'pipe',
    detached: true,
  })
}

/** The interpreter's `sys.base_prefix`: the standard library the sandbox must see. */
function pythonHome(python: string): string {
  const result = Bun.spawnSync({ cmd: [python, '-c', 'import sys; print(sys.base_prefix)'] })
  if (result.exitCode !== 0)
    throw new Error(`${python} did not run: ${result.stderr.toString().trim()}`)
  return result.stdout.toString().trim()
}
