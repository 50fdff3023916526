// The server's own limits, against a real server process on loopback: many idle keep-alive
// connections, clients that send their headers or bodies slowly, and a request pipelined
// behind a POST. Meanwhile another client's runs all succeed, /healthz answers within its
// normal latency, and once the connections go the server's fds come back.
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { createConnection, type Socket } from 'node:net'
import { SUM_BLOCK } from '../support/http.ts'
import { footprint, startServer, type ServerProcess } from '../support/server-process.ts'

let server: ServerProcess
let port: number

beforeAll(async () => {
  server = await startServer({
    BLOCKGATE_LOG_LEVEL: 'error',
    BLOCKGATE_MAX_WORKERS: '2',
    BLOCKGATE_MIN_WARM_WORKERS: '1',
  })
  port = Number(new URL(server.url).port)
}, 90_000)

afterAll(async () => {
  await server?.stop()
})

function open(first?: string): Socket {
  const socket = createConnection(port, '127.0.0.1')
  socket.on('error', () => {})
  if (first !== undefined) socket.write(first)
  return socket
}

function answerOn(socket: Socket): Promise<string> {
  return new Promise((resolve) => {
    let got = ''
    socket.on('data', (chunk) => (got += chunk.toString()))
    socket.on('close', () => resolve(got))
  })
}

test('idle, slow and pipelining clients do not slow anyone else down', async () => {
  const before = footprint(server.pid)
  const sockets: Socket[] = []
  const body = JSON.stringify({ code: { run_function_code: SUM_BLOCK }, inputs: { a: 1, b: 2 } })
  // 300 idle keep-alive connections, 50 that stop halfway through their headers, 50 that promise a body and send a little.
  for (let i = 0; i < 300; i++) sockets.push(open())
  for (let i = 0; i < 50; i++)
    sockets.push(open('POST /v1/run HTTP/1.1\r\nHost: x\r\nContent-Type: appl'))
  for (let i = 0; i < 50; i++)
    sockets.push(
      open(
        `POST /v1/run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 10)}`,
      ),
    )
  // A request pipelined behind a POST on one connection. Bun 1.4.5 closes such a connection
  // rather than answer it (oven-sh/bun#38128): that client gets no answer and its run is
  // cancelled like any run whose client left; everyone else must not notice.
  const pipelined = open(
    `POST /v1/run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n`,
  )
  const pipelinedAnswer = answerOn(pipelined)

  const latencies: number[] = []
  const failures: string[] = []
  const until = performance.now() + 3000
  while (performance.now() < until) {
    const startedAt = performance.now()
    const health = await fetch(`${server.url}/healthz`)
    latencies.push(performance.now() - startedAt)
    const response = await fetch(`${server.url}/v1/run`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    })
    const answer = (await response.json()) as { outputs?: { sum?: number } }
    if (!health.ok || response.status !== 200 || answer.outputs?.sum !== 3)
      failures.push(`${health.status} ${response.status} ${JSON.stringify(answer).slice(0, 200)}`)
    await Bun.sleep(20)
  }
  expect(failures).toEqual([])
  expect(Math.max(...latencies)).toBeLessThan(100)
  const during = footprint(server.pid)
  expect(during.fds).toBeGreaterThan(before.fds + 300) // the connections really were held

  pipelined.destroy()
  await pipelinedAnswer
  for (const socket of sockets) socket.destroy()
  const deadline = performance.now() + 5000
  let after = footprint(server.pid)
  while (performance.now() < deadline && after.fds > before.fds + 8) {
    await Bun.sleep(100)
    after = footprint(server.pid)
  }
  expect(after.fds).toBeLessThanOrEqual(before.fds + 8)
  // And the server still answers as before.
  const last = await fetch(`${server.url}/v1/run`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  })
  expect(last.status).toBe(200)
}, 60_000)
