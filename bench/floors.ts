// Floors: the cheapest programs that do a hot path's job on this machine, measured in the
// same run and by the same load client (http-client.ts) as the blockgate rows they bound
// (bench/targets.ts holds each pair). Here, the no-op request:
// - `bun-echo` at concurrency 1: a bare Bun server that sends the request's bytes back;
// - `bun-forward-python` at 1 and 64: a bare Bun server that forwards each request over a
//   Unix socket to one of two minimal Python loops (floor_loop.py; two, as the pool has two
//   workers) and answers with its reply: HTTP plus one IPC round trip, no blockgate.
import { rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import type { Socket } from 'bun'
import type { BenchContext } from './context.ts'
import { loadRounds } from './load.ts'
import { PYTHON, runBody } from './payloads.ts'
import { rowOf, type Row } from './stats.ts'

const LOOPS = 2

export async function floors(ctx: BenchContext): Promise<Row[]> {
  const noop = runBody(ctx.payloads.blocks.find((payload) => payload.id === 'no-op')!, 'load')
  const requests = ctx.count(400, 2000)
  const rows: Row[] = []
  const row = (backend: string, name: string, concurrency: number, load: Load) =>
    rowOf(
      {
        scenario: 'http-throughput',
        name,
        backend,
        target: 'local',
        payload: 'no-op',
        concurrency,
      },
      load.latencies,
      load.seconds,
    )

  const echo = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    fetch: async (request) => new Response(await request.arrayBuffer()),
  })
  try {
    ctx.progress(
      `floors: the no-op request echoed by a bare Bun server, ${ctx.rounds} rounds of ${requests}`,
    )
    await loadRounds(echo.url.href, noop, 1, 200, 1, OCTETS)
    const load = await loadRounds(echo.url.href, noop, ctx.rounds, requests, 1, OCTETS)
    rows.push(row('bun-echo', 'floor: the no-op request echoed by a bare Bun server', 1, load))
  } finally {
    echo.stop(true)
  }

  const forwarder = await startForwarder()
  try {
    for (const concurrency of [1, 64]) {
      ctx.progress(
        `floors: Bun → Unix socket → Python loop, no-op, concurrency ${concurrency}, ${ctx.rounds} rounds of ${requests}`,
      )
      await loadRounds(forwarder.url, noop, 1, 200, concurrency, OCTETS)
      const load = await loadRounds(forwarder.url, noop, ctx.rounds, requests, concurrency, OCTETS)
      rows.push(
        row(
          'bun-forward-python',
          `floor: a bare Bun server forwarding the no-op request over a Unix socket to a minimal Python loop, concurrency ${concurrency}`,
          concurrency,
          load,
        ),
      )
    }
  } finally {
    await forwarder.stop()
  }
  return rows
}

type Load = Awaited<ReturnType<typeof loadRounds>>
// The load client reads timings out of CBOR answers; a floor has none to give.
const OCTETS = 'application/octet-stream'

/** One Python loop's end of the socket: a request at a time, its reply frame back. */
interface Loop {
  socket: Socket<undefined>
  received: Uint8Array
  /** What the socket had no room for yet: written on drain. */
  unsent: Uint8Array
  reply: ((bytes: Uint8Array) => void) | null
}

async function startForwarder() {
  const path = join(tmpdir(), `blockgate-floor-${process.pid}.sock`)
  rmSync(path, { force: true })
  const idle: Loop[] = []
  const waiting: ((loop: Loop) => void)[] = []
  const loops = new Map<Socket<undefined>, Loop>()
  const release = (loop: Loop) => {
    const next = waiting.shift()
    if (next) next(loop)
    else idle.push(loop)
  }
  let connected: () => void
  const allConnected = new Promise<void>((resolve) => {
    connected = resolve
  })
  const listener = Bun.listen({
    unix: path,
    socket: {
      open(socket) {
        const loop: Loop = {
          socket,
          received: new Uint8Array(0),
          unsent: new Uint8Array(0),
          reply: null,
        }
        loops.set(socket, loop)
        release(loop)
        if (loops.size === LOOPS) connected()
      },
      drain(socket) {
        const loop = loops.get(socket)!
        loop.unsent = loop.unsent.subarray(socket.write(loop.unsent))
      },
      data(socket, chunk) {
        const loop = loops.get(socket)!
        const joined = new Uint8Array(loop.received.length + chunk.length)
        joined.set(loop.received)
        joined.set(chunk, loop.received.length)
        loop.received = joined
        if (joined.length < 4) return
        const size = new DataView(joined.buffer).getUint32(0)
        if (joined.length < 4 + size) return
        loop.received = joined.slice(4 + size)
        const reply = loop.reply
        loop.reply = null
        reply?.(joined.subarray(4, 4 + size))
      },
    },
  })
  const pythons = Array.from({ length: LOOPS }, () =>
    Bun.spawn([PYTHON, resolve(import.meta.dir, 'floor_loop.py'), path], { stderr: 'inherit' }),
  )
  await allConnected
  const server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    async fetch(request) {
      const body = new Uint8Array(await request.arrayBuffer())
      const loop = idle.pop() ?? (await new Promise<Loop>((resolve) => waiting.push(resolve)))
      const frame = new Uint8Array(4 + body.length)
      new DataView(frame.buffer).setUint32(0, body.length)
      frame.set(body, 4)
      const reply = await new Promise<Uint8Array>((resolve) => {
        loop.reply = resolve
        loop.unsent = frame.subarray(loop.socket.write(frame))
      })
      release(loop)
      return new Response(reply, { headers: { 'content-type': 'application/cbor' } })
    },
  })
  return {
    url: server.url.href,
    async stop() {
      server.stop(true)
      for (const python of pythons) python.kill()
      await Promise.all(pythons.map((python) => python.exited))
      listener.stop(true)
      rmSync(path, { force: true })
    },
  }
}
