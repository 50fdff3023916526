// ndarray: RFC 8746 on the wire. Tag 40 over [dims, typed array] (row-major), the typed
// array little endian with tags 64–87; big-endian tags, the classic-array form and the
// column-major tag 1040 are read too. bool travels as tag 68 (uint8 clamped) holding 0/1,
// since RFC 8746 has no boolean typed array; a generic reader still sees the same values.
// Strings (numpy 'U' arrays, e.g. detection class names) use the classic-array form inside
// tag 41 (homogeneous array), which also keeps an empty string array a string array.
import { Tag, TypedBytes } from '../cbor.ts'
import { KindError, type Serializer } from '../serializer.ts'

export type NumericDType =
  | 'bool'
  | 'uint8'
  | 'int8'
  | 'uint16'
  | 'int16'
  | 'uint32'
  | 'int32'
  | 'uint64'
  | 'int64'
  | 'float16'
  | 'float32'
  | 'float64'
export type DType = NumericDType | 'str'

type TypedArrayOf = {
  bool: Uint8Array
  uint8: Uint8Array
  int8: Int8Array
  uint16: Uint16Array
  int16: Int16Array
  uint32: Uint32Array
  int32: Int32Array
  uint64: BigUint64Array
  int64: BigInt64Array
  float16: Uint16Array // raw IEEE half bits: not every runtime has Float16Array
  float32: Float32Array
  float64: Float64Array
}
export type TypedArray = TypedArrayOf[NumericDType]

interface DTypeInfo {
  /** Little-endian typed-array tag (RFC 8746 §2.1). */
  tag: number
  /** Big-endian tag, for the ones that have one. */
  bigEndianTag?: number
  itemsize: number
  View: new (buffer: ArrayBufferLike, byteOffset: number, length: number) => TypedArray
}

export const DTYPES: Record<NumericDType, DTypeInfo> = {
  uint8: { tag: 64, itemsize: 1, View: Uint8Array },
  bool: { tag: 68, itemsize: 1, View: Uint8Array },
  uint16: { tag: 69, bigEndianTag: 65, itemsize: 2, View: Uint16Array },
  uint32: { tag: 70, bigEndianTag: 66, itemsize: 4, View: Uint32Array },
  uint64: { tag: 71, bigEndianTag: 67, itemsize: 8, View: BigUint64Array },
  int8: { tag: 72, itemsize: 1, View: Int8Array },
  int16: { tag: 77, bigEndianTag: 73, itemsize: 2, View: Int16Array },
  int32: { tag: 78, bigEndianTag: 74, itemsize: 4, View: Int32Array },
  int64: { tag: 79, bigEndianTag: 75, itemsize: 8, View: BigInt64Array },
  float16: { tag: 84, bigEndianTag: 80, itemsize: 2, View: Uint16Array },
  float32: { tag: 85, bigEndianTag: 81, itemsize: 4, View: Float32Array },
  float64: { tag: 86, bigEndianTag: 82, itemsize: 8, View: Float64Array },
}

const BY_TAG = new Map<number, { dtype: NumericDType; bigEndian: boolean }>()
for (const [dtype, info] of Object.entries(DTYPES) as [NumericDType, DTypeInfo][]) {
  BY_TAG.set(info.tag, { dtype, bigEndian: false })
  if (info.bigEndianTag !== undefined) BY_TAG.set(info.bigEndianTag, { dtype, bigEndian: true })
}

const MULTI_DIMENSIONAL_TAG = 40
export const HOMOGENEOUS_TAG = 41
const COLUMN_MAJOR_TAG = 1040
/** Caps on what a decoder accepts, whatever the body limit. */
const LIMITS = { maxDims: 32, maxElements: 2 ** 31 } as const

/**
 * An n-dimensional array: dtype, shape and the row-major little-endian bytes (numeric
 * dtypes) or the values (`str`). `data` gives a typed-array view of the bytes.
 */
export class NDArray {
  private constructor(
    readonly dtype: DType,
    readonly shape: readonly number[],
    readonly bytes: Uint8Array,
    readonly strings: readonly string[] | null,
  ) {}

