// Inference's websocket transport (GET /webexec/ws) against the real app, a real Bun server
// and real local workers: the handshake, heartbeats, runs by code and by hash, values of every
// type as Python sent them, errors in the shapes Inference raises from, chunking both ways,
// request-id dedup across connections, idle and drain closes, credentials and connection caps,
// quotas per request; a fuzzer of the framing; and a replay of the connections the real
// Inference client made (test/fixtures/webexec-ws, recorded by `npm run test:inference -- --record`).
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import fc from 'fast-check'
import { decodeCbor, Float64 } from '../../serializers/cbor.ts'
import { createApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { createBackends } from '../../src/backends/index.ts'
import { OpenSockets } from '../../src/http/websocket.ts'
import {
  AsFloat,
  encodeMap,
  encodeMessage,
  MAX_FRAME_BYTES,
  MessageAssembler,
  Packed,
} from '../../src/interop/webexec/ws/frames.ts'
import { readMsgpack } from '../../src/interop/webexec/ws/msgpack-read.ts'
import { runFrame, serveApp, SocketClient } from '../support/webexec-socket.ts'

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex')
const IDLE_S = 1
const MAX_BODY = 8 * 1024 * 1024
const config = loadConfig({
  BLOCKGATE_MIN_WARM_WORKERS: '1',
  BLOCKGATE_MAX_WORKERS: '4',
  BLOCKGATE_MAX_BODY_BYTES: String(MAX_BODY),
  BLOCKGATE_DEFAULT_TIMEOUT_MS: '2000',
  BLOCKGATE_WEBEXEC_WS_IDLE_TIMEOUT_S: String(IDLE_S),
  BLOCKGATE_WEBEXEC_WS_MAX_CONNECTIONS_PER_KEY: '6',
  BLOCKGATE_API_KEYS: JSON.stringify({
    keys: [
      { id: 'key-a', sha256: sha256('secret-a'), workspaces: ['acme', 'anonymous', 'other'] },
      { id: 'key-b', sha256: sha256('secret-b'), workspaces: ['acme'] },
      {
        id: 'key-slow',
        sha256: sha256('secret-slow'),
        workspaces: ['slow'],
        limits: { requests_per_second: 0.2, burst: 1, concurrent_runs: 1 },
      },
      { id: 'key-cap', sha256: sha256('secret-cap'), workspaces: ['acme'] },
      { id: 'inference-proof-key', sha256: sha256('replayed'), workspaces: ['anonymous'] },
    ],
  }),
})
const backends = createBackends(config)
let sockets = new OpenSockets()
let app = createApp({ config, backends, sockets })
const server = serveApp(() => app)
const KEY_A = { 'modal-key': 'key-a', 'modal-secret': 'secret-a' }
const url = (workspace = 'acme') =>
  `ws://127.0.0.1:${server.port}/webexec/ws?workspace_id=${workspace}`
const connect = (workspace = 'acme', headers: Record<string, string> = KEY_A) =>
  SocketClient.open(url(workspace), headers)
const opened: SocketClient[] = []
async function connected(workspace = 'acme', headers = KEY_A): Promise<SocketClient> {
  const client = await connect(workspace, headers)
  opened.push(client)
  return client
}

beforeAll(async () => {
  await backends.local!.start()
}, 60_000)
// Each test's connections are closed after it: a key holds at most six at once.
afterEach(async () => {
  const clients = opened.splice(0)
  for (const client of clients) client.close()
  await Promise.all(clients.map((client) => client.closed))
})
afterAll(async () => {
  server.stop(true)
  await backends.local!.stop()
})

const SUM = 'def run(self, a, b):\n    return {"sum": a + b}\n'

describe('the handshake and heartbeats', () => {
  test('hello is answered with protocol 2, the idle timeout and the dedup scope; heartbeats with acks', async () => {
    const client = await connected()
    const hello = await client.request({ _kind: 'hello', proto: 2, session_id: 'a'.repeat(32) })
    expect(hello).toEqual({
      _kind: 'hello',
      proto: 2,
      idle_timeout_s: IDLE_S,
      session_known: false,
      container_id: expect.stringMatching(/^bg-/),
    })
    expect(await client.request({ _kind: 'heartbeat' })).toEqual({ _kind: 'heartbeat_ack' })
    // A second hello is answered again, as Roboflow's server does.
    expect((await client.request({ _kind: 'hello', proto: 2 }))._kind).toBe('hello')
  })

  test('a session that had a success is known to the next connection of the same key', async () => {
    const session = crypto.randomUUID().replaceAll('-', '')
    const first = await connected()
    await first.request({ _kind: 'hello', proto: 2, session_id: session })
    expect(await first.request(runFrame(SUM, { a: 1, b: 2 }))).toMatchObject({ success: true })
    first.close()
    const second = await connected()
    const hello = await second.request({ _kind: 'hello', proto: 2, session_id: session })
    expect(hello.session_known).toBe(true)
    // The same session id under another key is another client's: not known.
    const other = await connected('acme', { 'modal-key': 'key-b', 'modal-secret': 'secret-b' })
    expect((await other.request({ _kind: 'hello', session_id: session })).session_known).toBe(false)
  })

  test('a heartbeating connection stays open past the idle timeout; a silent one gets `closing` and 1000', async () => {
    const alive = await connected()
    await alive.request({ _kind: 'hello', proto: 2, session_id: 'x' })
    const silent = await connected()
    await silent.request({ _kind: 'hello', proto: 2, session_id: 'y' })
    for (let beat = 0; beat < 4; beat++) {
      await Bun.sleep((IDLE_S * 1000) / 3)
      expect(await alive.request({ _kind: 'heartbeat' })).toEqual({ _kind: 'heartbeat_ack' })
    }
    expect(await silent.next()).toEqual({ _kind: 'closing' })
    expect(await silent.closed).toMatchObject({ code: 1000 })
    expect(await alive.request(runFrame(SUM, { a: 2, b: 2 }))).toMatchObject({
      success: true,
      result: { sum: 4 },
    })
    // Without a hello (a v1 client) the close comes without `closing`.
    const legacy = await connected()
    expect(await legacy.closed).toMatchObject({ code: 1000 })
    expect(legacy.frames).toHaveLength(0)
  }, 20_000)
})

describe('runs', () => {
  test('by code, then by hash on the same connection; answers carry the request id', async () => {
    const client = await connected()
    const first = await client.request(runFrame(SUM, { a: 10, b: 20 }, { requestId: 'r-1' }))
    expect(first).toMatchObject({
      success: true,
      result: { sum: 30 },
      stdout: null,
      stderr: null,
      request_id: 'r-1',
    })
    // Always a float64 on the wire (a whole value is read back as a Float64).
    const seconds = first.execution_time_seconds
    expect(seconds instanceof Float64 || typeof seconds === 'number').toBe(true)
    const second = await client.request(
      runFrame(SUM, { a: 1, b: 2 }, { hashOnly: true, requestId: 'r-2' }),
    )
    expect(second).toMatchObject({ success: true, result: { sum: 3 }, request_id: 'r-2' })
  })

  test('values keep their Python type: a whole float stays a float, bytes stay bytes, NaN, big ints, keys as text', async () => {
    const code =
      'def run(self, whole, blob, big, values):\n' +
      '    return {"whole": whole, "is_float": isinstance(whole, float), "blob": blob[::-1],\n' +
      '            "big": big + 1, "nan": float("nan"), "neg_zero": -0.0, "keys": {1: "one", (2, 3): "t"},\n' +
      '            "values": values, "nested": [1, 2.0, None, True]}\n'
    const frame = runFrame(code, {})
    // The inputs as Python packs them: 2.0 as a float64, whatever JavaScript thinks of it.
    const packed = encodeMap({
      ...frame,
      inputs: new Packed(
        encodeMap({
          whole: new AsFloat(2),
          blob: Uint8Array.of(1, 2, 3),
          big: 2n ** 62n,
          values: [1, 'two', new Uint8Array(0)],
        }),
      ),
    })
    const client = await connected()
    client.send(packed)
    const answer = (await client.next()) as { success: boolean; result: Record<string, unknown> }
    expect(answer.success).toBe(true)
    const result = answer.result
    expect(result.whole).toEqual(new Float64(2))
    expect(result.is_float).toBe(true)
    expect(result.blob).toEqual(Uint8Array.of(3, 2, 1))
    expect(result.big).toBe(2n ** 62n + 1n)
    expect(Number.isNaN(result.nan as number)).toBe(true)
    expect(Object.is((result.neg_zero as Float64).value, -0)).toBe(true)
    expect(result.keys).toEqual({ '1': 'one', '(2, 3)': 't' })
    expect(result.values).toEqual([1, 'two', new Uint8Array(0)])
    expect(result.nested).toEqual([1, new Float64(2), null, true])
  })

  test('an image arrives as Inference sends it (raw JPEG bytes) and goes back as base64 text', async () => {
    const vector = decodeCbor(
      readFileSync(join(import.meta.dir, '../../serializers/image/vectors/encoded-jpeg.cbor')),
    ) as { value: { encoded: Uint8Array } }
    const jpeg = Buffer.from(vector.value.encoded)
    const code =
      'def run(self, image):\n' +
      '    h, w = image.numpy_image.shape[:2]\n' +
      '    return {"same": image, "size": [w, h], "parent": image.parent_metadata.parent_id}\n'
    const client = await connected()
    const answer = await client.request(
      runFrame(code, {
        image: { _type: 'workflow_image', _jpeg_bytes: new Uint8Array(jpeg), parent_id: 'cam-1' },
      }),
    )
    expect(answer.success).toBe(true)
    const result = answer.result as Record<string, any>
    expect(result.parent).toBe('cam-1')
    // Not re-encoded: the bytes that came in go back, as the base64 form the client reads.
    expect(result.same).toMatchObject({
      _type: 'workflow_image',
      type: 'base64',
      parent_id: 'cam-1',
    })
    expect(Buffer.from(result.same.value, 'base64').equals(jpeg)).toBe(true)
  })

  test('a block that raises: its exception, its line in code_str and its function, not server_error', async () => {
    const code =
      'def run(self, value):\n    doubled = value * 2\n    return {"r": doubled / (value - value)}\n'
    const client = await connected()
    const answer = await client.request(runFrame(code, { value: 3 }, { requestId: 'boom' }))
    expect(answer).toMatchObject({
      success: false,
      error: 'division by zero',
      error_type: 'ZeroDivisionError',
      line_number: 3,
      function_name: 'run',
      request_id: 'boom',
    })
    expect(answer.server_error).toBeUndefined()
    // The connection serves on.
    expect(await client.request(runFrame(SUM, { a: 1, b: 1 }))).toMatchObject({ success: true })
  })

  test('an unknown hash is UnknownCodeHash, marked as the server’s, with the id resendable', async () => {
    const code = `def run(self):\n    return {"n": ${Math.random()}}\n`
    const client = await connected()
    const frame = runFrame(code, {}, { hashOnly: true, requestId: 'unknown-1' })
    const answer = await client.request(frame)
    expect(answer).toMatchObject({
      success: false,
      error_type: 'UnknownCodeHash',
      server_error: true,
      request_id: 'unknown-1',
    })
    // It did not run, so the same id with the code runs (the client resends with a new id,
    // but a resend of the same one must not be refused either).
    const again = await client.request({ ...frame, code_str: code, imports: [] })
    expect(again).toMatchObject({ success: true, request_id: 'unknown-1' })
  })

  test('malformed requests are InvalidRequest, marked as the server’s; the connection serves on', async () => {
    const client = await connected()
    const noCode = await client.request({ run_function_name: 'run', request_id: 'n-1' })
    expect(noCode).toMatchObject({
      error_type: 'InvalidRequest',
      server_error: true,
      request_id: 'n-1',
    })
    const badName = await client.request({ ...runFrame(SUM), run_function_name: 'not a name' })
    expect(badName).toMatchObject({ error_type: 'InvalidRequest', server_error: true })
    const badInputs = await client.request({ ...runFrame(SUM), inputs: [1, 2] })
    expect(badInputs).toMatchObject({ error_type: 'InvalidRequest', server_error: true })
    // An id the answer could not carry: answered without one (the client drops the socket).
    const longId = await client.request({ ...runFrame(SUM), request_id: 'x'.repeat(129) })
    expect(longId).toMatchObject({ error_type: 'InvalidRequest', server_error: true })
    expect(longId.request_id).toBeUndefined()
    const unknownKind = await client.request({ _kind: 'ping', request_id: 'k-1' })
    expect(unknownKind).toMatchObject({ error_type: 'InvalidRequest', request_id: 'k-1' })
    expect(await client.request(runFrame(SUM, { a: 5, b: 5 }))).toMatchObject({
      result: { sum: 10 },
    })
  })

  test('a message over 1 MiB is chunked both ways, with the same limits', async () => {
    const code =
      'def run(self, blob):\n    return {"size": len(blob), "echo": blob[:10], "big": b"y" * 3145728}\n'
    const client = await connected()
    client.send(runFrame(code, { blob: new Uint8Array(2_097_169).fill(120) }))
    const answer = (await client.next()) as { success: boolean; result: Record<string, any> }
    expect(answer.success).toBe(true)
    expect(answer.result.size).toBe(2_097_169)
    expect(answer.result.big.byteLength).toBe(3_145_728)
    // {"_chunked": 4} and four slices, none over 1 MiB.
    const [header, ...chunks] = client.frames.slice(-5)
    expect(readMsgpack(header!)).toEqual({ _chunked: 4 })
    expect(chunks.every((chunk) => chunk.byteLength <= MAX_FRAME_BYTES)).toBe(true)
  })
})

describe('request ids: a request runs once, whatever the connection', () => {
  const COUNTER =
    'COUNT = [0]\ndef run(self, pause):\n    import time\n    time.sleep(pause)\n    COUNT[0] += 1\n    return {"count": COUNT[0]}\n'

  test('a resend of an answered id gets the same answer again, on another connection, without a rerun', async () => {
    const id = crypto.randomUUID()
    const first = await connected('other')
    const answer = await first.request(runFrame(COUNTER, { pause: 0 }, { requestId: id }))
    first.close()
    const second = await connected('other')
    expect(await second.request(runFrame(COUNTER, { pause: 0 }, { requestId: id }))).toEqual(answer)
    const next = await second.request(runFrame(COUNTER, { pause: 0 }))
    expect((next.result as { count: number }).count).toBe(
      (answer.result as { count: number }).count + 1,
    )
  })

  test('a resend while the first is still running waits for it; the block runs once', async () => {
    const id = crypto.randomUUID()
    const first = await connected('other')
    first.send(runFrame(COUNTER, { pause: 0.6 }, { requestId: id }))
    await Bun.sleep(150)
    first.close() // the connection goes; the run does not
    const second = await connected('other')
    const resent = await second.request(runFrame(COUNTER, { pause: 0.6 }, { requestId: id }))
    const after = await second.request(runFrame(COUNTER, { pause: 0 }))
    expect((after.result as { count: number }).count).toBe(
      (resent.result as { count: number }).count + 1,
    )
  })

  test('another key’s request id is not this key’s answer', async () => {
    const id = crypto.randomUUID()
    const mine = await connected('acme')
    await mine.request(runFrame(SUM, { a: 1, b: 1 }, { requestId: id }))
    const theirs = await connected('acme', { 'modal-key': 'key-b', 'modal-secret': 'secret-b' })
    const answer = await theirs.request(runFrame(SUM, { a: 4, b: 4 }, { requestId: id }))
    expect(answer).toMatchObject({ success: true, result: { sum: 8 } })
  })
})

describe('credentials, caps and quotas', () => {
  async function handshake(path: string, headers: Record<string, string>) {
    const response = await fetch(`http://127.0.0.1:${server.port}${path}`, {
      headers: {
        ...headers,
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
      },
    })
    return { status: response.status, reason: response.headers.get('x-blockgate-error') }
  }

  test('the upgrade is refused with a status, and the reason in a header the client shows', async () => {
    expect(await handshake('/webexec/ws?workspace_id=acme', {})).toMatchObject({
      status: 401,
      reason: expect.stringContaining('Modal-Key'),
    })
    expect(
      await handshake('/webexec/ws?workspace_id=acme', {
        'modal-key': 'key-a',
        'modal-secret': 'x',
      }),
    ).toMatchObject({ status: 401 })
    expect(await handshake('/webexec/ws?workspace_id=slow', KEY_A)).toMatchObject({
      status: 403,
      reason: expect.stringContaining('workspace "slow"'),
    })
    expect(await handshake('/webexec/ws?workspace_id=bad%20name', KEY_A)).toMatchObject({
      status: 400,
    })
    const plain = await fetch(`http://127.0.0.1:${server.port}/webexec/ws?workspace_id=acme`, {
      headers: KEY_A,
    })
    expect(plain.status).toBe(426)
  })

  test('one key cannot hold every connection: past its cap the upgrade is a 429', async () => {
    const key = { 'modal-key': 'key-cap', 'modal-secret': 'secret-cap' }
    const held: SocketClient[] = []
    for (let i = 0; i < 6; i++) held.push(await connect('acme', key))
    const refused = await handshake('/webexec/ws?workspace_id=acme', key)
    expect(refused).toMatchObject({ status: 429, reason: expect.stringContaining('key-cap') })
    // Another key still connects; a closed socket gives its place back.
    const other = await connected()
    expect(await other.request({ _kind: 'heartbeat' })).toEqual({ _kind: 'heartbeat_ack' })
    held[0]!.close()
    await held[0]!.closed
    await Bun.sleep(50)
    const again = await connect('acme', key)
    held.push(again)
    for (const client of held) client.close()
    await Promise.all(held.map((client) => client.closed))
  })

  test('each request takes the key’s quota: over its rate, Overloaded, marked as the server’s', async () => {
    const client = await connected('slow', {
      'modal-key': 'key-slow',
      'modal-secret': 'secret-slow',
    })
    expect(await client.request(runFrame(SUM, { a: 1, b: 1 }))).toMatchObject({ success: true })
    const refused = await client.request(runFrame(SUM, { a: 1, b: 1 }, { requestId: 'q-2' }))
    expect(refused).toMatchObject({
      success: false,
      error_type: 'Overloaded',
      server_error: true,
      request_id: 'q-2',
    })
  })
})

describe('a hostile peer gets an error message and 1011; the server serves on', () => {
  async function expectProtocolError(send: (client: SocketClient) => void, pattern: RegExp) {
    const client = await connected()
    send(client)
    const error = await client.next()
    expect(error).toMatchObject({ success: false, server_error: true })
    expect(error!.error).toMatch(pattern)
    expect(error!.request_id).toBeUndefined()
    expect(await client.closed).toMatchObject({ code: 1011 })
  }

  test('malformed msgpack', () =>
    expectProtocolError(
      (c) => c.sendRaw(Uint8Array.of(0xc1)),
      /websocket handler failed: .*msgpack/,
    ))
  test('a frame that is not a map', () =>
    expectProtocolError(
      (c) => c.sendRaw(Uint8Array.of(0x92, 1, 2)),
      /must be a msgpack map, not an array/,
    ))
  test('a text frame', () =>
    expectProtocolError((c) => c.sendRaw('{"_kind": "hello"}'), /text frame/))
  test('a chunk count over the limit', () =>
    expectProtocolError((c) => c.sendRaw(encodeMessage({ _chunked: 5000 })), /_chunked must be/))
  test('a chunked message over the body limit', () =>
    expectProtocolError((c) => {
      c.sendRaw(encodeMessage({ _chunked: 9 }))
      for (let i = 0; i < 9; i++) c.sendRaw(new Uint8Array(MAX_FRAME_BYTES))
    }, /above the 8388608-byte limit/))
  test(
    'chunks that never arrive',
    () =>
      expectProtocolError((c) => {
        c.sendRaw(encodeMessage({ _chunked: 3 }))
        c.sendRaw(new Uint8Array(10))
      }, /chunk 2 of 3 did not arrive within 1 s/),
    10_000,
  )
  test('messages sent ahead of their answers', () =>
    expectProtocolError((c) => {
      const slow = runFrame('def run(self):\n    import time; time.sleep(0.5)\n    return {}\n')
      for (let i = 0; i < 4; i++) c.send({ ...slow, request_id: `ahead-${i}` })
    }, /more than 2 messages sent ahead/))

  test('one key’s unanswered messages cannot take the server’s memory: four maximal ones at most', async () => {
    // 8 MiB body limit: a key may hold 32 MiB of messages not yet answered, all connections together.
    const key = { 'modal-key': 'key-cap', 'modal-secret': 'secret-cap' }
    const chunk = new Uint8Array(MAX_FRAME_BYTES)
    const held: SocketClient[] = []
    for (let i = 0; i < 4; i++) {
      const client = await connect('acme', key)
      held.push(client)
      client.sendRaw(encodeMessage({ _chunked: 8 }))
      for (let c = 0; c < 7; c++) client.sendRaw(chunk) // one chunk short: never handled
    }
    await Bun.sleep(100)
    const fifth = await connect('acme', key)
    held.push(fifth)
    fifth.sendRaw(encodeMessage({ _chunked: 8 }))
    for (let c = 0; c < 7; c++) fifth.sendRaw(chunk)
    const error = await fifth.next()
    expect(error?.error).toMatch(/cannot be held: key key-cap already holds \d+ bytes/)
    expect((await fifth.closed).code).toBe(1011)
    // Another key is not held back, and closing the connections gives the bytes back.
    const other = await connected()
    expect(await other.request(runFrame(SUM, { a: 1, b: 1 }))).toMatchObject({ success: true })
    for (const client of held) client.close()
    await Promise.all(held.map((client) => client.closed))
    const again = await connect('acme', key)
    held.push(again)
    expect(await again.request(runFrame(SUM, { a: 2, b: 1 }))).toMatchObject({ success: true })
    again.close()
    await again.closed
  })

  test('a frame larger than any allowed is closed by the server (1009) before it is read whole', async () => {
    const client = await connected()
    client.sendRaw(new Uint8Array(3 * 1024 * 1024))
    expect((await client.closed).code).toBe(1009)
  })

  test('frames after the close are not read', async () => {
    const client = await connected()
    await client.request({ _kind: 'hello', proto: 2 })
    client.sendRaw(Uint8Array.of(0xc1)) // closes it
    client.sendRaw(encodeMessage(runFrame(SUM, { a: 1, b: 2 })))
    expect(await client.next()).toMatchObject({ server_error: true })
    expect(await client.next()).toBeNull()
  })

  test('random frames: every connection ends in an answer, an error message or a clean close', async () => {
    const frames = fc.array(
      fc.oneof(
        fc.uint8Array({ maxLength: 64 }),
        fc.constantFrom(
          encodeMessage({ _kind: 'heartbeat' }),
          encodeMessage({ _chunked: 2 }),
          encodeMessage({ _kind: 'hello', proto: 2, session_id: 1 }),
          encodeMessage({ code_hash: 'x', run_function_name: 'run', request_id: 'f' }),
          encodeMessage(runFrame(SUM, { a: 1, b: 2 })),
        ),
      ),
      { minLength: 1, maxLength: 6 },
    )
    await fc.assert(
      fc.asyncProperty(frames, async (sent) => {
        const client = await connect()
        for (const frame of sent) client.sendRaw(frame)
        // Read until it goes quiet or closes: nothing may hang past the chunk or idle timeouts.
        const deadline = Date.now() + 200
        while (Date.now() < deadline) {
          const message = await client.next(250).catch(() => undefined)
          if (message === null || message === undefined) break
          expect(message._kind !== undefined || 'success' in message).toBe(true)
        }
        client.close()
        await client.closed
      }),
      { numRuns: 40 },
    )
    const after = await connected()
    expect(await after.request(runFrame(SUM, { a: 2, b: 3 }))).toMatchObject({ result: { sum: 5 } })
  }, 60_000)
})

describe('closes the server decides', () => {
  test('a drain closes idle connections with `closing` and 1000, and lets a run in flight answer first', async () => {
    const idle = await connected()
    await idle.request({ _kind: 'hello', proto: 2 })
    const busy = await connected()
    await busy.request({ _kind: 'hello', proto: 2 })
    busy.send(
      runFrame('def run(self):\n    import time; time.sleep(0.4)\n    return {"done": 1}\n'),
    )
    await Bun.sleep(100)
    const drained = sockets.closeAll(5_000)
    expect(await idle.next()).toEqual({ _kind: 'closing' })
    expect(await busy.next()).toMatchObject({ success: true, result: { done: 1 } })
    expect(await busy.next()).toEqual({ _kind: 'closing' })
    expect((await busy.closed).code).toBe(1000)
    await drained
    expect(sockets.size).toBe(0)
  })

  test('a connection past its lifetime is closed between requests, never during one', async () => {
    const short = loadConfig({ ...process.env, BLOCKGATE_WEBEXEC_WS_MAX_CONNECTION_S: '1' })
    const shortSockets = new OpenSockets()
    const shortApp = createApp({
      config: { ...config, webexec: short.webexec },
      backends,
      sockets: shortSockets,
    })
    const shortServer = serveApp(() => shortApp)
    try {
      const client = await SocketClient.open(
        `ws://127.0.0.1:${shortServer.port}/webexec/ws?workspace_id=acme`,
        KEY_A,
      )
      await client.request({ _kind: 'hello', proto: 2 })
      const answer = await client.request(
        runFrame('def run(self):\n    import time; time.sleep(1.2)\n    return {"ok": True}\n'),
      )
      expect(answer).toMatchObject({ success: true, result: { ok: true } })
      expect(await client.next()).toEqual({ _kind: 'closing' })
      expect((await client.closed).code).toBe(1000)
    } finally {
      shortServer.stop(true)
    }
  }, 15_000)
})

// ---------------------------------------------------------------------------------------------
// The connections the real client made (recorded by `npm run test:inference -- --record`),
// replayed frame by frame: each answer must be the one the client got, apart from timings.

type RecordedFrame =
  | { from: 'client' | 'server'; bytes: string }
  | { from: 'client' | 'server'; close: number }
  | { from: 'relay'; event: 'restart' | 'close-when-idle' }

const fixtures = join(import.meta.dir, '../fixtures/webexec-ws')
const recordings = existsSync(fixtures)
  ? readdirSync(fixtures)
      .filter((name) => name.endsWith('.json'))
      .sort()
  : []

/** An answer without what differs per run: timings, our statistics, the dedup scope's id. */
function comparable(message: Record<string, unknown>): Record<string, unknown> {
  const {
    blockgate: _,
    execution_time_seconds: __,
    container_id: ___,
    session_known: ____,
    ...rest
  } = message
  return rest
}

function messagesOf(frames: Uint8Array[]): Record<string, unknown>[] {
  const assembler = new MessageAssembler()
  const messages: Record<string, unknown>[] = []
  for (const frame of frames) {
    const assembled = assembler.push(frame)
    if ('message' in assembled) messages.push(assembled.message)
  }
  return messages
}

// As the recording blockgate was configured (test/inference/run.ts): a 2 s idle timeout.
const replayConfig = {
  ...config,
  webexec: { ...config.webexec, socket: { ...config.webexec.socket, idleTimeoutS: 2 } },
}

describe('connections recorded from the real Inference client', () => {
  test('the recordings cover the issue’s cases', () => {
    const steps = new Set<string>()
    const kinds = new Set<string>()
    for (const name of recordings) {
      const { frames } = JSON.parse(readFileSync(join(fixtures, name), 'utf8')) as {
        frames: RecordedFrame[]
      }
      const sent = { client: [] as Uint8Array[], server: [] as Uint8Array[] }
      for (const frame of frames) {
        if (frame.from === 'relay') kinds.add(frame.event)
        if (!('bytes' in frame)) continue
        const bytes = new Uint8Array(Buffer.from(frame.bytes, 'base64'))
        sent[frame.from].push(bytes)
        if (bytes.byteLength < 64 && '_chunked' in (readMsgpack(bytes) as object))
          kinds.add(`${frame.from} chunked`)
      }
      for (const message of [...messagesOf(sent.client), ...messagesOf(sent.server)]) {
        const context = message.workflow_context as { step_name?: string } | undefined
        if (typeof message._kind === 'string') kinds.add(message._kind)
        if (typeof message.error_type === 'string') kinds.add(message.error_type)
        if (context?.step_name) steps.add(context.step_name)
      }
    }
    for (const step of ['sum', 'after_restart', 'noise', 'raiser', 'server_closes'])
      expect(steps).toContain(step)
    for (const kind of ['hello', 'heartbeat', 'heartbeat_ack', 'client chunked', 'server chunked'])
      expect(kinds).toContain(kind)
    for (const kind of ['UnknownCodeHash', 'ZeroDivisionError', 'restart', 'close-when-idle'])
      expect(kinds).toContain(kind)
  })

  for (const name of recordings) {
    test(`replayed: ${name}`, async () => {
      const recorded = JSON.parse(readFileSync(join(fixtures, name), 'utf8')) as {
        path: string
        frames: RecordedFrame[]
      }
      // The connections follow one another on one blockgate, as they were made: a fresh one
      // (no code known yet) for the first.
      if (name === recordings[0]) {
        sockets = new OpenSockets()
        app = createApp({ config: replayConfig, backends, sockets })
      }
      let client = await SocketClient.open(`ws://127.0.0.1:${server.port}${recorded.path}`, {
        'modal-key': 'inference-proof-key',
        'modal-secret': 'replayed',
      })
      let hello: Uint8Array | null = null
      const expected: Uint8Array[] = []
      let received = 0
      const check = async () => {
        const want = messagesOf(expected.splice(0)).filter((m) => m._kind !== 'closing')
        for (const message of want) {
          let got = await client.next()
          while (got?._kind === 'closing') got = await client.next()
          expect(got && comparable(got)).toEqual(comparable(message))
          received += 1
        }
      }
      for (const frame of recorded.frames) {
        if (frame.from === 'server' && 'bytes' in frame) {
          expected.push(new Uint8Array(Buffer.from(frame.bytes, 'base64')))
          continue
        }
        await check()
        if (frame.from === 'relay' && frame.event === 'restart') {
          // The front "restarted" blockgate under the open socket, and said hello again.
          client.close()
          sockets = new OpenSockets()
          app = createApp({ config: replayConfig, backends, sockets })
          client = await SocketClient.open(`ws://127.0.0.1:${server.port}${recorded.path}`, {
            'modal-key': 'inference-proof-key',
            'modal-secret': 'replayed',
          })
          if (hello) {
            client.sendRaw(hello)
            await client.next()
          }
        } else if (frame.from === 'relay') {
          await sockets.closeAll(5_000)
        } else if ('bytes' in frame) {
          const bytes = new Uint8Array(Buffer.from(frame.bytes, 'base64'))
          if (
            bytes.byteLength < 256 &&
            (readMsgpack(bytes) as { _kind?: string })?._kind === 'hello'
          )
            hello = bytes
          client.sendRaw(bytes)
        }
      }
      await check()
      client.close()
      expect(received).toBeGreaterThan(0)
    }, 30_000)
  }
})
