// detections: supervision.Detections on the wire, as columns. Tag 61442 over a map whose
// fields are always written in this order (the Python twin, codec.py, writes the same):
//   xyxy        ndarray [N, 4], its own dtype
//   confidence  ndarray [N] or null
//   class_id    ndarray [N] of an integer dtype, or null
//   tracker_id  ndarray [N] of an integer dtype, or null
//   mask        null or { shape: [N, H, W], bits }: the N×H×W bool mask, row-major, 8 pixels
//               a byte, first pixel in the lowest bit (numpy.packbits bitorder="little"),
//               padding bits 0
//   data        map, every key of detections.data: an ndarray (first dimension N, or 0-d),
//               a list of N values, or { shape: [N, …], object: [values row-major] } for a
//               numpy object-dtype array (ObjectColumn here)
//   metadata    map of plain values (and kinds)
// The proxy only checks and forwards: masks stay packed, values inside lists stay as decoded.
import { ByteString } from '../cbor.ts'
import { KindError, type DecodeNested, type Serializer } from '../serializer.ts'
import { DTYPES, NDArray, type NumericDType } from '../ndarray/index.ts'

export const DETECTIONS_TAG = 61442
const FIELDS = ['xyxy', 'confidence', 'class_id', 'tracker_id', 'mask', 'data', 'metadata'] as const
/** Caps on a mask, whatever the body limit. */
const MASK_LIMITS = { maxSide: 16384, maxPixels: 2 ** 31 } as const

const shapeText = (shape: readonly unknown[]) => `[${shape.map(String).join(', ')}]`
const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype
const describe = (value: unknown) =>
  value === null
    ? 'null'
    : Array.isArray(value)
      ? 'array'
      : typeof value === 'object'
        ? value.constructor.name
        : typeof value

/** An N×H×W boolean mask kept bit-packed, exactly as it travels. */
export class PackedMask {
  private constructor(
    readonly shape: readonly [number, number, number],
    readonly bits: Uint8Array,
  ) {}

  /** Wraps packed bits (not copied), checking their length, padding and the size caps. */
  static fromBits(shape: readonly unknown[], bits: unknown, path = 'mask'): PackedMask {
    const checked = checkMaskShape(shape, `${path}.shape`)
    if (!(bits instanceof Uint8Array))
      throw new KindError(`${path}.bits`, `expected a byte string, got ${describe(bits)}`)
    const pixels = checked[0] * checked[1] * checked[2]
    const expected = Math.ceil(pixels / 8)
    if (bits.byteLength !== expected) {
      throw new KindError(
        `${path}.bits`,
        `expected ${expected} bytes for ${checked.join('×')} pixels, got ${bits.byteLength}`,
      )
    }
    if (pixels % 8 && bits[expected - 1]! >> (pixels % 8))
      throw new KindError(`${path}.bits`, 'the padding bits after the last pixel must be 0')
    return new PackedMask(checked, bits)
  }

  /** Packs one value per pixel (row-major; truthy = set). */
  static fromPixels(
    shape: readonly [number, number, number],
    pixels: ArrayLike<number | boolean>,
    path = 'mask',
  ): PackedMask {
    const count = shape[0] * shape[1] * shape[2]
    if (pixels.length !== count)
      throw new KindError(
        path,
        `shape ${shapeText(shape)} needs ${count} pixels, got ${pixels.length}`,
      )
    const bits = new Uint8Array(Math.ceil(count / 8))
    for (let i = 0; i < count; i++) if (pixels[i]) bits[i >> 3]! |= 1 << (i & 7)
    return PackedMask.fromBits(shape, bits, path)
  }

  /** Whether pixel (y, x) of mask i is set. */
  at(i: number, y: number, x: number): boolean {
    const [, height, width] = this.shape
    const index = (i * height + y) * width + x
    return ((this.bits[index >> 3]! >> (index & 7)) & 1) === 1
  }
}

/** A numpy object-dtype array (ragged polygons, dicts): its shape and elements, row-major. */
export class ObjectColumn {
  constructor(
    readonly shape: readonly number[],
    readonly values: readonly unknown[],
  ) {}
}

/** One column of `data`: an ndarray, a Python list, or an object-dtype array. */
export type DataColumn = NDArray | ObjectColumn | readonly unknown[]

export interface DetectionsFields {
  xyxy: NDArray
  confidence?: NDArray | null
  classId?: NDArray | null
  trackerId?: NDArray | null
  mask?: PackedMask | null
  data?: Record<string, DataColumn>
  metadata?: Record<string, unknown>
}

/** supervision.Detections as the proxy holds it: checked columns, masks still packed. */
export class Detections {
  private constructor(
    readonly xyxy: NDArray,
    readonly confidence: NDArray | null,
    readonly classId: NDArray | null,
    readonly trackerId: NDArray | null,
    readonly mask: PackedMask | null,
    readonly data: Readonly<Record<string, DataColumn>>,
    readonly metadata: Readonly<Record<string, unknown>>,
  ) {}

