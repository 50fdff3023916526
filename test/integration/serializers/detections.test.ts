import { describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import { encodeCbor, Tag } from '../../../serializers/cbor.ts'
import {
  DETECTIONS_TAG,
  type DataColumn,
  Detections,
  ObjectColumn,
  PackedMask,
} from '../../../serializers/detections/index.ts'
import { KindError, kindOf, serializerFor } from '../../../serializers/index.ts'
import { DTYPES, NDArray, type NumericDType } from '../../../serializers/ndarray/index.ts'
import { pythonRoundTrip } from '../../support/python.ts'
import { decodeKind, goldenVectors, hex } from '../../support/vectors.ts'

/** The language-neutral description index.json uses (see make_vectors.py). */
function describeValue(value: unknown): unknown {
  if (value instanceof NDArray) {
    const { dtype, shape } = value
    return {
      $ndarray:
        dtype === 'str'
          ? { dtype, shape: [...shape], values: [...value.strings!] }
          : { dtype, shape: [...shape], hex: hex(value.bytes) },
    }
  }
  if (value instanceof ObjectColumn)
    return { $object: { shape: [...value.shape], values: value.values.map(describeValue) } }
  if (value instanceof Uint8Array) return { $bytes: hex(value) }
  if (Array.isArray(value)) return value.map(describeValue)
  if (typeof value === 'bigint') return Number(value)
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, describeValue(v)]))
  return value
}

function describeDetections(d: Detections): unknown {
  let mask = null
  if (d.mask) {
    const [n, h, w] = d.mask.shape
    const set: number[][] = []
    for (let i = 0; i < n; i++)
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) if (d.mask.at(i, y, x)) set.push([i, y, x])
    mask = { shape: [...d.mask.shape], set_pixels: set }
  }
  return {
    xyxy: describeValue(d.xyxy),
    confidence: describeValue(d.confidence),
    class_id: describeValue(d.classId),
    tracker_id: describeValue(d.trackerId),
    mask,
    data: describeValue(d.data),
    metadata: describeValue(d.metadata),
  }
}

describe('detections golden vectors', () => {
  for (const entry of goldenVectors<{ name: string; n: number; expect: unknown }>('detections')) {
    test(entry.name, () => {
      const { raw } = entry
      const detections = decodeKind(raw) as Detections
      expect(detections).toBeInstanceOf(Detections)
      expect(detections.length).toBe(entry.n)
      expect(describeDetections(detections)).toEqual(entry.expect)
      expect(hex(encodeCbor(detections))).toBe(hex(raw))
    })
  }

  test('the plugin is listed and recognised', () => {
    expect(serializerFor('detections').tags).toEqual([DETECTIONS_TAG])
    expect(
      kindOf(Detections.create({ xyxy: NDArray.of('float32', new Float32Array(4), [1, 4]) })),
    ).toBe('detections')
  })
})

// ---- arbitrary detections, built in TS ----------------------------------------------------

const FLOATS = ['float16', 'float32', 'float64'] as const
const INTEGERS = ['int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64'] as const

/** Any bytes of a dtype: NaN payloads and extremes included (bit-exactness is the point). */
const anyArray = (dtypes: readonly NumericDType[], shape: number[]) =>
  fc.constantFrom(...dtypes).chain((dtype) => {
    const count = shape.reduce((a, b) => a * b, 1)
    const { itemsize } = DTYPES[dtype]
    const bytes =
      dtype === 'bool'
        ? fc.uint8Array({ min: 0, max: 1, minLength: count, maxLength: count })
        : fc.uint8Array({ minLength: count * itemsize, maxLength: count * itemsize })
    return bytes.map((b) => NDArray.fromBytes(dtype, shape, b))
  })

/** Boxes must be finite: floats are drawn as finite values, float16 as bits without the all-ones exponent. */
const boxes = (n: number) =>
  fc.oneof(
    fc
      .float32Array({ noNaN: true, noDefaultInfinity: true, minLength: n * 4, maxLength: n * 4 })
      .map((a) => NDArray.of('float32', a, [n, 4])),
    fc
      .float64Array({ noNaN: true, noDefaultInfinity: true, minLength: n * 4, maxLength: n * 4 })
      .map((a) => NDArray.of('float64', a, [n, 4])),
    fc
      .array(
        fc.integer({ min: 0, max: 0xffff }).filter((b) => (b & 0x7c00) !== 0x7c00),
        { minLength: n * 4, maxLength: n * 4 },
      )
      .map((bits) => NDArray.of('float16', Uint16Array.from(bits), [n, 4])),
    anyArray(['int32', 'uint16'], [n, 4]),
  )

// Plain values that survive cbor-x → cbor2 → cbor-x byte for byte: no NaN or infinity
// (cbor2 writes those as half floats), no -0 (cbor-x writes it as the integer 0), keys
// that are not integer-like (JS objects reorder those) and not '_type' (a JSON marker to
// the Python registry).
const key = fc.stringMatching(/^[a-z][a-z0-9_]{0,7}$/)
const plain = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }).filter((x) => !Object.is(x, -0)),
    fc.string({ maxLength: 6 }),
    fc.uint8Array({ maxLength: 4 }),
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(key, tie('value'), { maxKeys: 3 }),
  ),
})).value

