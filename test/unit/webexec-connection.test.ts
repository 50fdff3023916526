// One websocket connection (src/interop/webexec/ws/connection.ts) on a socket that stops
// taking frames: the peer that never reads is dropped with 1011, and its bytes given back.
import { describe, expect, test } from 'bun:test'
import { ROOT_CONTEXT } from '@opentelemetry/api'
import type { ServerWebSocket } from 'bun'
import { Quotas } from '../../src/auth/quotas.ts'
import type { SocketSession } from '../../src/http/websocket.ts'
import type { WebexecRunner } from '../../src/interop/webexec/run.ts'
import { ByteBudget } from '../../src/interop/webexec/ws/budget.ts'
import { WebexecConnection } from '../../src/interop/webexec/ws/connection.ts'
import { encodeMessage } from '../../src/interop/webexec/ws/frames.ts'
import { RequestLedger } from '../../src/interop/webexec/ws/ledger.ts'

describe('a peer that stops reading', () => {
  test('is dropped with 1011 once a send waits past the stall timeout; the connection ends', async () => {
    const budget = new ByteBudget(1 << 20, 1 << 20)
    let closedWith = 0
    let ended = false
    const connection = new WebexecConnection({
      runner: {} as WebexecRunner, // never reached: only heartbeats are sent
      ledger: new RequestLedger(),
      budget,
      holder: 'key k',
      quotas: new Quotas(null),
      caller: null,
      workspace: 'w',
      idleTimeoutS: 10,
      maxConnectionS: 600,
      maxMessageBytes: 1 << 20,
      parent: ROOT_CONTEXT,
      onClosed: () => {
        ended = true
      },
      stallTimeoutMs: 50,
    })
    const socket = {
      send: () => -1, // queued, and the socket never drains
      close: (code: number) => {
        closedWith = code
        connection.closed(code, '')
      },
    } as unknown as ServerWebSocket<SocketSession>
    connection.opened(socket)
    connection.received(encodeMessage({ _kind: 'heartbeat' }))
    expect(budget.held).toBeGreaterThan(0) // the message is being handled
    await Bun.sleep(150)
    expect(closedWith).toBe(1011)
    expect(ended).toBe(true)
    expect(budget.held).toBe(0)
    // Anything after is not read.
    connection.received(encodeMessage({ _kind: 'heartbeat' }))
    expect(budget.held).toBe(0)
  })
})
