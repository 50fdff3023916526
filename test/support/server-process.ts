// A blockgate server as a process of its own, as users run it, and what it holds: its
// resident memory, open fds, the processes under it (its sandbox and workers, nothing
// else on the machine) and its shared-memory files. Tests compare these before and after.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { resolve } from 'node:path'
import { PROJECT_ROOT } from '../../src/config.ts'

export interface ServerProcess {
  url: string
  pid: number
  /** Everything the server wrote to stderr so far (its log). */
  log(): string
  /** Its exit code, once it exited. */
  exited: Promise<number>
  /** Sends `signal` to the server's whole process group, as a terminal's Ctrl-C or systemd does. */
  signalGroup(signal: NodeJS.Signals): void
  stop(): Promise<void>
}

/**
 * The URL a server started with PORT=0 listens on, from its `listening` log line (stderr).
 * Port 0 lets the OS pick: a port chosen here could be taken by another test's server (the
 * integration files run side by side) before this one binds it, or worse, answer for it.
 */
function listeningUrl(log: string): string | null {
  for (const line of log.split('\n')) {
    if (!line.includes('"listening"')) continue
    try {
      const entry = JSON.parse(line) as { message?: string; url?: string }
      if (entry.message === 'listening' && entry.url) return entry.url.replace(/\/$/, '')
    } catch {}
  }
  return null
}

/** Reads a process's stderr as it comes: all of it so far, and the URL once it listens. */
export function followLog(stream: ReadableStream<Uint8Array>) {
  let text = ''
  void (async () => {
    const decoder = new TextDecoder()
    for await (const chunk of stream) text += decoder.decode(chunk, { stream: true })
  })()
  return {
    text: () => text,
    /** Waits for the `listening` line; fails with the log if the process exits or is slow. */
    async url(exited: Promise<number>, timeoutMs = 60_000): Promise<string> {
      const deadline = performance.now() + timeoutMs
      let gone = false
      void exited.then(() => {
        gone = true
      })
      while (performance.now() < deadline) {
        const url = listeningUrl(text)
        if (url) return url
        if (gone) throw new Error(`the server exited at start: ${text.slice(-2000)}`)
        await Bun.sleep(20)
      }
      throw new Error(`the server did not listen within ${timeoutMs} ms: ${text.slice(-2000)}`)
    },
  }
}

/** `wrap`: a command the server runs under, which execs it (so the pid stays the server's). */
export async function startServer(
  env: Record<string, string>,
  { readyTimeoutMs = 60_000, wrap = [] as string[] } = {},
): Promise<ServerProcess> {
  const proc = Bun.spawn({
    cmd: [...wrap, process.execPath, resolve(PROJECT_ROOT, 'src/server.ts')],
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', ...env },
    stdout: 'ignore',
    stderr: 'pipe',
    detached: true, // a process group of its own, as under a terminal or a service manager
  })
  const log = followLog(proc.stderr)
  const stop = async () => {
    proc.kill('SIGTERM')
    const exited = await Promise.race([
      proc.exited.then(() => true),
      Bun.sleep(10_000).then(() => false),
    ])
    if (!exited) proc.kill('SIGKILL')
    await proc.exited
  }
  const deadline = performance.now() + readyTimeoutMs
  let url: string
  try {
    url = await log.url(proc.exited, readyTimeoutMs)
  } catch (error) {
    await stop()
    throw error
  }
  const server: ServerProcess = {
    url,
    pid: proc.pid,
    log: log.text,
    exited: proc.exited,
    signalGroup: (signal) => process.kill(-proc.pid, signal),
    stop,
  }
  while (performance.now() < deadline) {
    if (proc.exitCode !== null)
      throw new Error(`the server exited at start: ${log.text().slice(-2000)}`)
    if (
      await fetch(`${url}/readyz`).then(
        (r) => r.ok,
        () => false,
      )
    )
      return server
    await Bun.sleep(100)
  }
  await server.stop()
  throw new Error(
    `the server was not ready within ${readyTimeoutMs} ms: ${log.text().slice(-2000)}`,
  )
}

interface ProcessInfo {
  pid: number
  ppid: number
  /** utime + stime, in clock ticks. */
  cpuTicks: number
}

function residentBytes(pid: number): number {
  try {
    return (
      Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m)?.[1] ?? 0) *
      1024
    )
  } catch {
    return 0
  }
}

function readProcess(pid: number): ProcessInfo | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return { pid, ppid: Number(fields[1]), cpuTicks: Number(fields[11]) + Number(fields[12]) }
  } catch {
    return null // gone meanwhile
  }
}

/** Every process descended from `root` (not `root` itself). */
export function descendants(root: number): ProcessInfo[] {
  const all = readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map((name) => readProcess(Number(name)))
    .filter((p): p is ProcessInfo => p !== null)
  const children = new Map<number, ProcessInfo[]>()
  for (const p of all) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p])
  const found: ProcessInfo[] = []
  const stack = [root]
  while (stack.length > 0) {
    for (const child of children.get(stack.pop()!) ?? []) {
      found.push(child)
      stack.push(child.pid)
    }
  }
  return found
}

export interface Footprint {
  rssBytes: number
  fds: number
  /** Processes under the server: bubblewrap, the zygote, holders and workers. */
  processes: number
  /** Their CPU time so far, in clock ticks. */
  cpuTicks: number
  /** Their memory together, each page counted once (proportional set size: shared pages split). */
  descendantMemoryBytes: number
  /** Files in the server's shared-memory directory, and region files it holds open. */
  shmEntries: number
}

export function footprint(pid: number): Footprint {
  const under = descendants(pid)
  const fdDir = `/proc/${pid}/fd`
  const fds = readdirSync(fdDir)
  let shmOpen = 0
  for (const fd of fds) {
    try {
      if (readlinkSync(`${fdDir}/${fd}`).startsWith('/dev/shm/')) shmOpen++
    } catch {
      // closed meanwhile
    }
  }
  return {
    rssBytes: residentBytes(pid),
    fds: fds.length,
    processes: under.length,
    cpuTicks: under.reduce((sum, p) => sum + p.cpuTicks, 0),
    descendantMemoryBytes: under.reduce((sum, p) => sum + proportionalBytes(p.pid), 0),
    shmEntries: shmOpen + regionDirEntries(under),
  }
}

/** A process's proportional set size: its private pages, and its share of pages it shares (forked workers share the zygote's). */
function proportionalBytes(pid: number): number {
  try {
    const kilobytes = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').match(
      /^Pss:\s+(\d+) kB/m,
    )?.[1]
    return Number(kilobytes ?? 0) * 1024
  } catch {
    return 0 // gone meanwhile
  }
}

/** Files in the shared-memory directory the server gave its sandbox (read from bubblewrap's command line). */
function regionDirEntries(under: ProcessInfo[]): number {
  for (const { pid } of under) {
    try {
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
      const at = args.indexOf('/run/blockgate-shm')
      if (args[0]?.endsWith('bwrap') && at > 0) return readdirSync(args[at - 1]!).length
    } catch {
      // gone meanwhile
    }
  }
  return 0
}

export const CLOCK_TICKS_PER_SECOND = 100
