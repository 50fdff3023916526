// A sandbox port other than envd's and the interpreter's: the request goes, streamed both
// ways, to the server behind that port inside the sandbox (a Unix socket on the host).

/** Headers that belong to one connection, not to the request (RFC 9110 §7.6.1). */
const HOP_BY_HOP = [
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]
/**
 * What E2B's edge drops besides: its proxies are Go's httputil.ReverseProxy with a Rewrite
 * (infra packages/shared/pkg/proxy/pool/client.go), which strips these from the request it
 * forwards. Everything else reaches the server in the sandbox as sent, the Host included and
 * the e2b-traffic-access-token and X-Access-Token headers too (the edge checks the traffic
 * token but does not remove it).
 */
const DROPPED_BY_REWRITE = ['forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto']

export async function forwardToSocket(request: Request, socketPath: string): Promise<Response> {
  const url = new URL(request.url)
  const headers = new Headers(request.headers)
  for (const name of [...HOP_BY_HOP, ...DROPPED_BY_REWRITE, 'accept-encoding']) headers.delete(name) // accept-encoding: fetch would decode the answer, E2B passes its bytes through untouched
  const hasBody = request.method !== 'GET' && request.method !== 'HEAD' && request.body !== null
  const upstream = await fetch(`http://sandbox${url.pathname}${url.search}`, {
    method: request.method,
    headers,
    body: hasBody ? request.body : undefined,
    unix: socketPath,
    redirect: 'manual',
    duplex: 'half', // the request body streams through, it is not buffered first
  })
  const answer = new Headers(upstream.headers)
  for (const name of HOP_BY_HOP) answer.delete(name)
  if (answer.has('content-encoding')) {
    // fetch decoded the body: its encoding and length no longer describe what we send
    answer.delete('content-encoding')
    answer.delete('content-length')
  }
  return new Response(upstream.body, {
    status: upstream.status,
    statusText: upstream.statusText,
    headers: answer,
  })
}