  /** Checks the columns agree (N rows each, integer ids, finite boxes); KindError names the field. */
  static create(fields: DetectionsFields, path = 'detections'): Detections {
    const n = checkBoxes(fields.xyxy, `${path}.xyxy`)
    const confidence = checkColumn(fields.confidence ?? null, n, `${path}.confidence`, false)
    const classId = checkColumn(fields.classId ?? null, n, `${path}.class_id`, true)
    const trackerId = checkColumn(fields.trackerId ?? null, n, `${path}.tracker_id`, true)
    const mask = fields.mask ?? null
    if (mask !== null && mask.shape[0] !== n)
      throw new KindError(`${path}.mask.shape`, `expected ${n} masks, got ${mask.shape[0]}`)
    const data = fields.data ?? {}
    for (const [key, column] of Object.entries(data))
      checkDataColumn(column, n, `${path}.data.${key}`)
    return new Detections(
      fields.xyxy,
      confidence,
      classId,
      trackerId,
      mask,
      data,
      fields.metadata ?? {},
    )
  }

  /** N, the number of detections. */
  get length(): number {
    return this.xyxy.shape[0]!
  }
}

function checkBoxes(xyxy: unknown, path: string): number {
  if (!(xyxy instanceof NDArray))
    throw new KindError(path, `expected an ndarray, got ${describe(xyxy)}`)
  if (xyxy.shape.length !== 2 || xyxy.shape[1] !== 4)
    throw new KindError(path, `expected shape [N, 4], got ${shapeText(xyxy.shape)}`)
  if (xyxy.dtype === 'str' || xyxy.dtype === 'bool')
    throw new KindError(path, `expected a numeric dtype, got ${xyxy.dtype}`)
  if (!allFinite(xyxy)) throw new KindError(path, 'coordinates must be finite (no NaN or infinity)')
  return xyxy.shape[0]!
}

function allFinite(array: NDArray): boolean {
  // Read through a DataView: decoded bytes are views into the body, at any alignment.
  const { bytes } = array
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const read = {
    float16: (at: number) => (view.getUint16(at, true) & 0x7c00) !== 0x7c00, // an all-ones exponent is infinity or NaN
    float32: (at: number) => Number.isFinite(view.getFloat32(at, true)),
    float64: (at: number) => Number.isFinite(view.getFloat64(at, true)),
  }[array.dtype as 'float16' | 'float32' | 'float64']
  if (!read) return true
  const { itemsize } = DTYPES[array.dtype as NumericDType]
  for (let at = 0; at < bytes.byteLength; at += itemsize) if (!read(at)) return false
  return true
}

const isInteger = (array: NDArray) =>
  array.dtype.startsWith('int') || array.dtype.startsWith('uint')

function checkColumn(value: unknown, n: number, path: string, integer: boolean): NDArray | null {
  if (value === null) return null
  if (!(value instanceof NDArray))
    throw new KindError(path, `expected an ndarray or null, got ${describe(value)}`)
  if (value.shape.length !== 1)
    throw new KindError(path, `expected a 1-D array, got shape ${shapeText(value.shape)}`)
  if (value.shape[0] !== n) throw new KindError(path, `expected ${n} values, got ${value.shape[0]}`)
  if (integer && !isInteger(value))
    throw new KindError(path, `expected an integer dtype, got ${value.dtype}`)
  if (!integer && (value.dtype === 'str' || value.dtype === 'bool'))
    throw new KindError(path, `expected a numeric dtype, got ${value.dtype}`)
  return value
}

function checkMaskShape(shape: readonly unknown[], path: string): [number, number, number] {
  if (
    !Array.isArray(shape) ||
    shape.length !== 3 ||
    !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)
  ) {
    throw new KindError(
      path,
      `expected [N, H, W] (non-negative integers), got ${JSON.stringify(shape, (_k, v) => (typeof v === 'bigint' ? String(v) : v))}`,
    )
  }
  const [count, height, width] = shape as [number, number, number]
  if (height > MASK_LIMITS.maxSide || width > MASK_LIMITS.maxSide) {
    throw new KindError(
      path,
      `mask of ${height}×${width} pixels is over the limit of ${MASK_LIMITS.maxSide} a side`,
    )
  }
  if (count * height * width > MASK_LIMITS.maxPixels)
    throw new KindError(path, `more than ${MASK_LIMITS.maxPixels} mask pixels`)
  return [count, height, width]
}

function checkDataColumn(column: unknown, n: number, path: string): void {
  // supervision's rule: N rows, except that a 0-d array is left alone by its indexing.
  const rows = Array.isArray(column)
    ? column.length
    : column instanceof NDArray || column instanceof ObjectColumn
      ? column.shape.length === 0
        ? n
        : column.shape[0]
      : undefined
  if (rows === undefined)
    throw new KindError(
      path,
      `expected an ndarray, a list, or an object column, got ${describe(column)}`,
    )
  if (rows !== n) throw new KindError(path, `expected ${n} rows, got ${rows}`)
}

