// The one place cbor-x is configured and extended. cbor-x's defaults (record extension,
// tagged Uint8Array, fixed-width map headers, typed arrays turned into JS classes that
// cannot tell a uint8 array from a byte string) are not what Python's cbor2 reads or
// what golden vectors can be compared against, so every option that matters is set here
// on purpose, and every extension is registered here, once. test/integration/cbor.test.ts pins it.
//
// 'cbor-x/encode' is the pure-JS entry: the package root also loads the optional native
// cbor-extract addon, which aborts the Bun process when decoding longer strings.
import type { Tag as CborTag } from 'cbor-x'
import * as decodeEntry from 'cbor-x/decode'
import { addExtension, Encoder, FLOAT32_OPTIONS } from 'cbor-x/encode'
import { fromHex, toHex, UTF8, utf16le } from './bytes.ts'

/** cbor-x's class for a tag it has no meaning for (its pure-JS entry's types omit it). */
export const Tag = (decodeEntry as unknown as { Tag: typeof CborTag }).Tag
export type Tag = CborTag

const isPlainObject = (value: object): value is Record<string, unknown> =>
  Object.getPrototypeOf(value) === Object.prototype

const options = {
  useRecords: false, // no cbor-x record extension (tag 105): plain CBOR maps
  mapsAsObjects: true, // maps decode to plain objects (keys are strings on our wire)
  variableMapSize: true, // shortest map length header, as cbor2 writes it
  tagUint8Array: false, // byte strings go untagged (tag 64 only inside RFC 8746 arrays)
  useFloat32: FLOAT32_OPTIONS.NEVER, // a JS number keeps its full float64 precision
  int64AsNumber: false, // 64-bit integers stay exact (BigInt)
  copyBuffers: false, // byte strings and typed arrays are views of the input: no copy
  pack: false,
  structuredClone: false,
  bundleStrings: false,
  alwaysUseFloat: false, // set for one value by Float64's encoder; present from the start, so reading it stays cheap
}
const codec = new Encoder(options as ConstructorParameters<typeof Encoder>[0])

/**
 * The bytes of an RFC 8746 typed array (tags 64–87), kept as a view with its tag.
 * cbor-x would turn tag 64 into a Uint8Array that re-encodes as a plain byte string, and
 * has no class for float16: keeping tag and bytes makes every dtype round-trip exactly.
 */
export class TypedBytes {
  constructor(
    readonly tag: number,
    readonly bytes: Uint8Array,
  ) {}
}

/**
 * A plain byte string that may ride in a worker frame's sidecar when large (an encoded
 * image file). Outside frames it is an ordinary byte string.
 */
export class ByteString {
  constructor(readonly bytes: Uint8Array) {}
}

/** An RFC 3339 timestamp (tag 0) kept as its text, so its UTC offset survives a round trip. */
export class TimestampText {
  constructor(readonly text: string) {}
  toJSON(): string {
    return this.text
  }
}

export const TYPED_ARRAY_TAGS = { first: 64, last: 87 } as const

type Write = (data: unknown) => void

// cbor-x's extension type wants `encode` to return bytes, but it ignores the return value
// and expects the content to be written through the callback; these two helpers say so once.
function decodeTag(tag: number, decode: (content: never) => unknown): void {
  addExtension({ tag, decode } as never)
}
// Registering a class also (re)sets the tag's decoder: pass the one it should keep.
function encodeClass<T>(
  Class: Function & { prototype: T },
  tag: number,
  encode: (value: T, write: Write) => void,
  decode?: (content: never) => unknown,
): void {
  addExtension({ Class, tag, encode, decode } as never)
}

