import { describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import { decodeCbor, encodeCbor, Tag } from '../../../serializers/cbor.ts'
import { decodeKinds, KindError } from '../../../serializers/index.ts'
import { DTYPES, NDArray, type NumericDType } from '../../../serializers/ndarray/index.ts'
import { pythonRoundTrip } from '../../support/python.ts'
import { decodeKind, goldenVectors, hex } from '../../support/vectors.ts'

describe('ndarray golden vectors', () => {
  for (const entry of goldenVectors<{
    name: string
    dtype: string
    shape: number[]
    hex?: string
    values?: string[]
    reencoded_hex?: string
  }>('ndarray')) {
    test(entry.name, () => {
      const { raw } = entry
      const array = decodeKind(raw) as NDArray
      expect(array).toBeInstanceOf(NDArray)
      expect(array.dtype).toBe(entry.dtype as NDArray['dtype'])
      expect(array.shape).toEqual(entry.shape)
      if (entry.dtype === 'str') expect(array.strings).toEqual(entry.values!)
      else expect(hex(array.bytes)).toBe(entry.hex!)
      expect(hex(encodeCbor(array))).toBe(entry.reencoded_hex ?? hex(raw))
    })
  }
})

const NUMERIC = Object.keys(DTYPES) as NumericDType[]

const arbitraryArray = fc
  .record({
    dtype: fc.constantFrom(...NUMERIC),
    shape: fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 0, maxLength: 3 }),
  })
  .chain(({ dtype, shape }) => {
    const count = shape.reduce((a, b) => a * b, 1)
    const { itemsize } = DTYPES[dtype]
    const bytes =
      dtype === 'bool'
        ? fc.uint8Array({ min: 0, max: 1, minLength: count, maxLength: count })
        : fc.uint8Array({ minLength: count * itemsize, maxLength: count * itemsize })
    return bytes.map((b) => NDArray.fromBytes(dtype, shape, b))
  })

describe('ndarray TS → Python → TS', () => {
  test('every dtype and shape round-trips bit-exact through numpy', () => {
    // One Python process for the whole sample: a list of arrays in, the same list back.
    const samples = fc.sample(arbitraryArray, { numRuns: 300, seed: 42 })
    const back = decodeKinds(decodeCbor(pythonRoundTrip(encodeCbor(samples))), 'v') as NDArray[]
    expect(back).toHaveLength(samples.length)
    samples.forEach((sent, i) => {
      const got = back[i]!
      expect([got.dtype, got.shape, hex(got.bytes)]).toEqual([
        sent.dtype,
        sent.shape,
        hex(sent.bytes),
      ])
    })
  })

  test('string arrays too', () => {
    const sent = NDArray.ofStrings(['car', 'person', 'ünïcode'], [3])
    const got = decodeKind(pythonRoundTrip(encodeCbor(sent))) as NDArray
    expect([got.dtype, got.shape, got.strings]).toEqual(['str', [3], ['car', 'person', 'ünïcode']])
  })
})

describe('ndarray values', () => {
  test('data is a typed view of the same bytes', () => {
    const array = NDArray.of('float32', new Float32Array([1.5, -2, 3]), [3, 1])
    expect(array.data).toBeInstanceOf(Float32Array)
    expect(Array.from(array.data as Float32Array)).toEqual([1.5, -2, 3])
    expect(array.size).toBe(3)
  })

  test('a misaligned view is copied for data, never misread', () => {
    const buffer = new Uint8Array(9)
    new DataView(buffer.buffer).setFloat64(1, 2.5, true)
    const array = NDArray.fromBytes('float64', [1], buffer.subarray(1))
    expect(Array.from(array.data as Float64Array)).toEqual([2.5])
  })

  const bad: [string, unknown, RegExp][] = [
    [
      'wrong byte count',
      [[2, 3], new Float32Array(5)],
      /^v: shape \[2,3\] of float32 needs 24 bytes, got 20$/,
    ],
    [
      'negative dimension',
      [[-1], new Uint8Array(0)],
      /^v\.shape: dimensions must be non-negative integers/,
    ],
    ['not a pair', 'nope', /^v: tag 40 must hold \[dimensions, elements\]$/],
    ['mixed classic array', [[2], [1, 'a']], /only numbers, only booleans or only strings/],
    [
      'too many dimensions',
      [new Array(33).fill(1), new Uint8Array(1)],
      /33 dimensions, over the limit of 32/,
    ],
    ['too many elements', [[2 ** 20, 2 ** 20], new Uint8Array(0)], /more than 2147483648 elements/],
  ]
  for (const [name, content, message] of bad) {
    test(`rejects ${name} with the path`, () => {
      const bytes = encodeCbor(new Tag(content, 40))
      expect(() => decodeKind(bytes)).toThrow(KindError)
      expect(() => decodeKind(bytes)).toThrow(message)
    })
  }

  test('an unknown tag is named', () => {
    expect(() => decodeKind(new Uint8Array([0xd9, 0x03, 0xe7, 0x01]))).toThrow(
      /^v: unknown CBOR tag 999/,
    )
  })
})
