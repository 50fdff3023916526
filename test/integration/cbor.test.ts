// Pins the cbor-x profile against Python's cbor2, the decoder on the other side of
// every worker pipe and sandbox: what TS writes, cbor2 reads, and the other way round.
import { describe, expect, test } from 'bun:test'
import { resolve } from 'node:path'
import {
  BIGNUM,
  CborLimitExceeded,
  decodeCbor,
  encodeCbor,
  Tag,
  TimestampText,
} from '../../serializers/cbor.ts'
import { decodeKinds } from '../../serializers/index.ts'
import { PROJECT_ROOT } from '../../src/config.ts'
import { cbor, join, magnitudeOf, patternBytes } from '../support/cbor-bytes.ts'
import { hex } from '../support/vectors.ts'

const python = resolve(PROJECT_ROOT, '.venv/bin/python')

/** Runs a Python snippet with `data` (bytes from stdin) and returns what it wrote to stdout. */
function py(script: string, input: Uint8Array = new Uint8Array()): Uint8Array {
  const result = Bun.spawnSync({
    cmd: [python, '-c', `import sys, cbor2\ndata = sys.stdin.buffer.read()\n${script}`],
    stdin: input,
    stderr: 'pipe',
  })
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
    const plain = {
      int: 10,
      float: 30.8,
      text: 'héllo',
      list: [1, 'two', null, true],
      nested: { a: [1.5, -2.25] },
      bytes: new Uint8Array([9, 8]),
    }
    const encoded = encodeCbor(plain)
    expect(hex(py('sys.stdout.buffer.write(cbor2.dumps(cbor2.loads(data)))', encoded))).toBe(
      hex(encoded),
    )
  })
})

/** Milliseconds `run` takes (it may throw: the time is what matters here). */
function elapsedMs(run: () => unknown): number {
  const started = performance.now()
  try {
    run()
  } catch {
    // timed either way
  }
  return performance.now() - started
}

describe('bignums (tags 2 and 3)', () => {
  test('decode to the exact integer, in linear time, at every size up to the limit', () => {
    for (const size of [0, 1, 8, 9, 64, 1000, BIGNUM.maxBytes]) {
      const magnitude = patternBytes(size, size)
      expect(decodeCbor(cbor.bignum(magnitude))).toBe(magnitudeOf(magnitude))
      expect(decodeCbor(cbor.bignum(magnitude, true))).toBe(-1n - magnitudeOf(magnitude)) // tag 3 is -1 - n
    }
    expect(decodeCbor(cbor.bignum(new Uint8Array([0, 0, 1, 0])))).toBe(256n) // leading zeros are allowed
    const largest = cbor.array(
      ...Array.from({ length: 100 }, (_, i) => cbor.bignum(patternBytes(BIGNUM.maxBytes, i))),
    )
    decodeCbor(largest)
    // cbor-x's own loop took ~5 ms for one 2 KiB bignum, 1.2 s for one of 64 KB.
    expect(elapsedMs(() => decodeCbor(largest))).toBeLessThan(50)
  })

  test('a bignum over the limit is refused at once, with the limit and where it is', () => {
    const body = cbor.map(['a', cbor.uint(1)], ['x', cbor.bignum(patternBytes(256 * 1024))])
    expect(elapsedMs(() => decodeCbor(body))).toBeLessThan(50) // cbor-x: 13 s (64 KB: 1.2 s)
    expect(() => decodeCbor(body)).toThrow(CborLimitExceeded)
    expect(() => decodeCbor(body)).toThrow(
      `a bignum (tag 2) of 262144 bytes (its bytes from offset 12) is over the ${BIGNUM.maxBytes}-byte limit`,
    )
    expect(() => decodeCbor(cbor.bignum(patternBytes(BIGNUM.maxBytes + 1), true))).toThrow(
      /tag 3\) of 2049 bytes .* over the 2048-byte limit/,
    )
  })

  test('a bignum must hold a byte string', () => {
    expect(() => decodeCbor(cbor.tag(2, cbor.uint(5)))).toThrow(
      'a bignum (tag 2) must hold a byte string',
    )
    expect(() => decodeCbor(cbor.tag(3, cbor.text('12')))).toThrow(
      'a bignum (tag 3) must hold a byte string',
    )
  })

  test('big integers are written as cbor2 writes them, quickly, and cross both ways unchanged', () => {
    const values = [
      2n ** 64n,
      -(2n ** 64n) - 1n,
      2n ** 100n + 7n,
      -(2n ** 300n),
      2n ** 16383n + 12345n,
      -(2n ** 16383n),
    ]
    const encoded = encodeCbor({ values, nested: { deep: [values[2]] } })
    const back = py('v = cbor2.loads(data)\nsys.stdout.buffer.write(cbor2.dumps(v))', encoded)
    expect(hex(back)).toBe(hex(encoded)) // byte for byte what cbor2 writes for the same ints
    expect(decodeCbor(back)).toEqual({ values, nested: { deep: [values[2]] } })
    // -2**64 fits a CBOR negative integer, which cbor2 writes; cbor-x writes it as tag 3 (as it always did).
    expect(
      decodeCbor(
        py('sys.stdout.buffer.write(cbor2.dumps(cbor2.loads(data)))', encodeCbor(-(2n ** 64n))),
      ),
    ).toBe(-(2n ** 64n))
    const fromPython = py(
      'sys.stdout.buffer.write(cbor2.dumps([2**16383 + 12345, -(2**16383), -(2**64) - 1, 2**64]))',
    )
    expect(decodeCbor(fromPython)).toEqual([
      2n ** 16383n + 12345n,
      -(2n ** 16383n),
      -(2n ** 64n) - 1n,
      2n ** 64n,
    ])
    const many = Array.from({ length: 200 }, (_, i) => 2n ** 16380n + BigInt(i))
    encodeCbor(many)
    expect(elapsedMs(() => encodeCbor(many))).toBeLessThan(100) // cbor-x's own loop: 1.6 ms each, 320 ms
  })
})

