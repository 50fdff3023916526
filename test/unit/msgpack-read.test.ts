// The websocket transport's msgpack reader (src/interop/webexec/ws/msgpack-read.ts): a float
// stays a float (a whole one as a Float64, as JSON's `3.0` does), an int an int, bin bytes;
// keys are strings, "__proto__" only a key; lengths that lie are refused before allocation.
import { describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import { pack } from 'msgpackr'
import { Float64 } from '../../serializers/cbor.ts'
import { MsgpackError, readMsgpack } from '../../src/interop/webexec/ws/msgpack-read.ts'

const bytes = (...values: number[]) => new Uint8Array(values)
const float64 = (value: number) => {
  const out = new Uint8Array(9)
  out[0] = 0xcb
  new DataView(out.buffer).setFloat64(1, value)
  return out
}

describe('msgpack as Python packs it', () => {
  test('a float64 3.0 is a Float64, 2.5 a number; ints of every width are numbers; past 2^53 bigints', () => {
    expect(readMsgpack(float64(3))).toEqual(new Float64(3))
    expect(readMsgpack(float64(-0))).toEqual(new Float64(-0))
    expect(readMsgpack(float64(2.5))).toBe(2.5)
    expect(readMsgpack(float64(Number.NaN))).toBeNaN()
    expect(readMsgpack(bytes(0xca, 0x40, 0x40, 0, 0))).toEqual(new Float64(3)) // float32 3.0
    expect(readMsgpack(bytes(0x03))).toBe(3)
    expect(readMsgpack(bytes(0xff))).toBe(-1)
    expect(readMsgpack(bytes(0xcd, 0x01, 0x00))).toBe(256)
    expect(readMsgpack(bytes(0xd2, 0xff, 0xff, 0xff, 0xfe))).toBe(-2)
    expect(readMsgpack(bytes(0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))).toBe(
      2n ** 64n - 1n,
    )
    expect(readMsgpack(bytes(0xd3, 0, 0, 0, 0, 0, 0, 0, 5))).toBe(5)
  })

  test('maps, arrays, strings, bin, nil and booleans, as packed', () => {
    const packed = pack({ s: 'é', b: new Uint8Array([1, 2]), a: [null, true, false], m: { x: 1 } })
    expect(readMsgpack(packed)).toEqual({
      s: 'é',
      b: new Uint8Array([1, 2]),
      a: [null, true, false],
      m: { x: 1 },
    })
  })

  test('"__proto__" is a key like any other; a key that is not a string is refused', () => {
    const value = readMsgpack(pack({ ['__proto__']: { polluted: true } })) as Record<
      string,
      unknown
    >
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype)
    expect(Object.keys(value)).toEqual(['__proto__'])
    expect(({} as { polluted?: boolean }).polluted).toBeUndefined()
    expect(() => readMsgpack(bytes(0x81, 0x01, 0x02))).toThrow(/map key must be a string/)
  })

  test('lengths that lie, trailing bytes, ext types, bad UTF-8 and deep nesting are MsgpackErrors', () => {
    expect(() => readMsgpack(bytes(0xdd, 0xff, 0xff, 0xff, 0xff))).toThrow(/cut short/) // 4 G items
    expect(() => readMsgpack(bytes(0xc6, 0x7f, 0xff, 0xff, 0xff))).toThrow(/cut short/)
    expect(() => readMsgpack(bytes(0x01, 0x02))).toThrow(/1 bytes after the value/)
    expect(() => readMsgpack(bytes(0xd4, 0x01, 0x00))).toThrow(/0xd4 is not one/)
    expect(() => readMsgpack(bytes(0xa2, 0xc3, 0x28))).toThrow(/not UTF-8/)
    expect(() => readMsgpack(new Uint8Array(300).fill(0x91))).toThrow(/nested deeper/)
  })

  test('fuzz: any bytes are a value or a MsgpackError, never another error', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (input) => {
        try {
          readMsgpack(input)
        } catch (error) {
          expect(error).toBeInstanceOf(MsgpackError)
        }
      }),
      { numRuns: 5000 },
    )
  })
})
