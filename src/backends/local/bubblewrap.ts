// The bubblewrap command the zygote runs under: no network, a read-only filesystem that
// holds only what Python needs, its own PID/IPC/UTS namespaces, no capabilities, an
// unprivileged uid, and death with the server. Each worker then confines itself further,
// away from the others (template/runtime/confinement.py). "The sandbox" below is this
// bubblewrap sandbox.
import { existsSync, lstatSync } from 'node:fs'
import { dirname } from 'node:path'

export interface BubblewrapPaths {
  /** The venv's interpreter (its directory tree is bound read-only). */
  python: string
  /** Where the venv's interpreter comes from (`sys.base_prefix`). */
  pythonHome: string
  venv: string
  runtimeDir: string
  serializersDir: string
  /** Holds the Unix socket workers connect to; bound read-write at SANDBOX_SOCKET_DIR. */
  socketDir: string
  /** Holds the workers' shared-memory regions; bound at SANDBOX_REGION_DIR. */
  regionDir: string | null
  /** A writable home, bound read-write at SANDBOX_HOME_DIR (the E2B stand-in's /home/user); none if absent. */
  homeDir?: string | null
  /**
   * 'own': a procfs of the sandbox's PID namespace. 'for-workers': the host's /proc, which
   * no user code ever sees: each worker mounts a procfs of its own PID namespace over it,
   * and the kernel allows that only where a procfs is already fully visible (bubblewrap's
   * own /proc has read-only mounts over parts of it).
   */
  proc?: 'own' | 'for-workers'
}

/** Where the socket directory appears inside the sandbox: away from /tmp, which each worker replaces. */
export const SANDBOX_SOCKET_DIR = '/run/blockgate'
export const SANDBOX_REGION_DIR = '/run/blockgate-shm'
export const SANDBOX_HOME_DIR = '/home/user'

/**
 * Where the venv and the runtime appear inside the sandbox. Fixed paths, not the host's:
 * a checkout under /tmp would otherwise vanish under the sandbox's and each worker's /tmp.
 */
export const SANDBOX_PATHS = {
  venv: '/opt/blockgate/venv',
  runtimeDir: '/opt/blockgate/template',
  serializersDir: '/opt/blockgate/serializers',
} as const

/** The uid the sandbox runs as when the server is root (nobody). */
export const SANDBOX_UID = 65534

export function bubblewrapAvailable(): boolean {
  return Bun.which('bwrap') !== null
}

export function bubblewrapCommand(
  paths: BubblewrapPaths,
  command: string[],
  env: Record<string, string>,
): string[] {
  const root = process.getuid?.() === 0
  const args: string[] = [
    'bwrap',
    '--die-with-parent',
    '--new-session',
    '--unshare-ipc',
    '--unshare-pid',
    '--unshare-net',
    '--unshare-uts',
    '--unshare-cgroup-try',
  ]
  // An empty root: only what is bound below exists inside.
  args.push('--tmpfs', '/')
  const made = new Set<string>(['/'])
  const parents = (target: string) => {
    const missing: string[] = []
    for (let dir = dirname(target); !made.has(dir); dir = dirname(dir)) missing.unshift(dir)
    for (const dir of missing) {
      args.push('--perms', '0755', '--dir', dir) // readable by the sandbox's uid, whoever owns the original
      made.add(dir)
    }
  }
  const bind = (path: string, at = path) => {
    parents(at)
    args.push('--ro-bind', path, at)
    made.add(at)
  }
  if (paths.proc === 'for-workers') args.push('--bind', '/proc', '/proc')
  else args.push('--proc', '/proc')
  args.push('--dev', '/dev', '--perms', '1777', '--tmpfs', '/tmp')
  for (const dir of ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32']) {
    if (!existsSync(dir)) continue
    if (lstatSync(dir).isSymbolicLink())
      args.push('--symlink', `usr${dir}`, dir) // merged /usr
    else bind(dir)
  }
  for (const file of ['/etc/ld.so.cache', '/etc/localtime']) if (existsSync(file)) bind(file)
  bind(paths.pythonHome)
  bind(paths.venv, SANDBOX_PATHS.venv)
  bind(paths.runtimeDir, SANDBOX_PATHS.runtimeDir)
  bind(paths.serializersDir, SANDBOX_PATHS.serializersDir)
  parents(SANDBOX_SOCKET_DIR)
  args.push('--bind', paths.socketDir, SANDBOX_SOCKET_DIR)
  if (paths.regionDir) {
    parents(SANDBOX_REGION_DIR)
    args.push('--bind', paths.regionDir, SANDBOX_REGION_DIR) // writable files, in a directory no worker can list
  }
  if (paths.homeDir) {
    parents(SANDBOX_HOME_DIR)
    args.push('--bind', paths.homeDir, SANDBOX_HOME_DIR)
  }
  args.push(
    '--clearenv',
    ...Object.entries(env).flatMap(([name, value]) => ['--setenv', name, value]),
  )
  args.push('--chdir', SANDBOX_PATHS.runtimeDir)
  if (root) {
    // bwrap needs root to build the mounts; the code inside must not be root. setpriv drops
    // to nobody for good (no capabilities, no way back, no new privileges).
    args.push('--cap-add', 'CAP_SETUID', '--cap-add', 'CAP_SETGID')
    args.push(
      'setpriv',
      `--reuid=${SANDBOX_UID}`,
      `--regid=${SANDBOX_UID}`,
      '--clear-groups',
      '--inh-caps=-all',
      '--bounding-set=-all',
      '--no-new-privs',
    )
  } else {
    args.push('--unshare-user', '--cap-drop', 'ALL')
  }
  return [...args, ...command]
}