// A typed array over anything but a byte string stays an inert Tag, for the kind to refuse.
for (let tag = TYPED_ARRAY_TAGS.first; tag <= TYPED_ARRAY_TAGS.last; tag++) {
  decodeTag(tag, (bytes: unknown) =>
    bytes instanceof Uint8Array ? new TypedBytes(tag, bytes) : new Tag(bytes, tag),
  )
}
/**
 * Worker frames carry large typed-array bytes after the CBOR head ("sidecar"), 64-byte
 * aligned, so the Python side maps them to numpy arrays without a copy; the head holds
 * [offset, length] under this tag instead of the bytes. Never valid from a client.
 */
const SIDECAR = { tag: 61440, align: 64, minBytes: 4096 } as const

export const alignSidecar = (n: number) => Math.ceil(n / SIDECAR.align) * SIDECAR.align

/**
 * A worker's shared-memory region: large buffers are copied into it rather than pushed
 * through the worker's socket (which hands 6 MB over in ~30 kernel round trips). The
 * head refers to them by [offset, length] under REGION_TAG.
 */
export interface SharedRegion {
  readonly size: number
  /** Copies bytes in; their offset, or null when they do not fit. */
  write(bytes: Uint8Array): number | null
  /** A fresh copy of the bytes at [offset, offset + length); throws when out of range. */
  read(offset: number, length: number): Uint8Array
}
const REGION = { tag: 61444, minBytes: 1024 * 1024 } as const

let sidecarOut: { buffers: Uint8Array[]; size: number; region: SharedRegion | null } | null = null

/** The worker frame being decoded: where its references point, and what they may cost. */
interface FrameIn {
  sidecar: Uint8Array
  region: SharedRegion | null
  /** The most bytes this frame's references may hand the proxy (its frame limit). */
  budget: number
  referenced: number
  /** [start, end) of each region span referenced so far. */
  regionSpans: [number, number][]
}
let frameIn: FrameIn | null = null

/** Writes bytes inline, or, inside a frame and when large, a reference to the sidecar. */
function writeBytes(bytes: Uint8Array, write: Write): void {
  if (!sidecarOut || bytes.byteLength < SIDECAR.minBytes) return write(bytes)
  if (sidecarOut.region && bytes.byteLength >= REGION.minBytes) {
    const at = sidecarOut.region.write(bytes)
    if (at !== null) return write(new Tag([at, bytes.byteLength], REGION.tag))
  }
  const offset = sidecarOut.size
  sidecarOut.buffers.push(bytes)
  sidecarOut.size = alignSidecar(offset + bytes.byteLength)
  write(new Tag([offset, bytes.byteLength], SIDECAR.tag))
}

// The tag comes from the value: cbor-x asks getTag when an extension has no fixed tag.
addExtension({
  Class: TypedBytes,
  getTag: (value: TypedBytes) => value.tag,
  encode: (value: TypedBytes, write: Write) => writeBytes(value.bytes, write),
} as never)
addExtension({
  Class: ByteString,
  encode: (value: ByteString, write: Write) => writeBytes(value.bytes, write),
} as never)

/** A reference as a message shows it: short, and cheap whatever a hostile peer put there. */
function describeReference(ref: unknown): string {
  if (Array.isArray(ref)) {
    const simple =
      ref.length <= 4 && ref.every((item) => typeof item === 'number' || typeof item === 'bigint')
    return simple ? `[${ref.join(',')}]` : `(an array of ${ref.length} items)`
  }
  if (ref instanceof Uint8Array) return `(a byte string of ${ref.byteLength} bytes)`
  if (typeof ref === 'string') return `(a text of ${ref.length} characters)`
  return ref === null || typeof ref !== 'object'
    ? String(ref)
    : `(${ref instanceof Tag ? `tag ${ref.tag}` : 'a map'})`
}

/** [offset, length] of a sidecar or region reference, or null when it is not two non-negative integers. */
function bufferReference(ref: unknown): [number, number] | null {
  const [offset, length] = Array.isArray(ref) ? ref : []
  return Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 && length >= 0
    ? [offset, length]
    : null
}

/**
 * Counts a reference against the frame's budget before anything is copied for it: a few
 * hundred bytes of forged head could otherwise refer to gigabytes (the same region bytes
 * again and again).
 */
