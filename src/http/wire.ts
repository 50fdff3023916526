// Bodies on the wire: CBOR or JSON in, the same type out (unless `Accept` asks for the
// other). Decoding errors become 400s that say what was wrong with the bytes.
import { BIGNUM, CborLimitExceeded, decodeCbor, encodeCbor } from '../../serializers/cbor.ts'
import { OutputsDocument } from '../backends/backend.ts'
import { BadRequest, UnsupportedMediaType } from '../errors.ts'

export type WireFormat = 'json' | 'cbor'

const MEDIA_TYPES: Record<WireFormat, string> = { json: 'application/json', cbor: 'application/cbor' }

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

export async function readBody(request: Request, onSize?: (bytes: number) => void): Promise<unknown> {
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
      return decodeCbor(bytes)
    } catch (error) {
      if (error instanceof CborLimitExceeded) throw new BadRequest(`body: ${error.message}`)
      throw new BadRequest(`body: not valid CBOR (${(error as Error).message})`)
    }
  }
  return parseJson(new TextDecoder().decode(bytes), 'body')
}

/** JSON text as a value, large integers kept exact; a 400 naming `what` if it is not JSON. */
export function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text, (key: string, value: unknown, context?: { source?: string }) => keepLargeIntegers(key, value, context, what))
  } catch (error) {
    if (error instanceof BadRequest) throw error
    throw new BadRequest(`${what}: not valid JSON (${(error as Error).message})`)
  }
}

// JSON.parse turns 1700000000000 into a double (and an integer of 309 digits or more into
// Infinity), and cbor-x writes doubles for integers beyond 32 bits: Python would then see
// a float. Integer literals outside the 32-bit range become BigInt, which CBOR carries as
// an integer, up to the size CBOR bignums have in blockgate (text to BigInt is quadratic).
function keepLargeIntegers(key: string, value: unknown, context: { source?: string } | undefined, what: string): unknown {
  if (typeof value !== 'number' || Math.abs(value) < 2 ** 31) return value
  const source = context?.source
  if (source === undefined || !/^-?\d+$/.test(source)) return value
  const digits = source.length - (source.startsWith('-') ? 1 : 0)
  if (digits > BIGNUM.maxDigits) {
    throw new BadRequest(`${what}: the integer under ${JSON.stringify(key)} has ${digits} digits, over the limit of ${BIGNUM.maxDigits} (${BIGNUM.maxBytes}-byte bignums)`)
  }
  return BigInt(source)
}

export function encodeBody(value: unknown, format: WireFormat): { body: Uint8Array | string; contentType: string } {
  const contentType = MEDIA_TYPES[format]
  const spliced = spliceDocuments(value, format)
  if (spliced) return { body: spliced, contentType }
  if (format === 'cbor') return { body: encodeCbor(value), contentType }
  return { body: JSON.stringify(value, jsonSafe), contentType }
}

/**
 * A body whose top-level fields include finished documents from the runtime, written
 * with those documents spliced in byte for byte; null when there is nothing to splice.
 */
function spliceDocuments(value: unknown, format: WireFormat): Uint8Array | null {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null
  const entries = Object.entries(value)
  const documents = entries.filter(([, field]) => field instanceof OutputsDocument).map(([, field]) => field as OutputsDocument)
  if (documents.length === 0) return null
  // The run asked the runtime for the response's format; anything else is a bug here.
  if (documents.some((document) => document.format !== format)) throw new Error(`a ${documents[0]!.format} document cannot go into a ${format} body`)
  const parts: Uint8Array[] = []
  const text = (s: string) => parts.push(Buffer.from(s))
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
      text(`${i === 0 ? '{' : ','}${JSON.stringify(key)}:`)
      if (field instanceof OutputsDocument) parts.push(...field.pieces)
      else text(JSON.stringify(field, jsonSafe) ?? 'null')
    })
    text('}')
  }
  return Buffer.concat(parts)
}

// ES2024's JSON.rawJSON (Bun has it; TypeScript's lib does not list it yet).
const rawJSON = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON

function jsonSafe(_key: string, value: unknown): unknown {
  if (typeof value !== 'bigint') return value
  return Number.isSafeInteger(Number(value)) ? Number(value) : rawJSON(value.toString())
}
