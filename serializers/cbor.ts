// The one place cbor-x is configured. cbor-x's defaults (record extension, tagged
// Uint8Array, fixed-width map headers) are not what Python's cbor2 reads or what golden
// vectors can be compared against, so every option that matters is set here on purpose.
// test/cbor.test.ts pins this profile against cbor2.
// 'cbor-x/encode' is the pure-JS entry: the package root also loads the optional native
// cbor-extract addon, which aborts the Bun process when decoding longer strings.
import { Encoder, FLOAT32_OPTIONS } from 'cbor-x/encode'

const codec = new Encoder({
  useRecords: false, // no cbor-x record extension (tag 105): plain CBOR maps
  mapsAsObjects: true, // maps decode to plain objects (keys are strings on our wire)
  variableMapSize: true, // shortest map length header, as cbor2 writes it
  tagUint8Array: false, // byte strings go untagged (tag 64 only inside RFC 8746 arrays)
  useFloat32: FLOAT32_OPTIONS.NEVER, // a JS number keeps its full float64 precision
  int64AsNumber: false,
  pack: false,
  structuredClone: false,
  bundleStrings: false,
  copyBuffers: true, // decoded byte strings must not alias a buffer that gets reused
} as ConstructorParameters<typeof Encoder>[0])

/** Encodes one CBOR item. The result is a fresh copy, safe to keep after the next call. */
export function encodeCbor(value: unknown): Uint8Array {
  return Uint8Array.prototype.slice.call(codec.encode(value))
}

/** Decodes exactly one CBOR item; throws on malformed or trailing bytes. */
export function decodeCbor(bytes: Uint8Array): unknown {
  return codec.decode(bytes)
}