function spendOnReference(frame: FrameIn, what: string, length: number): void {
  const total = frame.referenced + length
  if (total > frame.budget) {
    throw new Error(
      `${what} would bring the bytes this frame refers to to ${total}, over the ${frame.budget}-byte frame limit`,
    )
  }
  frame.referenced = total
}

decodeTag(SIDECAR.tag, (ref: unknown) => {
  const frame = frameIn
  if (!frame) throw new Error(`tag ${SIDECAR.tag} is internal to blockgate's worker frames`)
  const at = bufferReference(ref)
  if (!at || at[0] + at[1] > frame.sidecar.byteLength)
    throw new Error(`sidecar reference ${describeReference(ref)} is outside the frame`)
  spendOnReference(frame, `sidecar reference [${at[0]}, ${at[1]}]`, at[1])
  return frame.sidecar.subarray(at[0], at[0] + at[1])
})

// Dates are kept as sent (tag 0 text with its offset, tag 1 seconds with every digit);
// decodeKinds checks them, so a bad one is a 400 naming its path, not a failure in cbor2.
encodeClass(
  TimestampText,
  0,
  (value, write) => write(value.text),
  (text: unknown) => (typeof text === 'string' ? new TimestampText(text) : new Tag(text, 0)),
)
decodeTag(1, (seconds: unknown) => new Tag(seconds, 1))

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/

/** Why a decoded date (tag 0 or 1) is not one cbor2 will read, or null when it is fine. */
export function dateProblem(value: TimestampText | Tag): string | null {
  if (value instanceof TimestampText)
    return RFC3339.test(value.text)
      ? null
      : `tag 0 must hold an RFC 3339 date-time with an offset, got ${JSON.stringify(value.text)}`
  if (value.tag === 0) return 'tag 0 must hold text'
  const seconds = value.value
  return (typeof seconds === 'number' && Number.isFinite(seconds)) || typeof seconds === 'bigint'
    ? null
    : 'tag 1 must hold a finite number of seconds'
}

// cbor-x gives some tags meanings that no peer of ours sends: decimal fractions and
// bigfloats turned into lossy doubles (4, 5), packed references and tables (6, 51),
// bundled-string references (14, 15), objects built from class names (27: Error, RegExp),
// shared references (28, 29), legacy records (105, which cbor-x remembers from one body to
// the next), sets and maps (258, 259), self-described CBOR (55799). From a client they
// would only be a way to build surprising values; they stay inert Tag objects, which
// decodeKinds refuses with the input's path and a worker frame may not carry at all.
const INERT_TAGS = [4, 5, 6, 14, 15, 27, 28, 29, 51, 105, 258, 259, 55799] as const
for (const tag of INERT_TAGS) decodeTag(tag, (value: unknown) => new Tag(value, tag))

/**
 * Bignums (tags 2, 3) are bounded: cbor-x decodes them in quadratic time (64 KB took over
 * a second of a frozen event loop). 2 KiB of magnitude holds every integer of up to 4932
 * decimal digits, more than the 4300 digits Python converts to or from text by default
 * (sys.int_info.default_max_str_digits), so no integer a block can print is refused.
 */
const BIGNUM_BYTES = 2048
export const BIGNUM = {
  maxBytes: BIGNUM_BYTES,
  maxDigits: Math.floor(BIGNUM_BYTES * 8 * Math.log10(2)),
} as const

/** A size limit of blockgate's CBOR profile was crossed: a 400 from the HTTP routes. */
export class CborLimitExceeded extends Error {
  override name = 'CborLimitExceeded'
}

/** The body being decoded, so a refusal can say at which byte. */
let decodingSource: Uint8Array | null = null

