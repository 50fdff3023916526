// Bodies on the wire: CBOR or JSON in, the same type out (unless `Accept` asks for the
// other). Decoding errors become 400s that say what was wrong with the bytes.
import {
  BIGNUM,
  CborLimitExceeded,
  decodeCbor,
  encodeCbor,
  Float64,
  keepWholeFloats,
  SurrogateText,
} from '../../serializers/cbor.ts'
import { OutputsDocument } from '../backends/backend.ts'
import { BadRequest, UnsupportedMediaType } from '../errors.ts'

export type WireFormat = 'json' | 'cbor'

const MEDIA_TYPES: Record<WireFormat, string> = {
  json: 'application/json',
  cbor: 'application/cbor',
}

function formatOfContentType(contentType: string | null): WireFormat | null {
  const essence = (contentType ?? '').split(';')[0]!.trim().toLowerCase()
  if (essence === 'application/cbor') return 'cbor'
  if (essence === 'application/json' || essence === '') return 'json'
  return null
}

/** The format a response to this request should use. */
export function responseFormat(request: Request): WireFormat {
  const accept = (request.headers.get('accept') ?? '').toLowerCase()
  if (accept.includes('application/cbor')) return 'cbor'
  if (accept.includes('application/json')) return 'json'
  return formatOfContentType(request.headers.get('content-type')) ?? 'json'
}

export async function readBody(
  request: Request,
  onSize?: (bytes: number) => void,
): Promise<unknown> {
  const format = formatOfContentType(request.headers.get('content-type'))
  if (format === null) {
    throw new UnsupportedMediaType(
      `Content-Type ${JSON.stringify(request.headers.get('content-type'))} is not supported: send application/json or application/cbor`,
    )
  }
  const bytes = new Uint8Array(await request.arrayBuffer())
  onSize?.(bytes.byteLength)
  if (bytes.byteLength === 0) throw new BadRequest('body: empty; expected a run request')
  if (format === 'cbor') {
    try {
      // A float of whole value stays a float for the block, as cbor2 reads it.
      return keepWholeFloats(bytes, decodeCbor(bytes), 'inputs')
    } catch (error) {
      if (error instanceof CborLimitExceeded) throw new BadRequest(`body: ${error.message}`)
      throw new BadRequest(`body: not valid CBOR (${(error as Error).message})`)
    }
  }
  return parseJson(new TextDecoder().decode(bytes), 'body', 'inputs')
}

/**
 * Where a JSON text holds a block's inputs: `root` (all of it: webexec's inputs_json),
 * `inputs` (the top-level field of that name: a /v1/run body) or `none`.
 */
export type JsonInputs = 'root' | 'inputs' | 'none'

/**
 * JSON text as a value; a 400 naming `what` if it is not JSON. Large integers are kept
 * exact everywhere. Inputs are read as Python's json.loads reads them, since that is what
 * a block gets under Inference: a number written with a fraction or an exponent (`2.0`,
 * `-0.0`, `3e9`) is a float (a Float64 when whole: JavaScript has no whole float),
 * `NaN`, `Infinity` and `-Infinity` are read (as is the lossless form blockgate's JSON
 * answers write them in, `{"_type":"float","value":"NaN"}`), and a lone surrogate
 * (`"\ud800"`) reaches the block as the str json.loads makes of it (SurrogateText).
 * Elsewhere a lone surrogate is a 400 naming where it is; so is one in a key, which the
 * worker frame cannot carry.
 */
export function parseJson(text: string, what: string, inputs: JsonInputs = 'none'): unknown {
  const readInputs = inputs !== 'none'
  let value: unknown
  try {
    value = JSON.parse(text, reviver(what, readInputs, null))
  } catch (error) {
    if (error instanceof BadRequest) throw error
    // Only when JSON.parse refused the text: Python's bare non-finite tokens, in inputs.
    const rewritten = readInputs ? withoutNonFiniteTokens(text) : null
    if (rewritten === null)
      throw new BadRequest(`${what}: not valid JSON (${(error as Error).message})`)
    try {
      value = JSON.parse(rewritten, reviver(what, true, NON_FINITE_STAND_IN))
    } catch (second) {
      if (second instanceof BadRequest) throw second
      throw new BadRequest(`${what}: not valid JSON (${(error as Error).message})`)
    }
  }
  if (inputs === 'root')
    return mayHoldLoneSurrogates(text) ? surrogatesChecked(value, what, true) : value
  if (inputs === 'inputs' && isPlainRecord(value)) {
    for (const key of Object.keys(value))
      if (key !== 'inputs') value[key] = withPlainNumbers(value[key])
  }
  if (!mayHoldLoneSurrogates(text)) return value
  if (inputs === 'none' || !isPlainRecord(value)) return surrogatesChecked(value, what, false)
  for (const key of Object.keys(value))
    value[key] = surrogatesChecked(value[key], key, key === 'inputs')
  return value
}

