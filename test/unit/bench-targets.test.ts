// bench/targets.ts: each target is judged on two rows of one run, in the direction its kind
// says, and a target whose rows were not measured says so instead of passing.
import { describe, expect, test } from 'bun:test'
import { rowOf, type Row } from '../../bench/stats.ts'
import { checkTargets, describeTarget } from '../../bench/targets.ts'

const row = (
  fields: Partial<Row> & Pick<Row, 'scenario' | 'backend' | 'payload'>,
  p50: number,
  opsPerSecond?: number,
) =>
  rowOf(
    { name: fields.backend, target: 'local', ...fields },
    [[p50]],
    opsPerSecond ? [1 / opsPerSecond] : undefined,
  )

const target = (rows: Row[], id: string) => checkTargets(rows).find((result) => result.id === id)!

describe('bench targets', () => {
  test('a ratio holds at or under its limit, and names both rows', () => {
    const rows = [
      row({ scenario: 'warm-start', backend: 'local-zygote', payload: '1080p-frame' }, 15),
      row(
        {
          scenario: 'http-throughput',
          backend: 'bun-echo',
          payload: '1080p-frame',
          concurrency: 1,
        },
        10,
      ),
    ]
    const result = target(rows, '1080p-frame')
    expect(result.value).toBe(1.5)
    expect(result.holds).toBe(true)
    expect(result.measured).toContain('local-zygote')
    expect(result.floor).toContain('bun-echo')
    rows[0] = row({ scenario: 'warm-start', backend: 'local-zygote', payload: '1080p-frame' }, 16)
    expect(target(rows, '1080p-frame').holds).toBe(false)
  })

  test('an added time is the difference of the p50s', () => {
    const rows = [
      row(
        { scenario: 'http-throughput', backend: 'local-zygote', payload: 'no-op', concurrency: 1 },
        0.5,
      ),
      row(
        { scenario: 'http-throughput', backend: 'bun-echo', payload: 'no-op', concurrency: 1 },
        0.2,
      ),
    ]
    const result = target(rows, 'no-op-concurrency-1')
    expect(result.value).toBe(0.3)
    expect(result.holds).toBe(false)
    expect(describeTarget(result)).toEqual({ value: '+0.3 ms', limit: '≤ +0.25 ms' })
  })

  test('a throughput share must reach its limit from below', () => {
    const rows = [
      row(
        { scenario: 'http-throughput', backend: 'local-zygote', payload: 'no-op', concurrency: 64 },
        20,
        7000,
      ),
      row(
        {
          scenario: 'http-throughput',
          backend: 'bun-forward-python',
          payload: 'no-op',
          concurrency: 64,
        },
        8,
        10000,
      ),
    ]
    const result = target(rows, 'no-op-concurrency-64')
    expect(result.value).toBe(0.7)
    expect(result.holds).toBe(true)
    expect(describeTarget(result).value).toBe('70%')
  })

  test('a target whose rows were not measured is neither held nor missed', () => {
    const results = checkTargets([])
    expect(results.length).toBeGreaterThan(0)
    for (const result of results) {
      expect(result.holds).toBeNull()
      expect(describeTarget(result).value).toBe('not measured')
    }
  })
})
