// The certificate of the host-routed edge: a throwaway CA made for this stand-in and a
// wildcard certificate it signs for `*.<domain>`, as E2B's edge serves one for `*.e2b.app`.
// A client trusts the CA the way a user's process trusts a private CA, with
// NODE_EXTRA_CA_CERTS (Bun and Node read it at start-up); nothing else on the machine
// trusts it. The CA's key is deleted once the certificate is signed, so it signs nothing else.
import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface EdgeCertificate {
  /** The CA's certificate (PEM file): what NODE_EXTRA_CA_CERTS names. */
  caFile: string
  /** The edge's certificate and key (PEM). */
  cert: string
  key: string
  /** Removes the files. */
  dispose(): void
}

/** Makes the CA and the `*.<hostname>` certificate with the openssl CLI (a few tens of ms). */
export async function makeEdgeCertificate(hostname: string): Promise<EdgeCertificate> {
  const dir = mkdtempSync(join(tmpdir(), 'e2b-standin-tls-'))
  const at = (name: string) => join(dir, name)
  try {
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
    await openssl(
      ['req', '-x509', ...ec, '-keyout', at('ca.key'), '-out', at('ca.pem'), '-days', '2'],
      ['-subj', '/CN=blockgate E2B stand-in CA'],
      ['-addext', 'basicConstraints=critical,CA:TRUE'],
      ['-addext', 'keyUsage=critical,keyCertSign'],
    )
    await openssl(
      ['req', ...ec, '-keyout', at('edge.key'), '-out', at('edge.csr')],
      ['-subj', `/CN=*.${hostname}`],
    )
    writeFileSync(
      at('edge.ext'),
      `subjectAltName=DNS:*.${hostname}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`,
    )
    await openssl(
      ['x509', '-req', '-in', at('edge.csr'), '-CA', at('ca.pem'), '-CAkey', at('ca.key')],
      ['-set_serial', `0x${crypto.randomUUID().replaceAll('-', '')}`, '-days', '2'],
      ['-extfile', at('edge.ext'), '-out', at('edge.pem')],
    )
    unlinkSync(at('ca.key'))
    return {
      caFile: at('ca.pem'),
      cert: readFileSync(at('edge.pem'), 'utf8'),
      key: readFileSync(at('edge.key'), 'utf8'),
      dispose: () => rmSync(dir, { recursive: true, force: true }),
    }
  } catch (error) {
    rmSync(dir, { recursive: true, force: true })
    throw error
  }
}

async function openssl(...args: string[][]): Promise<void> {
  let proc: ReturnType<typeof Bun.spawn>
  try {
    proc = Bun.spawn({ cmd: ['openssl', ...args.flat()], stdout: 'ignore', stderr: 'pipe' })
  } catch (error) {
    throw new Error(
      `the host-routed edge needs the openssl CLI for its certificate: ${(error as Error).message}`,
    )
  }
  const stderr = await new Response(proc.stderr as ReadableStream).text()
  if ((await proc.exited) !== 0) throw new Error(`openssl ${args[0]!.join(' ')}: ${stderr}`)
}