describe('tags cbor-x would give a meaning to', () => {
  // Each of these made cbor-x build something (a Date, a float, an Error or RegExp, a Set,
  // a Map, a record object, a shared reference) or read state left by an earlier body.
  const inertTags: [number, Uint8Array][] = [
    [4, cbor.array(cbor.uint(1), cbor.uint(27315))], // decimal fraction: a lossy double
    [5, cbor.array(cbor.uint(1), cbor.uint(3))], // bigfloat
    [6, cbor.uint(3)], // packed reference
    [14, cbor.uint(1)], // bundled string reference
    [15, cbor.uint(1)],
    [27, cbor.array(cbor.text('RegExp'), cbor.text('(a+)+$'))], // an object built from a class name
    [28, cbor.map(['a', cbor.uint(1)])], // shareable
    [29, cbor.uint(0)], // shared reference
    [51, cbor.array(cbor.array(), cbor.array(), cbor.array(), cbor.uint(1))], // packed table
    [105, cbor.array(cbor.uint(0xe001), cbor.array(cbor.text('a')), cbor.uint(1))], // legacy record
    [258, cbor.array(cbor.uint(1), cbor.uint(1))], // a Set
    [259, cbor.map(['a', cbor.uint(1)])], // a Map
    [55799, cbor.uint(1)], // self-described CBOR
  ]
  for (const [tag, content] of inertTags) {
    test(`tag ${tag} stays an inert Tag holding its content`, () => {
      const decoded = decodeCbor(cbor.tag(tag, content))
      expect(decoded).toBeInstanceOf(Tag)
      expect((decoded as Tag).tag).toBe(tag)
      expect((decoded as Tag).value).toEqual(decodeCbor(content))
      expect(() => decodeKinds({ x: decoded }, 'inputs')).toThrow(
        `inputs.x: unknown CBOR tag ${tag}`,
      )
    })
  }

  // cbor-x reads these before any extension: they are refused outright.
  const refusedTags: [number | bigint, RegExp][] = [
    [57337, /tag 57337 \(cbor-x bundled strings/],
    [57342, /tag 57342 \(cbor-x record definitions/],
    [57343, /tag 57343 \(a cbor-x record/],
    [65535, /tag 57343 \(a cbor-x record, or a larger tag with the same low 13 bits/],
    [0x1dff9, /tag 57337/],
    [1399353956, /tag 1399353956 \(cbor-x shared structures\) is not accepted/],
  ]
  for (const [tag, message] of refusedTags) {
    test(`tag ${tag} is refused`, () => {
      expect(() =>
        decodeCbor(
          cbor.tag(tag, cbor.array(cbor.uint(0xe002), cbor.array(cbor.text('x')), cbor.uint(1))),
        ),
      ).toThrow(message)
    })
  }

  for (const tag of [
    216, 223, 225, 255, 27647, 28671, 28704, 32767, 1811940352, 1879048180, 1879052288, 2147483640,
  ]) {
    test(`tag ${tag} (a cbor-x packed value) is refused with a message that says so`, () => {
      expect(() => decodeCbor(cbor.tag(tag, cbor.text('a')))).toThrow(
        /a cbor-x packed value .* is not accepted/,
      )
    })
  }

  test('simple values other than false, true, null and undefined are refused', () => {
    for (const n of [0, 16, 19, 32, 255])
      expect(() => decodeCbor(cbor.simple(n))).toThrow(/a cbor-x packed value/)
    expect([20, 21, 22, 23].map((n) => decodeCbor(cbor.simple(n)))).toEqual([
      false,
      true,
      null,
      undefined,
    ])
  })

  test('nothing one body defines changes how the next body decodes', () => {
    // A legacy record (tag 105) naming id 0xf001 (61441, the image kind's tag) was kept by
    // cbor-x for every later decode: another tenant's image input then read as that record.
    const imageId = 0xf001
    const attacker = cbor.tag(
      105,
      cbor.array(cbor.uint(imageId), cbor.array(cbor.text('evil')), cbor.uint(1)),
    )
    expect(decodeCbor(attacker)).toBeInstanceOf(Tag)
    const victim = cbor.tag(imageId, cbor.map(['format', cbor.text('jpeg')]))
    expect(decodeCbor(victim)).toEqual(new Tag({ format: 'jpeg' }, imageId))
    // The same through 57343, cbor-x's newer record tag: refused, and nothing remembered.
    expect(() =>
      decodeCbor(
        cbor.tag(57343, cbor.array(cbor.uint(0xe002), cbor.array(cbor.text('x')), cbor.uint(1))),
      ),
    ).toThrow(/57343/)
    expect(decodeCbor(cbor.tag(0xe002, cbor.array(cbor.uint(5))))).toEqual(new Tag([5], 0xe002))
  })
})

describe('a "__proto__" map key', () => {
  const body = cbor.map(
    ['__proto__', cbor.map(['polluted', cbor.uint(1)])],
    [
      'y',
      cbor.array(
        cbor.map(['__proto__', cbor.uint(2)]),
        cbor.tag(61443, cbor.map(['__proto__', cbor.text('t')])),
      ),
    ],
  )

  test('survives as an own enumerable key with its value, as JSON.parse keeps it', () => {
    const decoded = decodeCbor(body) as Record<string, unknown>
    const parsed = JSON.parse('{"__proto__": {"polluted": 1}, "y": [{"__proto__": 2}]}') as Record<
      string,
      unknown
    >
    expect(Object.keys(decoded)).toEqual(['__proto__', 'y'])
    expect(Object.getOwnPropertyDescriptor(decoded, '__proto__')).toEqual(
      Object.getOwnPropertyDescriptor(parsed, '__proto__')!,
    )
    expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype)
    const [inArray, inTag] = decoded.y as [Record<string, unknown>, Tag]
    expect(Object.getOwnPropertyDescriptor(inArray, '__proto__')?.value).toBe(2)
    expect(Object.getOwnPropertyDescriptor(inTag.value, '__proto__')?.value).toBe('t')
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })

  test('is written back as it came, and kept by decodeKinds', () => {
    expect(hex(encodeCbor(decodeCbor(body)))).toBe(hex(body))
    const inputs = decodeKinds(
      decodeCbor(cbor.map(['a', cbor.map(['__proto__', cbor.array(cbor.uint(1))])])),
      'inputs',
    ) as { a: object }
    expect(Object.keys(inputs.a)).toEqual(['__proto__'])
    expect(Object.getPrototypeOf(inputs.a)).toBe(Object.prototype)
    expect(Object.getOwnPropertyDescriptor(inputs.a, '__proto__')?.value).toEqual([1])
    expect(hex(encodeCbor(inputs))).toBe(
      hex(cbor.map(['a', cbor.map(['__proto__', cbor.array(cbor.uint(1))])])),
    )
  })

  test('a key that only looks like it is an ordinary key', () => {
    const decoded = decodeCbor(
      join(cbor.map(['__proto_', cbor.uint(1)], ['__proto__\u0000', cbor.uint(2)])),
    ) as Record<string, unknown>
    expect(Object.keys(decoded)).toEqual(['__proto_', '__proto__\u0000'])
  })
})
