// What the websocket transport remembers and holds (src/interop/webexec/ws/ledger.ts, budget.ts):
// a started id never runs again; its answer is kept within bounds; a forgotten answer is "gone".
import { describe, expect, test } from 'bun:test'
import { ByteBudget } from '../../src/interop/webexec/ws/budget.ts'
import { RequestLedger } from '../../src/interop/webexec/ws/ledger.ts'

const bytes = (n: number) => new Uint8Array(n)

describe('request ids', () => {
  test('new, then running (the same promise), then answered with the kept bytes', async () => {
    const ledger = new RequestLedger()
    expect(ledger.seen('a')).toEqual({ state: 'new' })
    const answer = Promise.resolve(bytes(3))
    ledger.start('a', answer)
    const running = ledger.seen('a')
    expect(running.state).toBe('running')
    ledger.settle('a', bytes(3), true)
    expect(ledger.seen('a')).toEqual({ state: 'answered', answer: bytes(3) })
  })

  test('an id that provably did not run is forgotten: it may run later', () => {
    const ledger = new RequestLedger()
    ledger.start('a', Promise.resolve(bytes(1)))
    ledger.settle('a', bytes(1), false)
    expect(ledger.seen('a')).toEqual({ state: 'new' })
  })

  test('an answer over half the byte budget is not kept: the id is gone, not new', () => {
    const ledger = new RequestLedger()
    ledger.start('big', Promise.resolve(bytes(1)))
    ledger.settle('big', bytes(33 * 1024 * 1024), true)
    expect(ledger.seen('big')).toEqual({ state: 'gone' })
  })

  test('past 128 kept answers the oldest answer goes, and its id stays known as run', () => {
    const ledger = new RequestLedger()
    for (let i = 0; i < 129; i++) {
      ledger.start(`id-${i}`, Promise.resolve(bytes(1)))
      ledger.settle(`id-${i}`, bytes(1), true)
    }
    expect(ledger.seen('id-0')).toEqual({ state: 'gone' })
    expect(ledger.seen('id-128').state).toBe('answered')
  })

  test('the byte budget: answers of 20 MiB each, the oldest ones go', () => {
    const ledger = new RequestLedger()
    for (let i = 0; i < 4; i++) {
      ledger.start(`id-${i}`, Promise.resolve(bytes(1)))
      ledger.settle(`id-${i}`, bytes(20 * 1024 * 1024), true)
    }
    expect(ledger.seen('id-0').state).toBe('gone')
    expect(ledger.seen('id-3').state).toBe('answered')
  })

  test('answers expire after 15 minutes, ids after an hour; a running one is never forgotten', () => {
    let now = 0
    const ledger = new RequestLedger(() => now)
    ledger.start('done', Promise.resolve(bytes(1)))
    ledger.settle('done', bytes(1), true)
    ledger.start('still', new Promise<Uint8Array>(() => {}))
    now = 16 * 60_000
    expect(ledger.seen('done').state).toBe('gone')
    now = 61 * 60_000
    expect(ledger.seen('done').state).toBe('new')
    expect(ledger.seen('still').state).toBe('running')
  })
})

describe('sessions', () => {
  test('known after a success, for two hours after the last one', () => {
    let now = 0
    const ledger = new RequestLedger(() => now)
    expect(ledger.knowsSession('s')).toBe(false)
    ledger.rememberSession('s')
    now = 119 * 60_000
    expect(ledger.knowsSession('s')).toBe(true)
    now = 121 * 60_000
    expect(ledger.knowsSession('s')).toBe(false)
  })

  test('the container id names this process, not a secret', () => {
    expect(new RequestLedger().containerId).toMatch(/^bg-[\w.-]+-[0-9a-f]{32}$/)
    expect(new RequestLedger().containerId).not.toBe(new RequestLedger().containerId)
  })
})

describe('the bytes of unanswered messages', () => {
  test('bounded per holder and in all; refused takes nothing; given back bytes make room', () => {
    const budget = new ByteBudget(100, 60)
    expect(budget.take('a', 50)).toBeNull()
    expect(budget.take('a', 20)).toMatch(/a already holds 50 bytes/)
    expect(budget.take('b', 45)).toBeNull()
    expect(budget.take('c', 10)).toMatch(/the server holds 95 bytes/)
    expect(budget.held).toBe(95)
    budget.give('a', 50)
    expect(budget.take('c', 10)).toBeNull()
    expect(budget.held).toBe(55)
  })

  test('from the body limit: four messages per key, sixteen in all', () => {
    const budget = ByteBudget.forMessagesOf(10)
    for (let i = 0; i < 4; i++) expect(budget.take('k', 10)).toBeNull()
    expect(budget.take('k', 1)).not.toBeNull()
  })
})