  /** Wraps little-endian row-major bytes (not copied). */
  static fromBytes(
    dtype: NumericDType,
    shape: readonly number[],
    bytes: Uint8Array,
    path = 'ndarray',
  ): NDArray {
    checkShape(shape, path)
    const expected = elementCount(shape) * DTYPES[dtype].itemsize
    if (bytes.byteLength !== expected) {
      throw new KindError(
        path,
        `shape ${JSON.stringify(shape)} of ${dtype} needs ${expected} bytes, got ${bytes.byteLength}`,
      )
    }
    return new NDArray(dtype, [...shape], bytes, null)
  }

  /** Wraps a typed array (not copied); the shape defaults to 1-D. */
  static of(
    dtype: NumericDType,
    data: TypedArray,
    shape: readonly number[] = [data.length],
  ): NDArray {
    return NDArray.fromBytes(
      dtype,
      shape,
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    )
  }

  static ofStrings(
    values: readonly string[],
    shape: readonly number[] = [values.length],
    path = 'ndarray',
  ): NDArray {
    checkShape(shape, path)
    if (elementCount(shape) !== values.length) {
      throw new KindError(
        path,
        `shape ${JSON.stringify(shape)} needs ${elementCount(shape)} values, got ${values.length}`,
      )
    }
    return new NDArray('str', [...shape], new Uint8Array(0), [...values])
  }

  get size(): number {
    return elementCount(this.shape)
  }

  /** The elements as a typed array over the same bytes (copied only when misaligned). */
  get data(): TypedArray {
    if (this.dtype === 'str') throw new TypeError('a str array has no typed data: read .strings')
    const { View, itemsize } = DTYPES[this.dtype]
    const aligned = this.bytes.byteOffset % itemsize === 0
    // Uint8Array's own slice copies; a Buffer's (which cbor-x may hand out) would not.
    const bytes = aligned ? this.bytes : Uint8Array.prototype.slice.call(this.bytes)
    return new View(bytes.buffer, bytes.byteOffset, bytes.byteLength / itemsize)
  }
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((product, dim) => product * dim, 1)
}

function checkShape(shape: readonly unknown[], path: string): asserts shape is number[] {
  if (shape.length > LIMITS.maxDims)
    throw new KindError(path, `${shape.length} dimensions, over the limit of ${LIMITS.maxDims}`)
  for (const dim of shape) {
    if (typeof dim !== 'number' || !Number.isSafeInteger(dim) || dim < 0) {
      throw new KindError(
        path,
        `dimensions must be non-negative integers, got ${JSON.stringify(shape, bigintText)}`,
      )
    }
  }
  if (elementCount(shape as number[]) > LIMITS.maxElements)
    throw new KindError(path, `more than ${LIMITS.maxElements} elements`)
}

const bigintText = (_key: string, value: unknown) =>
  typeof value === 'bigint' ? value.toString() : value

/** Copies `bytes`, reversing each `itemsize`-byte element (big endian → little endian). */
function swapBytes(bytes: Uint8Array, itemsize: number): Uint8Array {
  const out = new Uint8Array(bytes.byteLength)
  for (let at = 0; at < bytes.byteLength; at += itemsize) {
    for (let k = 0; k < itemsize; k++) out[at + k] = bytes[at + itemsize - 1 - k]!
  }
  return out
}

/** For each row-major position, the position of the same element in column-major order. */
function columnMajorOrder(shape: readonly number[]): Uint32Array {
  const count = elementCount(shape)
  const order = new Uint32Array(count)
  const index = new Array<number>(shape.length).fill(0)
  for (let rowMajor = 0; rowMajor < count; rowMajor++) {
    let columnMajor = 0
    for (let d = shape.length - 1; d >= 0; d--) columnMajor = columnMajor * shape[d]! + index[d]!
    order[rowMajor] = columnMajor
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++index[d]! < shape[d]!) break
      index[d] = 0
    }
  }
  return order
}

function dtypeOfTag(tag: number, path: string): { dtype: NumericDType; bigEndian: boolean } {
  const entry = BY_TAG.get(tag)
  if (!entry)
    throw new KindError(
      path,
      `typed-array tag ${tag} is not supported (float128 and reserved tags are not)`,
    )
  return entry
}

function fromTypedBytes(typed: TypedBytes, shape: readonly number[] | null, path: string): NDArray {
  const entry = dtypeOfTag(typed.tag, path)
  const { itemsize } = DTYPES[entry.dtype]
  if (typed.bytes.byteLength % itemsize !== 0) {
    throw new KindError(
      path,
      `${typed.bytes.byteLength} bytes is not a whole number of ${entry.dtype} elements`,
    )
  }
  const bytes = entry.bigEndian ? swapBytes(typed.bytes, itemsize) : typed.bytes
  // A bare typed array (no tag 40 around it) is one-dimensional.
  const array = NDArray.fromBytes(entry.dtype, shape ?? [bytes.byteLength / itemsize], bytes, path)
  if (entry.dtype === 'bool' && array.bytes.some((b) => b > 1))
    throw new KindError(path, 'a bool array holds a byte other than 0 or 1')
  return array
}

