// Pins the cbor-x profile against Python's cbor2, the decoder on the other side of
// every worker pipe and sandbox: what TS writes, cbor2 reads, and the other way round.
import { describe, expect, test } from 'bun:test'
import { resolve } from 'node:path'
import { decodeCbor, encodeCbor, TimestampText } from '../serializers/cbor.ts'
import { PROJECT_ROOT } from '../src/config.ts'
import { hex } from './support/vectors.ts'

const python = resolve(PROJECT_ROOT, '.venv/bin/python')

/** Runs a Python snippet with `data` (bytes from stdin) and returns what it wrote to stdout. */
function py(script: string, input: Uint8Array = new Uint8Array()): Uint8Array {
  const result = Bun.spawnSync({ cmd: [python, '-c', `import sys, cbor2\ndata = sys.stdin.buffer.read()\n${script}`], stdin: input, stderr: 'pipe' })
  if (result.exitCode !== 0) throw new Error(result.stderr.toString())
  return new Uint8Array(result.stdout)
}


const sample = {
  int: 10,
  negative: -7,
  float: 30.8,
  big: 1700000000123n,
  text: 'héllo',
  bytes: new Uint8Array([0, 1, 2, 255]),
  list: [1, 'two', null, true, false],
  nested: { a: { b: [1.5, -2.25] } },
  empty_map: {},
  empty_list: [],
  when: new Date('2026-11-26T12:00:00.000Z'),
}

describe('cbor profile', () => {
  test('plain maps and untagged byte strings, shortest headers', () => {
    expect(hex(encodeCbor({ a: 1 }))).toBe('a1616101')
    expect(hex(encodeCbor(new Uint8Array([1, 2])))).toBe('420102')
    expect(hex(encodeCbor(30.8))).toBe('fb403ecccccccccccd')
  })

  test('the encoder output is a stable copy', () => {
    const first = encodeCbor({ x: 1 })
    encodeCbor({ y: 2 })
    expect(hex(first)).toBe('a1617801')
  })

  test('cbor2 decodes what cbor-x encodes, to the right Python types', () => {
    const out = py(
      'v = cbor2.loads(data)\n' +
        'types = {k: type(x).__name__ for k, x in v.items()}\n' +
        'sys.stdout.write(repr(sorted(types.items())) + "\\n" + repr(v["float"]) + " " + repr(v["big"]) + " " + v["bytes"].hex() + " " + v["when"].isoformat())',
      encodeCbor(sample),
    )
    const [types, values] = new TextDecoder().decode(out).split('\n')
    expect(types).toBe(
      "[('big', 'int'), ('bytes', 'bytes'), ('empty_list', 'list'), ('empty_map', 'dict'), ('float', 'float'), ('int', 'int'), ('list', 'list'), ('negative', 'int'), ('nested', 'dict'), ('text', 'str'), ('when', 'datetime')]",
    )
    expect(values).toBe('30.8 1700000000123 000102ff 2026-11-26T12:00:00+00:00')
  })

  test('cbor-x decodes what cbor2 encodes', () => {
    const out = py(
      'import datetime\n' +
        'sys.stdout.buffer.write(cbor2.dumps({"sum": 30.8, "n": 2**40, "huge": 2**64 - 1, "neg": -(2**40), "b": b"\\x00\\xff", "l": [1, None, True], "t": datetime.datetime(2026, 11, 26, 12, tzinfo=datetime.timezone.utc)}))',
    )
    const value = decodeCbor(out) as Record<string, unknown>
    expect(value.sum).toBe(30.8)
    expect(value.n).toBe(2n ** 40n)
    expect(value.huge).toBe(2n ** 64n - 1n)
    expect(value.neg).toBe(-(2n ** 40n))
    expect(value.b).toEqual(new Uint8Array([0, 255]))
    expect(value.l).toEqual([1, null, true])
    // Tag 0 stays text, so a timestamp's UTC offset survives the trip through the proxy.
    expect(value.t).toEqual(new TimestampText('2026-11-26T12:00:00Z'))
  })

  test('a round trip through cbor2 is byte-identical for plain values', () => {
    const plain = { int: 10, float: 30.8, text: 'héllo', list: [1, 'two', null, true], nested: { a: [1.5, -2.25] }, bytes: new Uint8Array([9, 8]) }
    const encoded = encodeCbor(plain)
    expect(hex(py('sys.stdout.buffer.write(cbor2.dumps(cbor2.loads(data)))', encoded))).toBe(hex(encoded))
  })
})