const isPlainRecord = (value: unknown): value is Record<string, unknown> =>
  value !== null &&
  typeof value === 'object' &&
  !Array.isArray(value) &&
  Object.getPrototypeOf(value) === Object.prototype

const FRACTION_OR_EXPONENT = /[.eE]/
const NON_FINITE_TEXT: Record<string, number> = {
  NaN: Number.NaN,
  Infinity: Number.POSITIVE_INFINITY,
  '-Infinity': Number.NEGATIVE_INFINITY,
}
/** What a bare NaN, Infinity or -Infinity becomes before the second JSON.parse. */
const NON_FINITE_STAND_IN = `\u0000blockgate-non-finite-${crypto.randomUUID()}:`

function reviver(what: string, readInputs: boolean, standIn: string | null) {
  return function (
    this: unknown,
    key: string,
    value: unknown,
    context?: { source?: string },
  ): unknown {
    if (typeof value === 'number') {
      // JSON.parse turns 1700000000000 into a double (and an integer of 309 digits or more
      // into Infinity), and cbor-x writes doubles for integers beyond 32 bits: Python would
      // then see a float. Integer literals outside the 32-bit range become BigInt.
      const source = context?.source
      // A fraction is a float as it is; whole values (and integers past the double range,
      // Infinity here) are looked at.
      if (source === undefined || (Number.isFinite(value) && !Number.isInteger(value))) return value
      if (readInputs && FRACTION_OR_EXPONENT.test(source))
        return Number.isFinite(value) ? new Float64(value) : value
      return Math.abs(value) < 2 ** 31 || !/^-?\d+$/.test(source)
        ? value
        : exactInteger(source, key, what)
    }
    if (!readInputs || value === null || typeof value !== 'object') {
      if (standIn !== null && typeof value === 'string' && value.startsWith(standIn))
        return NON_FINITE_TEXT[value.slice(standIn.length)]
      return value
    }
    const marker = value as { _type?: unknown; value?: unknown; dtype?: unknown }
    // An array with a numeric dtype: 2.0 and 2 make the same element, and a plain number
    // is written much faster than a Float64 (JSON arrays of whole floats are common).
    if (
      marker._type === 'ndarray' &&
      typeof marker.dtype === 'string' &&
      NUMERIC_DTYPE.test(marker.dtype)
    )
      return withPlainElements(value)
    if (
      marker._type === 'float' &&
      typeof marker.value === 'string' &&
      Object.keys(marker).length === 2 &&
      Object.hasOwn(NON_FINITE_TEXT, marker.value)
    ) {
      return NON_FINITE_TEXT[marker.value]
    }
    return value
  }
}

const NUMERIC_DTYPE = /^(bool|u?int(8|16|32|64)|float(16|32|64))$/

/** Float64s in an ndarray's nested value lists made numbers again, but for -0.0 (whose sign a number written as an integer would lose). */
function withPlainElements(node: unknown): unknown {
  if (Array.isArray(node)) {
    for (let i = 0; i < node.length; i++) {
      const item: unknown = node[i]
      if (item instanceof Float64) {
        if (!Object.is(item.value, -0)) node[i] = item.value
      } else if (Array.isArray(item)) withPlainElements(item)
    }
  } else if (isPlainRecord(node) && Array.isArray(node.value)) withPlainElements(node.value)
  return node
}

// Up to the size CBOR bignums have in blockgate (text to BigInt is quadratic).
function exactInteger(source: string, key: string, what: string): bigint {
  const digits = source.length - (source.startsWith('-') ? 1 : 0)
  if (digits > BIGNUM.maxDigits) {
    throw new BadRequest(
      `${what}: the integer under ${JSON.stringify(key)} has ${digits} digits, over the limit of ${BIGNUM.maxDigits} (${BIGNUM.maxBytes}-byte bignums)`,
    )
  }
  return BigInt(source)
}

/** A Float64 outside inputs is the number it holds (a timeout of 5000.0 is 5000). */
function withPlainNumbers(value: unknown): unknown {
  if (value instanceof Float64) return value.value
  if (Array.isArray(value)) return value.map(withPlainNumbers)
  if (isPlainRecord(value))
    for (const key of Object.keys(value)) value[key] = withPlainNumbers(value[key])
  return value
}

/**
 * The text with every bare NaN, Infinity and -Infinity outside strings made a string that
 * the reviver turns back into that number; null when there is none (the text is then
 * simply not JSON).
 */