/** The RFC's classic-array form: a CBOR array of plain values. */
function fromClassic(values: readonly unknown[], shape: readonly number[], path: string): NDArray {
  if (values.length === 0) return NDArray.fromBytes('float64', shape, new Uint8Array(0), path) // no element to tell the type by
  if (values.every((v) => typeof v === 'string'))
    return NDArray.ofStrings(values as string[], shape, path)
  if (values.every((v) => typeof v === 'boolean')) {
    return NDArray.fromBytes('bool', shape, Uint8Array.from(values as boolean[], Number), path)
  }
  if (
    values.every((v) => (typeof v === 'number' && Number.isInteger(v)) || typeof v === 'bigint')
  ) {
    const data = new BigInt64Array(values.length)
    values.forEach((v, i) => {
      const n = BigInt(v as number | bigint)
      if (n !== BigInt.asIntN(64, n))
        throw new KindError(`${path}[${i}]`, 'integer outside the int64 range')
      data[i] = n
    })
    return NDArray.fromBytes('int64', shape, new Uint8Array(data.buffer), path)
  }
  if (values.every((v) => typeof v === 'number')) {
    return NDArray.fromBytes(
      'float64',
      shape,
      new Uint8Array(Float64Array.from(values as number[]).buffer),
      path,
    )
  }
  throw new KindError(path, 'a classic array must hold only numbers, only booleans or only strings')
}

function decodeNDArray(tag: number, content: unknown, path: string): NDArray {
  if (content instanceof TypedBytes) return fromTypedBytes(content, null, path)
  if (!Array.isArray(content) || content.length !== 2 || !Array.isArray(content[0])) {
    throw new KindError(path, `tag ${tag} must hold [dimensions, elements]`)
  }
  const dims = content[0] as unknown[]
  checkShape(dims, `${path}.shape`)
  const elements = content[1]
  let array: NDArray
  if (elements instanceof TypedBytes) array = fromTypedBytes(elements, dims, path)
  else if (Array.isArray(elements)) array = fromClassic(elements, dims, path)
  else if (
    elements instanceof Tag &&
    elements.tag === HOMOGENEOUS_TAG &&
    Array.isArray(elements.value)
  ) {
    if (!elements.value.every((v: unknown) => typeof v === 'string'))
      throw new KindError(path, 'a tag 41 array must hold strings')
    array = NDArray.ofStrings(elements.value as string[], dims, path)
  } else throw new KindError(path, 'elements must be a typed array or an array')
  return tag === COLUMN_MAJOR_TAG ? toRowMajor(array) : array
}

/** Tag 1040 holds its elements in column-major order: reorder them to row-major. */
function toRowMajor(array: NDArray): NDArray {
  const order = columnMajorOrder(array.shape)
  if (array.dtype === 'str')
    return NDArray.ofStrings(
      Array.from(order, (i) => array.strings![i]!),
      array.shape,
    )
  const { itemsize } = DTYPES[array.dtype]
  const out = new Uint8Array(array.bytes.byteLength)
  order.forEach((from, to) => {
    out.set(array.bytes.subarray(from * itemsize, (from + 1) * itemsize), to * itemsize)
  })
  return NDArray.fromBytes(array.dtype, array.shape, out)
}

function encodeNDArray(array: NDArray): unknown {
  if (array.dtype === 'str') return [array.shape, new Tag(array.strings, HOMOGENEOUS_TAG)]
  return [array.shape, new TypedBytes(DTYPES[array.dtype].tag, array.bytes)]
}

declare module '../serializer.ts' {
  interface KindMap {
    ndarray: NDArray
  }
}

export const ndarray: Serializer<'ndarray'> = {
  kind: 'ndarray',
  Class: NDArray,
  tags: [MULTI_DIMENSIONAL_TAG, COLUMN_MAJOR_TAG, ...BY_TAG.keys()],
  decode: (tag, content, path) => decodeNDArray(tag, content, path),
  encode: encodeNDArray,
}