function bignumMagnitude(tag: 2 | 3, content: unknown): bigint {
  if (!(content instanceof Uint8Array))
    throw new Error(`a bignum (tag ${tag}) must hold a byte string`)
  if (content.byteLength > BIGNUM.maxBytes) {
    const source = decodingSource
    // A definite-length byte string is a view of the input: its offset says where it is.
    const where =
      source && content.buffer === source.buffer
        ? ` (its bytes from offset ${content.byteOffset - source.byteOffset})`
        : ''
    throw new CborLimitExceeded(
      `a bignum (tag ${tag}) of ${content.byteLength} bytes${where} is over the ${BIGNUM.maxBytes}-byte limit (integers of up to ${BIGNUM.maxDigits} digits)`,
    )
  }
  if (content.byteLength === 0) return 0n
  // Hex text to BigInt is linear; cbor-x's shift-and-add loop is quadratic.
  return BigInt(`0x${toHex(content)}`)
}
decodeTag(2, (content: unknown) => bignumMagnitude(2, content))
decodeTag(3, (content: unknown) => -1n - bignumMagnitude(3, content))

/**
 * A number that must reach Python as a float although JavaScript cannot tell it from an
 * integer: a JSON `2.0`, `-0.0` or `3e9`, or a CBOR float of whole value. cbor-x writes a
 * whole-valued number as a CBOR integer (cbor2 then gives an int); this is written as a
 * float64, untagged. It stands in the decoded tree as a leaf, like a kind value.
 */
export class Float64 {
  constructor(readonly value: number) {}
  toJSON(): number {
    return this.value
  }
}
// No tag (getTag answers undefined): the encoder's own float path, told not to take the
// integer branch for this one value.
addExtension({
  Class: Float64,
  getTag: () => undefined,
  encode(this: { alwaysUseFloat?: boolean }, value: Float64, write: Write) {
    this.alwaysUseFloat = true
    try {
      write(value.value)
    } finally {
      this.alwaysUseFloat = false
    }
  },
} as never)

/**
 * A text holding a lone surrogate (`"\ud800"` in JSON): Python's json.loads gives such a
 * str, but it is not Unicode and CBOR text (UTF-8) cannot hold it. Inside worker frames it
 * travels as its UTF-16LE code units under this tag, and the runtime rebuilds the same str
 * (serializers/registry.py). Never valid from a client.
 */
const SURROGATE_TEXT = { tag: 61445 } as const
export class SurrogateText {
  constructor(readonly text: string) {}
  toJSON(): string {
    return this.text
  }
}
encodeClass(
  SurrogateText,
  SURROGATE_TEXT.tag,
  (value, write) => write(utf16le(value.text)),
  (content: unknown) => new Tag(content, SURROGATE_TEXT.tag),
)

/** Aborts keepWholeFloats: the body nests deeper than any walk will accept it. */
const TOO_DEEP = Symbol('too deep')
/** A position in the bytes whose decoded value is not held by a plain map or array. */
const UNHELD = Symbol('unheld')

/**
 * Wraps every whole-valued float in `value` (what decodeCbor gave for `bytes`) in a
 * Float64, so that a `2.0` sent as a CBOR float reaches Python as a float: cbor-x decodes
 * it to the number 2, which it would write back as an integer. Only plain maps (by their
 * text keys) and arrays are looked into; kinds and other tags define their own types.
 * With `only`, just that key of the top-level map is looked into. Changes `value` in place.
 */