const dataColumn = (n: number): fc.Arbitrary<DataColumn> =>
  fc.oneof(
    anyArray([...FLOATS, ...INTEGERS, 'bool'], [n]),
    fc.integer({ min: 0, max: 3 }).chain((k) => anyArray([...FLOATS, ...INTEGERS], [n, k])),
    // str columns only when not empty: an empty one travels as ndarray's classic form, typeless
    n > 0
      ? fc
          .array(fc.string({ maxLength: 4 }), { minLength: n, maxLength: n })
          .map((s) => NDArray.ofStrings(s))
      : fc.constant([]),
    fc.array(plain, { minLength: n, maxLength: n }),
    fc.array(plain, { minLength: n, maxLength: n }).map((values) => new ObjectColumn([n], values)),
  )

const arbitraryDetections = fc.integer({ min: 0, max: 5 }).chain((n) =>
  fc
    .record({
      xyxy: boxes(n),
      confidence: fc.option(anyArray(FLOATS, [n])),
      classId: fc.option(anyArray(INTEGERS, [n])),
      trackerId: fc.option(anyArray(INTEGERS, [n])),
      mask: fc.option(
        fc
          .tuple(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: 9 }))
          .chain(([h, w]) =>
            fc
              .array(fc.boolean(), { minLength: n * h * w, maxLength: n * h * w })
              .map((pixels) => PackedMask.fromPixels([n, h, w], pixels)),
          ),
      ),
      data: fc.dictionary(key, dataColumn(n), { maxKeys: 4 }),
      metadata: fc.dictionary(key, plain, { maxKeys: 3 }),
    })
    .map((fields) => Detections.create(fields)),
)

describe('detections TS → Python → TS', () => {
  test('random detections come back bit-exact through sv.Detections', () => {
    // One Python process for the whole sample: a list of detections in, the same list back.
    const samples = fc.sample(arbitraryDetections, { numRuns: 200, seed: 7 })
    const back = decodeKind(pythonRoundTrip(encodeCbor(samples))) as Detections[]
    expect(back).toHaveLength(samples.length)
    samples.forEach((sent, i) => {
      const got = back[i]!
      expect(got).toBeInstanceOf(Detections)
      expect(describeDetections(got)).toEqual(describeDetections(sent))
      expect(hex(encodeCbor(got))).toBe(hex(encodeCbor(sent)))
    })
  })
})

// ---- values and validation ----------------------------------------------------------------