function decodeObjectColumn(
  content: Record<string, unknown>,
  path: string,
  decodeNested: DecodeNested,
): ObjectColumn {
  const { shape, object } = content
  if (Object.keys(content).length !== 2 || !Array.isArray(object)) {
    throw new KindError(path, 'expected an ndarray, a list, or an object column {shape, object}')
  }
  if (
    !Array.isArray(shape) ||
    !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)
  ) {
    throw new KindError(
      `${path}.shape`,
      `dimensions must be non-negative integers, got ${JSON.stringify(shape, (_k, v) => (typeof v === 'bigint' ? String(v) : v))}`,
    )
  }
  const count = (shape as number[]).reduce((a, b) => a * b, 1)
  if (count !== object.length)
    throw new KindError(
      `${path}.object`,
      `shape ${shapeText(shape)} needs ${count} values, got ${object.length}`,
    )
  return new ObjectColumn(shape as number[], decodeNested(object, `${path}.object`) as unknown[])
}

function decodeDataColumn(content: unknown, path: string, decodeNested: DecodeNested): DataColumn {
  if (isPlainObject(content)) return decodeObjectColumn(content, path, decodeNested)
  const column = decodeNested(content, path)
  if (column instanceof NDArray || Array.isArray(column)) return column
  throw new KindError(
    path,
    `expected an ndarray, a list, or an object column, got ${describe(column)}`,
  )
}

function decodeDetections(content: unknown, path: string, decodeNested: DecodeNested): Detections {
  if (!isPlainObject(content))
    throw new KindError(path, `tag ${DETECTIONS_TAG} must hold a map of columns`)
  for (const key of Object.keys(content)) {
    if (!(FIELDS as readonly string[]).includes(key))
      throw new KindError(path, `unknown field '${key}' (fields: ${FIELDS.join(', ')})`)
  }
  if (content.xyxy === undefined)
    throw new KindError(`${path}.xyxy`, 'missing: detections need their boxes')
  const xyxy = decodeNested(content.xyxy, `${path}.xyxy`)
  const n = checkBoxes(xyxy, `${path}.xyxy`)
  const column = (field: string) =>
    content[field] == null ? null : decodeNested(content[field], `${path}.${field}`)
  const confidence = checkColumn(column('confidence'), n, `${path}.confidence`, false)
  const classId = checkColumn(column('class_id'), n, `${path}.class_id`, true)
  const trackerId = checkColumn(column('tracker_id'), n, `${path}.tracker_id`, true)
  let mask: PackedMask | null = null
  if (content.mask != null) {
    const packed = content.mask
    if (
      !isPlainObject(packed) ||
      Object.keys(packed).length !== 2 ||
      !('shape' in packed) ||
      !('bits' in packed)
    ) {
      throw new KindError(`${path}.mask`, 'expected null or {shape: [N, H, W], bits: bytes}')
    }
    const shape = checkMaskShape(packed.shape as unknown[], `${path}.mask.shape`)
    if (shape[0] !== n)
      throw new KindError(`${path}.mask.shape`, `expected ${n} masks, got ${shape[0]}`)
    mask = PackedMask.fromBits(shape, packed.bits, `${path}.mask`)
  }
  const dataContent = content.data ?? {}
  if (!isPlainObject(dataContent))
    throw new KindError(`${path}.data`, `expected a map, got ${describe(dataContent)}`)
  const data: Record<string, DataColumn> = {}
  for (const [key, item] of Object.entries(dataContent))
    data[key] = decodeDataColumn(item, `${path}.data.${key}`, decodeNested)
  const metadata = decodeNested(content.metadata ?? {}, `${path}.metadata`)
  if (!isPlainObject(metadata))
    throw new KindError(`${path}.metadata`, `expected a map, got ${describe(metadata)}`)
  return Detections.create(
    { xyxy: xyxy as NDArray, confidence, classId, trackerId, mask, data, metadata },
    path,
  )
}

function encodeDetections(detections: Detections): unknown {
  const data: Record<string, unknown> = {}
  for (const [key, column] of Object.entries(detections.data)) {
    data[key] =
      column instanceof ObjectColumn ? { shape: column.shape, object: column.values } : column
  }
  const { mask } = detections
  return {
    xyxy: detections.xyxy,
    confidence: detections.confidence,
    class_id: detections.classId,
    tracker_id: detections.trackerId,
    // The bits ride in a worker frame's sidecar or region when large, not inside the head.
    mask: mask && { shape: mask.shape, bits: new ByteString(mask.bits) },
    data,
    metadata: detections.metadata,
  }
}

declare module '../serializer.ts' {
  interface KindMap {
    detections: Detections
  }
}

export const detections: Serializer<'detections'> = {
  kind: 'detections',
  Class: Detections,
  tags: [DETECTIONS_TAG],
  decode: (_tag, content, path, decodeNested) => decodeDetections(content, path, decodeNested),
  encode: encodeDetections,
}
