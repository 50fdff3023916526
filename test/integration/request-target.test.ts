// Requests without a usable Host header, over a raw socket to a real server process: HTTP/1.0
// allows none, and Bun then hands the app a bare path as the request's URL. Such a request is
// read as addressed to this server; it used to be `500 InternalError` (TypeError: Invalid URL).
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { connect } from 'node:net'
import { startServer, type ServerProcess } from '../support/server-process.ts'

let server: ServerProcess
beforeAll(async () => {
  server = await startServer({ BLOCKGATE_MIN_WARM_WORKERS: '1', BLOCKGATE_MAX_WORKERS: '2' })
}, 60_000)
afterAll(async () => {
  await server.stop()
})

/** Sends `request` as it is and reads until the server closes: status line, headers, body. */
function exchange(request: string): Promise<{ status: number; body: string }> {
  const { port } = new URL(server.url)
  return new Promise((resolve, reject) => {
    let received = ''
    const socket = connect(Number(port), '127.0.0.1', () => socket.write(request))
    socket.setEncoding('utf8')
    socket.on('data', (chunk) => (received += chunk))
    socket.on('error', reject)
    socket.on('close', () => {
      const [head = '', ...rest] = received.split('\r\n\r\n')
      resolve({ status: Number(head.split(' ')[1]), body: rest.join('\r\n\r\n') })
    })
    setTimeout(
      () => socket.destroy(new Error(`no answer to ${JSON.stringify(request.slice(0, 60))}`)),
      10_000,
    )
  })
}

const BODY = JSON.stringify({
  code: { run_function_code: 'def run(self, a):\n    return {"twice": 2 * a}\n' },
  inputs: { a: 21 },
})
const post = (target: string, version: string, headers: string[]) =>
  [
    `POST ${target} ${version}`,
    'Content-Type: application/json',
    `Content-Length: ${Buffer.byteLength(BODY)}`,
    ...headers,
    '',
    BODY,
  ].join('\r\n')

for (const [name, request] of [
  ['HTTP/1.0 without Host', post('/v1/run', 'HTTP/1.0', [])],
  [
    'HTTP/1.0 with an absolute target and no Host',
    post('http://blockgate.invalid/v1/run', 'HTTP/1.0', []),
  ],
  ['HTTP/1.1 with an empty Host', post('/v1/run', 'HTTP/1.1', ['Host: ', 'Connection: close'])],
  [
    'HTTP/1.1 with a malformed Host',
    post('/v1/run', 'HTTP/1.1', ['Host: not a host', 'Connection: close']),
  ],
] as const) {
  test(`${name}: the run is answered`, async () => {
    const { status, body } = await exchange(request)
    expect(status).toBe(200)
    expect(JSON.parse(body).outputs).toEqual({ twice: 42 })
  })
}

test('HTTP/1.0 without Host: health and unknown routes answer as usual', async () => {
  expect(await exchange('GET /healthz HTTP/1.0\r\n\r\n')).toEqual({
    status: 200,
    body: '{"status":"ok"}',
  })
  const missing = await exchange('GET /nowhere?x=1 HTTP/1.0\r\n\r\n')
  expect(missing.status).toBe(404)
  expect(JSON.parse(missing.body).error.message).toBe('no route for GET /nowhere')
  // The server still serves everyone else.
  expect((await fetch(`${server.url}/healthz`)).status).toBe(200)
})