describe('detections values', () => {
  test('a packed mask keeps pixel order: first pixel in the lowest bit', () => {
    const pixels = new Array(2 * 3 * 3).fill(false)
    pixels[0] = true
    pixels[17] = true // the last pixel: bit 1 of byte 2
    const mask = PackedMask.fromPixels([2, 3, 3], pixels)
    expect(hex(mask.bits)).toBe('010002')
    expect([mask.at(0, 0, 0), mask.at(1, 2, 2), mask.at(1, 2, 1)]).toEqual([true, true, false])
  })

  test('columns out of step are refused when built in TS too', () => {
    const xyxy = NDArray.of('float32', new Float32Array(8), [2, 4])
    expect(() =>
      Detections.create({ xyxy, confidence: NDArray.of('float32', new Float32Array(3)) }),
    ).toThrow(new KindError('detections.confidence', 'expected 2 values, got 3'))
  })

  const f32 = (values: number[], shape = [values.length]) =>
    NDArray.of('float32', Float32Array.from(values), shape)
  const base = () => ({
    xyxy: f32(new Array(12).fill(0), [3, 4]),
    confidence: f32([1, 1, 1]),
    class_id: NDArray.of('int64', new BigInt64Array(3)),
    tracker_id: null,
    mask: { shape: [3, 2, 3], bits: new Uint8Array(3) },
    data: { class_name: NDArray.ofStrings(['a', 'b', 'c']) },
    metadata: {},
  })
  const bad: [string, Record<string, unknown>, RegExp][] = [
    ['short confidence', { confidence: f32([1, 1]) }, /^v\.confidence: expected 3 values, got 2$/],
    [
      'str confidence',
      { confidence: NDArray.ofStrings(['x', 'y', 'z']) },
      /^v\.confidence: expected a numeric dtype, got str$/,
    ],
    [
      'float class ids',
      { class_id: f32([1, 2, 3]) },
      /^v\.class_id: expected an integer dtype, got float32$/,
    ],
    [
      '2-D tracker ids',
      { tracker_id: NDArray.of('int64', new BigInt64Array(3), [3, 1]) },
      /^v\.tracker_id: expected a 1-D array, got shape \[3, 1\]$/,
    ],
    [
      'untagged tracker ids',
      { tracker_id: [1, 2, 3] },
      /^v\.tracker_id: expected an ndarray or null, got array$/,
    ],
    [
      'boxes of 3',
      { xyxy: f32(new Array(9).fill(0), [3, 3]) },
      /^v\.xyxy: expected shape \[N, 4\], got \[3, 3\]$/,
    ],
    [
      'NaN box',
      { xyxy: f32([0, 0, Number.NaN, 1, 0, 0, 1, 1, 0, 0, 1, 1], [3, 4]) },
      /^v\.xyxy: coordinates must be finite/,
    ],
    [
      'infinite float16 box',
      { xyxy: NDArray.of('float16', new Uint16Array(12).fill(0x7c00), [3, 4]) },
      /^v\.xyxy: coordinates must be finite/,
    ],
    ['no boxes', { xyxy: undefined }, /^v\.xyxy: missing/],
    ['unknown field', { boxes: 1 }, /^v: unknown field 'boxes'/],
    [
      'mask count',
      { mask: { shape: [2, 2, 3], bits: new Uint8Array(2) } },
      /^v\.mask\.shape: expected 3 masks, got 2$/,
    ],
    [
      'mask bytes',
      { mask: { shape: [3, 2, 3], bits: new Uint8Array(2) } },
      /^v\.mask\.bits: expected 3 bytes for 3×2×3 pixels, got 2$/,
    ],
    [
      'mask padding',
      { mask: { shape: [3, 2, 3], bits: new Uint8Array([0, 0, 0x80]) } },
      /^v\.mask\.bits: the padding bits after the last pixel must be 0$/,
    ],
    [
      'mask too tall',
      { mask: { shape: [3, 16385, 1], bits: new Uint8Array(0) } },
      /^v\.mask\.shape: mask of 16385×1 pixels is over the limit of 16384 a side$/,
    ],
    [
      'mask of 2 dims',
      { mask: { shape: [3, 2], bits: new Uint8Array(0) } },
      /^v\.mask\.shape: expected \[N, H, W\]/,
    ],
    [
      'mask not a map',
      { mask: new Uint8Array(1) },
      /^v\.mask: expected null or \{shape: \[N, H, W\], bits: bytes\}$/,
    ],
    [
      'data rows',
      { data: { score: f32([1, 2, 3, 4]) } },
      /^v\.data\.score: expected 3 rows, got 4$/,
    ],
    ['data list rows', { data: { ocr: ['a', 'b'] } }, /^v\.data\.ocr: expected 3 rows, got 2$/],
    [
      'object column count',
      { data: { poly: { shape: [3], object: [1, 2] } } },
      /^v\.data\.poly\.object: shape \[3\] needs 3 values, got 2$/,
    ],
    [
      'object column rows',
      { data: { poly: { shape: [2], object: [1, 2] } } },
      /^v\.data\.poly: expected 3 rows, got 2$/,
    ],
    [
      'scalar data',
      { data: { note: 'hello' } },
      /^v\.data\.note: expected an ndarray, a list, or an object column, got string$/,
    ],
    [
      'map data',
      { data: { note: { a: 1 } } },
      /^v\.data\.note: expected an ndarray, a list, or an object column \{shape, object\}$/,
    ],
    ['data not a map', { data: [1] }, /^v\.data: expected a map, got array$/],
    ['metadata not a map', { metadata: [1] }, /^v\.metadata: expected a map, got array$/],
  ]
  for (const [name, overrides, message] of bad) {
    test(`rejects ${name} with the path`, () => {
      const content: Record<string, unknown> = { ...base(), ...overrides }
      for (const [k, v] of Object.entries(content)) if (v === undefined) delete content[k]
      const bytes = encodeCbor(new Tag(content, DETECTIONS_TAG))
      expect(() => decodeKind(bytes)).toThrow(KindError)
      expect(() => decodeKind(bytes)).toThrow(message)
    })
  }

  test('a bad ndarray inside a data column names the column', () => {
    const content = { ...base(), data: { score: new Tag([[3], new Uint8Array(8)], 40) } }
    expect(() => decodeKind(encodeCbor(new Tag(content, DETECTIONS_TAG)))).toThrow(
      /^v\.data\.score: /,
    )
  })

  test('not a map, and a bad one inside a list, are named', () => {
    expect(() => decodeKind(encodeCbor(new Tag([1, 2], DETECTIONS_TAG)))).toThrow(
      /^v: tag 61442 must hold a map of columns$/,
    )
    const batch = [
      new Tag(base(), DETECTIONS_TAG),
      new Tag({ ...base(), confidence: f32([1, 1]) }, DETECTIONS_TAG),
    ]
    expect(() => decodeKind(encodeCbor(batch), 'inputs.batch')).toThrow(
      /^inputs\.batch\[1\]\.confidence: expected 3 values, got 2$/,
    )
  })

  test('missing optional fields read as empty', () => {
    const d = decodeKind(
      encodeCbor(new Tag({ xyxy: f32(new Array(8).fill(1), [2, 4]) }, DETECTIONS_TAG)),
    ) as Detections
    expect([d.length, d.confidence, d.classId, d.trackerId, d.mask, d.data, d.metadata]).toEqual([
      2,
      null,
      null,
      null,
      null,
      {},
      {},
    ])
  })
})