function withoutNonFiniteTokens(text: string): string | null {
  let out = ''
  let from = 0
  let found = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x22) {
      // Skip the string: up to the next quote that is not escaped.
      for (i++; i < text.length && text.charCodeAt(i) !== 0x22; i++)
        if (text.charCodeAt(i) === 0x5c) i++
      continue
    }
    const token =
      c === 0x4e
        ? 'NaN'
        : c === 0x49
          ? 'Infinity'
          : c === 0x2d && text.charCodeAt(i + 1) === 0x49
            ? '-Infinity'
            : null
    if (token === null || !text.startsWith(token, i)) continue
    out += text.slice(from, i) + JSON.stringify(NON_FINITE_STAND_IN + token)
    from = i + token.length
    i = from - 1
    found = true
  }
  return found ? out + text.slice(from) : null
}

/** A lone surrogate can only come from a \uD800–\uDFFF escape: a decoded body has none. */
const mayHoldLoneSurrogates = (text: string): boolean =>
  text.includes('\\u') && /\\u[dD][89a-fA-F]/.test(text)

const isWellFormed = (s: string): boolean =>
  (s as unknown as { isWellFormed(): boolean }).isWellFormed()

/**
 * `value` with each text holding a lone surrogate made a SurrogateText when it is an
 * input (`asInput`), else a 400 naming its path; a key holding one is a 400 either way.
 */
function surrogatesChecked(value: unknown, path: string, asInput: boolean): unknown {
  if (typeof value === 'string') {
    if (isWellFormed(value)) return value
    if (asInput) return new SurrogateText(value)
    throw new BadRequest(
      `${path}: holds a lone surrogate (a \\uD800–\\uDFFF escape not part of a pair), which is not Unicode text`,
    )
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++)
      value[i] = surrogatesChecked(value[i], `${path}[${i}]`, asInput)
    return value
  }
  if (!isPlainRecord(value)) return value
  for (const key of Object.keys(value)) {
    if (!isWellFormed(key)) {
      throw new BadRequest(
        `${path}: the key ${JSON.stringify(key)} holds a lone surrogate (a \\uD800–\\uDFFF escape not part of a pair); blockgate carries such text in values only`,
      )
    }
    value[key] = surrogatesChecked(value[key], `${path}.${key}`, asInput)
  }
  return value
}

export function encodeBody(
  value: unknown,
  format: WireFormat,
): { body: Blob | Uint8Array | string; contentType: string } {
  const contentType = MEDIA_TYPES[format]
  const spliced = spliceDocuments(value, format)
  if (spliced) return { body: spliced, contentType }
  if (format === 'cbor') return { body: encodeCbor(value), contentType }
  return { body: JSON.stringify(value, jsonSafe), contentType }
}

/**
 * A body whose top-level fields include finished documents from the runtime, with those
 * documents spliced in byte for byte; null when there is nothing to splice. A Blob of the
 * pieces: a Response takes it as it is, where it would copy a Uint8Array once more after
 * the pieces were concatenated (a 26 MB document paid two copies, not one).
 */
function spliceDocuments(value: unknown, format: WireFormat): Blob | null {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null
  const entries = Object.entries(value)
  const documents = entries
    .filter(([, field]) => field instanceof OutputsDocument)
    .map(([, field]) => field as OutputsDocument)
  if (documents.length === 0) return null
  // The run asked the runtime for the response's format; anything else is a bug here.
  if (documents.some((document) => document.format !== format))
    throw new Error(`a ${documents[0]!.format} document cannot go into a ${format} body`)
  const parts: (Uint8Array | string)[] = []
  if (format === 'cbor') {
    if (entries.length >= 24) return null
    parts.push(new Uint8Array([0xa0 + entries.length])) // a map of that many pairs
    for (const [key, field] of entries) {
      parts.push(encodeCbor(key))
      if (field instanceof OutputsDocument) parts.push(...field.pieces)
      else parts.push(encodeCbor(field))
    }
  } else {
    entries.forEach(([key, field], i) => {
      parts.push(`${i === 0 ? '{' : ','}${JSON.stringify(key)}:`)
      if (field instanceof OutputsDocument) parts.push(...field.pieces)
      else parts.push(JSON.stringify(field, jsonSafe) ?? 'null')
    })
    parts.push('}')
  }
  return new Blob(parts)
}

// ES2024's JSON.rawJSON (Bun has it; TypeScript's lib does not list it yet).
const rawJSON = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON

function jsonSafe(_key: string, value: unknown): unknown {
  if (typeof value !== 'bigint') return value
  return Number.isSafeInteger(Number(value)) ? Number(value) : rawJSON(value.toString())
}