export function keepWholeFloats(bytes: Uint8Array, value: unknown, only?: string): unknown {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let at = 0
  const argument = (info: number): number => {
    if (info < 24) return info
    const start = at
    at += info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : 8
    if (info === 24) return view.getUint8(start)
    if (info === 25) return view.getUint16(start)
    if (info === 26) return view.getUint32(start)
    return view.getUint32(start) * 2 ** 32 + view.getUint32(start + 4)
  }
  const item = (held: unknown, depth: number): unknown => {
    if (depth > WHOLE_FLOATS_DEPTH) throw TOO_DEEP
    const initial = bytes[at++]!
    const major = initial >> 5
    const info = initial & 0x1f
    if (major === 7) {
      if (info < 25 || info > 27) {
        if (info === 24) at++
        return held
      }
      at += info === 25 ? 2 : info === 26 ? 4 : 8
      return typeof held === 'number' && Number.isInteger(held) ? new Float64(held) : held
    }
    if (info === 31) {
      // Indefinite length: items (or chunks) up to the break byte.
      if (major === 2 || major === 3) {
        while (bytes[at] !== 0xff) item(UNHELD, depth + 1)
        at++
        return held
      }
      let i = 0
      while (bytes[at] !== 0xff) {
        if (major === 4) place(held, i++, depth)
        else pair(held, depth)
      }
      at++
      return held
    }
    const n = argument(info)
    if (major <= 1) return held
    if (major === 2 || major === 3) {
      at += n
      return held
    }
    if (major === 6) {
      item(UNHELD, depth + 1)
      return held
    }
    for (let i = 0; i < n; i++) {
      if (major === 4) place(held, i, depth)
      else pair(held, depth)
    }
    return held
  }
  const place = (array: unknown, i: number, depth: number) => {
    if (!Array.isArray(array)) return void item(UNHELD, depth + 1)
    const before = array[i]
    const after = item(before, depth + 1)
    if (after !== before) array[i] = after
  }
  const pair = (map: unknown, depth: number) => {
    const keyStart = at
    const initial = bytes[at]!
    item(UNHELD, depth + 1)
    // Only a definite text key names the property its value went to.
    let key: string | null = null
    if (
      initial >> 5 === 3 &&
      (initial & 0x1f) !== 31 &&
      map !== null &&
      typeof map === 'object' &&
      !Array.isArray(map)
    ) {
      const headLength = (initial & 0x1f) < 24 ? 1 : 1 + [1, 2, 4, 8][(initial & 0x1f) - 24]!
      key = UTF8.decode(bytes.subarray(keyStart + headLength, at))
    }
    const held =
      key !== null &&
      (depth > 0 || only === undefined || key === only) &&
      Object.hasOwn(map as object, key)
        ? (map as Record<string, unknown>)[key]
        : UNHELD
    const after = item(held, depth + 1)
    if (after !== held)
      Object.defineProperty(map, key!, {
        value: after,
        enumerable: true,
        writable: true,
        configurable: true,
      })
  }
  try {
    return item(value, 0)
  } catch (error) {
    if (error === TOO_DEEP) return value // the kinds' walk refuses such a body with its path
    throw error
  }
}
const WHOLE_FLOATS_DEPTH = 200

/** Registers how a class of ours is written; each kind's plugin calls this once. */
export function registerEncoder<T>(
  Class: Function & { prototype: T },
  tag: number,
  toContent: (value: T) => unknown,
): void {
  encodeClass(Class, tag, (value, write) => write(withLinearBignums(toContent(value))))
}

const UINT64_END = 1n << 64n

/**
 * cbor-x writes an integer beyond 64 bits with a shift loop that is quadratic (1.6 ms for
 * one of 2 KiB: a body of them would freeze the event loop for seconds when its inputs go
 * on to a worker). Such integers are written here instead, as the same bytes: tag 2 (or 3,
 * for -1 - n) over the big-endian magnitude. Only what holds one is copied.
 */
function withLinearBignums(value: unknown): unknown {
  if (typeof value === 'bigint')
    return value < UINT64_END && value > -UINT64_END ? value : bignumTag(value)
  if (value === null || typeof value !== 'object') return value
  if (Array.isArray(value)) {
    let copy: unknown[] | null = null
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i]
      if (!mayHoldBignum(item)) continue // most items: no call at all
      const written = withLinearBignums(item)
      if (written === item) continue
      copy ??= value.slice()
      copy[i] = written
    }
    return copy ?? value
  }
  if (value instanceof Tag) {
    const written = withLinearBignums(value.value)
    return written === value.value ? value : new Tag(written, value.tag)
  }
  if (!isPlainObject(value)) return value // kinds and byte views are written by their own encoders
  let copy: Record<string, unknown> | null = null
  for (const key of Object.keys(value)) {
    const item = value[key]
    if (!mayHoldBignum(item)) continue
    const written = withLinearBignums(item)
    if (written !== item) {
      copy ??= { ...value } // spread keeps an own "__proto__" key an own key
      Object.defineProperty(copy, key, {
        value: written,
        enumerable: true,
        writable: true,
        configurable: true,
      })
    }
  }
  return copy ?? value
}

