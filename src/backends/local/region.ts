// A worker's shared-memory region: a file in /dev/shm the worker maps and the proxy
// reads and writes with pread/pwrite. Never mapped here: a worker that shrank the file
// could otherwise crash the server with SIGBUS; a short read is just an error.
import { randomBytes } from 'node:crypto'
import {
  closeSync,
  fchmodSync,
  ftruncateSync,
  openSync,
  readSync,
  unlinkSync,
  writeSync,
} from 'node:fs'
import { join } from 'node:path'
import { alignSidecar, type SharedRegion } from '../../../serializers/cbor.ts'

export class FileRegion implements SharedRegion {
  private used = 0

  private constructor(
    readonly name: string,
    private readonly path: string,
    private readonly fd: number,
    readonly size: number,
  ) {}

  /** A new region in `dir` (0711: a worker can open it by name, not list or create files). */
  static create(dir: string, size: number): FileRegion {
    const name = randomBytes(16).toString('hex')
    const path = join(dir, name)
    const fd = openSync(path, 'wx+', 0o666)
    fchmodSync(fd, 0o666) // the sandbox's uid writes outputs into it
    ftruncateSync(fd, size)
    return new FileRegion(name, path, fd, size)
  }

  /** Forgets what the last request put in: each request starts at offset 0. */
  reset(): void {
    this.used = 0
  }

  /** Copies bytes in; their offset, or null when they do not fit or /dev/shm is full (the socket carries them then). */
  write(bytes: Uint8Array): number | null {
    const at = alignSidecar(this.used)
    if (at + bytes.byteLength > this.size) return null
    try {
      for (let done = 0; done < bytes.byteLength; )
        done += writeSync(this.fd, bytes, done, bytes.byteLength - done, at + done)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOSPC') return null
      throw error
    }
    this.used = at + bytes.byteLength
    return at
  }

  read(offset: number, length: number): Uint8Array {
    // The frame decoder checks references first; this is the last guard before the allocation.
    if (
      !Number.isSafeInteger(offset) ||
      !Number.isSafeInteger(length) ||
      offset < 0 ||
      length < 0 ||
      offset + length > this.size
    ) {
      throw new Error(
        `region reference [${offset}, ${length}] is outside the ${this.size}-byte region`,
      )
    }
    const out = new Uint8Array(length)
    for (let done = 0; done < length; ) {
      const got = readSync(this.fd, out, done, length - done, offset + done)
      if (got === 0)
        throw new Error('the region is shorter than its reference: the worker shrank it')
      done += got
    }
    return out
  }

  /**
   * Removes the file's name once the worker has mapped it: the memory lives on through the
   * mapping and this fd, no other process can open it any more, and nothing is left in
   * /dev/shm if the server dies.
   */
  unlink(): void {
    try {
      unlinkSync(this.path)
    } catch {
      // already gone
    }
  }

  close(): void {
    this.unlink()
    try {
      closeSync(this.fd)
    } catch {
      // already closed
    }
  }
}
