// A real HAProxy running the balancer configuration blockgate ships (deploy/haproxy.cfg), with
// only its listening address and its instances' addresses changed to the test's.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { PROJECT_ROOT } from '../../src/config.ts'
import { spawnDaemon, startOnFreePort, stopDaemon, waitUntilReady } from './daemon.ts'

export const SHIPPED_HAPROXY_CONFIG = resolve(PROJECT_ROOT, 'deploy/haproxy.cfg')

export interface Haproxy {
  url: string
  port: number
  /** The tail of what HAProxy logged (one line per request). */
  log(): string
  stop(): Promise<void>
}

/** `servers`: the instances, as host:port, in the order of their `server` lines. */
export async function startHaproxy({
  servers,
  readyTimeoutMs = 10_000,
}: {
  servers: string[]
  readyTimeoutMs?: number
}): Promise<Haproxy> {
  const shipped = readFileSync(SHIPPED_HAPROXY_CONFIG, 'utf8')
  return startOnFreePort(async (port) => {
    const dir = mkdtempSync(join(tmpdir(), 'blockgate-haproxy-'))
    const configFile = join(dir, 'haproxy.cfg')
    writeFileSync(configFile, withAddresses(shipped, `127.0.0.1:${port}`, servers))
    // -db: in the foreground, one process, so its pid is the one to stop.
    const daemon = spawnDaemon([haproxyBinary(), '-db', '-f', configFile], dir)
    void daemon.proc.exited.then(() => rmSync(dir, { recursive: true, force: true }))
    await waitUntilReady('haproxy', daemon, () => acceptsConnections(port), readyTimeoutMs)
    return {
      url: `http://127.0.0.1:${port}`,
      port,
      log: daemon.output,
      stop: () => stopDaemon(daemon.proc),
    }
  })
}

/**
 * The configuration with `bind` listening on `listen` and, in every backend, one `server`
 * line per address in place of the shipped example's (named and set up as its first one).
 */
export function withAddresses(config: string, listen: string, servers: string[]): string {
  if (servers.length === 0) throw new Error('haproxy: give at least one server')
  const out: string[] = []
  let binds = 0
  let serverBlocks = 0
  let inServerBlock = false
  for (const line of config.split('\n')) {
    const bind = line.match(/^(\s*bind\s+)\S+(.*)$/)
    const server = line.match(/^(\s*server\s+)(\D+)\d*\s+\S+(.*)$/)
    if (bind) {
      out.push(`${bind[1]}${listen}${bind[2]}`)
      binds++
    } else if (server && !inServerBlock) {
      const [, keyword, namePrefix, options] = server
      servers.forEach((address, i) => {
        out.push(`${keyword}${namePrefix}${i + 1} ${address}${options}`)
      })
      serverBlocks++
    } else if (!server) {
      out.push(line)
    }
    inServerBlock = server !== null
  }
  // The shipped file changed shape: better to fail than to test something else than it.
  if (binds !== 1 || serverBlocks === 0)
    throw new Error(`haproxy: expected one bind line and server lines in ${SHIPPED_HAPROXY_CONFIG}`)
  return out.join('\n')
}

// Debian installs it in /usr/sbin, which is not on a user's PATH.
function haproxyBinary(): string {
  return Bun.which('haproxy', { PATH: `${process.env.PATH}:/usr/sbin` }) ?? 'haproxy'
}

async function acceptsConnections(port: number): Promise<boolean> {
  try {
    const socket = await Bun.connect({ hostname: '127.0.0.1', port, socket: { data() {} } })
    socket.end()
    return true
  } catch {
    return false
  }
}