const mayHoldBignum = (value: unknown): boolean =>
  typeof value === 'bigint' ||
  (typeof value === 'object' && value !== null && !ArrayBuffer.isView(value))

function bignumTag(value: bigint): Tag {
  const negative = value < 0n
  const magnitude = negative ? -1n - value : value
  const hex = magnitude.toString(16)
  return new Tag(fromHex(hex), negative ? 3 : 2)
}

/**
 * Encodes one CBOR item. The bytes stay valid: cbor-x never writes over the region it
 * returned, it continues after it or moves to a new buffer.
 */
export function encodeCbor(value: unknown): Uint8Array {
  return codec.encode(withLinearBignums(value))
}

decodeTag(REGION.tag, (ref: unknown) => {
  const frame = frameIn
  if (!frame) throw new Error(`tag ${REGION.tag} is internal to blockgate's worker frames`)
  const region = frame.region
  if (!region)
    throw new Error(
      `region reference ${describeReference(ref)} in a frame from a runtime that has no shared region`,
    )
  const at = bufferReference(ref)
  if (!at) throw new Error(`region reference ${describeReference(ref)} is malformed`)
  const [offset, length] = at
  const what = `region reference [${offset}, ${length}]`
  // Every check before the copy: nothing is read for a reference that is refused.
  if (offset + length > region.size)
    throw new Error(`${what} is outside the ${region.size}-byte region`)
  // Smaller buffers travel in the frame itself; this also bounds the reads per frame.
  if (length < REGION.minBytes)
    throw new Error(
      `${what} is shorter than the ${REGION.minBytes} bytes a buffer needs to go through the region`,
    )
  const earlier = frame.regionSpans.find(([start, end]) => offset < end && start < offset + length)
  if (earlier) {
    throw new Error(
      `${what} overlaps [${earlier[0]}, ${earlier[1] - earlier[0]}], referenced earlier in this frame: each region byte may be referenced once`,
    )
  }
  spendOnReference(frame, what, length)
  frame.regionSpans.push([offset, offset + length])
  return region.read(offset, length)
})

/** Encodes a worker frame's head; typed arrays of SIDECAR.minBytes or more go to `buffers`. */
export function encodeWithSidecar(
  value: unknown,
  region: SharedRegion | null = null,
): { head: Uint8Array; buffers: Uint8Array[] } {
  sidecarOut = { buffers: [], size: 0, region }
  try {
    return { head: codec.encode(withLinearBignums(value)), buffers: sidecarOut.buffers }
  } finally {
    sidecarOut = null
  }
}

/**
 * Decodes a worker frame's head whose references point into `sidecar` and `region`; all of
 * its references together may hand over at most `maxReferencedBytes`.
 */
export function decodeWithSidecar(
  head: Uint8Array,
  sidecar: Uint8Array,
  region: SharedRegion | null,
  maxReferencedBytes: number,
): unknown {
  frameIn = { sidecar, region, budget: maxReferencedBytes, referenced: 0, regionSpans: [] }
  try {
    return decodeItem(head)
  } finally {
    frameIn = null
  }
}

/** Decodes exactly one CBOR item; throws on malformed or trailing bytes. */
export function decodeCbor(bytes: Uint8Array): unknown {
  return decodeItem(bytes)
}

// ---- the decoder: cbor-x, minus what it does on its own that no hook can turn off ----

