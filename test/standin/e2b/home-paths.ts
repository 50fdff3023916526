// Sandbox paths → host paths for envd's file API. Only /home/user exists on the host side
// (the sandbox's writable home); and since the code inside may plant symlinks there, no
// symlink is followed: the stand-in must never read or write outside the home on the host.
import {
  chownSync,
  closeSync,
  constants,
  fchownSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readSync,
  writeSync,
} from 'node:fs'
import { join, posix } from 'node:path'
import { SANDBOX_HOME_DIR } from '../../../src/backends/local/bubblewrap.ts'

/** A path the stand-in will not serve (400), or a file that is not there (404). */
export class PathRefused extends Error {
  constructor(
    readonly status: 400 | 404,
    message: string,
  ) {
    super(message)
  }
}

/** The sandbox's absolute path for `path`, which may be relative to the home. */
export function sandboxPath(path: string): string {
  return posix.resolve(SANDBOX_HOME_DIR, path)
}

/** Where `path` lives on the host, checked to stay inside the home without crossing a symlink. */
function hostPath(homeDir: string, path: string): { host: string; parts: string[] } {
  const absolute = sandboxPath(path)
  if (absolute !== SANDBOX_HOME_DIR && !absolute.startsWith(`${SANDBOX_HOME_DIR}/`)) {
    throw new PathRefused(
      400,
      `${absolute}: the E2B stand-in serves files under ${SANDBOX_HOME_DIR} only`,
    )
  }
  const parts = absolute.slice(SANDBOX_HOME_DIR.length).split('/').filter(Boolean)
  let host = homeDir
  for (const part of parts) {
    host = join(host, part)
    try {
      if (lstatSync(host).isSymbolicLink())
        throw new PathRefused(400, `${absolute}: the stand-in does not follow symlinks`)
    } catch (error) {
      if (error instanceof PathRefused) throw error
      break // the rest does not exist yet
    }
  }
  return { host: join(homeDir, ...parts), parts }
}

export function readHomeFile(homeDir: string, path: string): Uint8Array {
  const { host } = hostPath(homeDir, path)
  let fd: number
  try {
    fd = openSync(host, constants.O_RDONLY | constants.O_NOFOLLOW)
  } catch {
    throw new PathRefused(404, `${sandboxPath(path)}: no such file`)
  }
  try {
    const stat = fstatSync(fd)
    if (!stat.isFile()) throw new PathRefused(400, `${sandboxPath(path)}: not a file`)
    const bytes = new Uint8Array(stat.size)
    let offset = 0
    while (offset < bytes.byteLength) {
      const read = readSync(fd, bytes, offset, bytes.byteLength - offset, offset)
      if (read === 0) break
      offset += read
    }
    return bytes.subarray(0, offset)
  } finally {
    closeSync(fd)
  }
}

/** Writes (or overwrites) a file, making its directories; `owner` gets them if set. */
export function writeHomeFile(
  homeDir: string,
  path: string,
  data: Uint8Array,
  owner: number | null,
): string {
  const { host, parts } = hostPath(homeDir, path)
  if (parts.length === 0) throw new PathRefused(400, `${SANDBOX_HOME_DIR}: is a directory`)
  let dir = homeDir
  for (const part of parts.slice(0, -1)) {
    dir = join(dir, part)
    try {
      mkdirSync(dir, { mode: 0o755 })
      if (owner !== null) chownSync(dir, owner, owner)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      if (!lstatSync(dir).isDirectory())
        throw new PathRefused(400, `${sandboxPath(path)}: a parent is not a directory`)
    }
  }
  let fd: number
  try {
    fd = openSync(
      host,
      constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW,
      0o644,
    )
  } catch (error) {
    throw new PathRefused(
      400,
      `${sandboxPath(path)}: cannot write (${(error as NodeJS.ErrnoException).code})`,
    )
  }
  try {
    let offset = 0
    while (offset < data.byteLength) offset += writeSync(fd, data, offset, data.byteLength - offset)
    if (owner !== null) fchownSync(fd, owner, owner)
  } finally {
    closeSync(fd)
  }
  return sandboxPath(path)
}