/**
 * cbor-x reads tags 57337, 57342 and 57343 (bundled strings, record definitions; and, as
 * it looks at their low 13 bits only, 65529, 65534, 65535 and larger tags that share
 * them) before any extension, and remembers
 * the records a body defines for every later decode: one tenant's body could redefine how
 * another's tag 61441 reads. Its one earlier look is into `structures`, indexed by a tag's
 * low 13 bits; these entries refuse the tag there. `slice` is what tag 1399353956
 * (cbor-x's shared structures) would copy into the value.
 */
const refused = (what: string) => ({
  read(): never {
    throw new Error(`${what} is not accepted: blockgate's CBOR has no cbor-x records or bundles`)
  },
})
const RECORD_TAGS = {
  [0x1ff9]: refused(
    'tag 57337 (cbor-x bundled strings, or a larger tag with the same low 13 bits)',
  ),
  [0x1ffe]: refused(
    'tag 57342 (cbor-x record definitions, or a larger tag with the same low 13 bits)',
  ),
  [0x1fff]: refused('tag 57343 (a cbor-x record, or a larger tag with the same low 13 bits)'),
  slice(): never {
    throw new Error('tag 1399353956 (cbor-x shared structures) is not accepted')
  },
}

/**
 * cbor-x renames a map key "__proto__" to "__proto_" (so that it cannot set a prototype).
 * The key is kept instead, as JSON.parse keeps it: an own property, set without the
 * prototype setter. While decoding, the key reads as this stand-in, which no sender can
 * guess; the few values that hold it are rebuilt afterwards.
 */
const PROTO_STAND_IN = `__proto__\u0000${crypto.randomUUID()}`
let protoKeySeen = false

type DecoderInstance = { decode(bytes: Uint8Array): unknown }
const { Decoder } = decodeEntry as unknown as { Decoder: new (options: object) => DecoderInstance }

class ProfileDecoder extends Decoder {
  // cbor-x calls this for every map key when `keyMap` is set (and only then).
  decodeKey(key: unknown): unknown {
    if (key !== '__proto__') return key
    protoKeySeen = true
    return PROTO_STAND_IN
  }
}
// A decoder of its own: the encoder's `structures` is where cbor-x remembers records.
const decoder = new ProfileDecoder({ ...options, keyMap: {}, structures: RECORD_TAGS })

const PACKED_VALUE_ERROR = 'No packed values available'

function decodeItem(bytes: Uint8Array): unknown {
  protoKeySeen = false
  decodingSource = bytes
  try {
    const value = decoder.decode(bytes)
    return protoKeySeen ? restoreProtoKeys(value) : value
  } catch (error) {
    // cbor-x's message for its packed values (tags 216–255, 27647–32767, 1811940352 and up
    // (most of them), and simple values other than false, true, null and undefined).
    if (error instanceof Error && error.message === PACKED_VALUE_ERROR) {
      throw new Error(
        'a cbor-x packed value (a simple value other than false, true, null or undefined, or a tag in 216–255, 27647–32767 or 1811940352–2147483647) is not accepted',
      )
    }
    throw error
  } finally {
    decodingSource = null
  }
}

/** Puts each stand-in key back as an own "__proto__" property, keeping the key order. */
function restoreProtoKeys(node: unknown): unknown {
  if (node === null || typeof node !== 'object') return node
  if (Array.isArray(node)) {
    for (let i = 0; i < node.length; i++) node[i] = restoreProtoKeys(node[i])
    return node
  }
  if (node instanceof Tag) {
    node.value = restoreProtoKeys(node.value)
    return node
  }
  if (!isPlainObject(node)) return node
  if (!Object.hasOwn(node, PROTO_STAND_IN)) {
    for (const key of Object.keys(node)) node[key] = restoreProtoKeys(node[key])
    return node
  }
  const rebuilt: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(node)) {
    Object.defineProperty(rebuilt, key === PROTO_STAND_IN ? '__proto__' : key, {
      value: restoreProtoKeys(value),
      enumerable: true,
      writable: true,
      configurable: true,
    })
  }
  return rebuilt
}
