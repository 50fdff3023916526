// Byte helpers the kinds need, written on web APIs only (no Node Buffer), so serializers/
// runs wherever the TypeScript client does: Bun, Node, and edge runtimes.

export const UTF8 = new TextDecoder('utf-8')

const HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0'))

export function toHex(bytes: Uint8Array): string {
  let text = ''
  for (const byte of bytes) text += HEX[byte]
  return text
}

/** The bytes of hex text (an odd length is read as if led by a 0). */
export function fromHex(hex: string): Uint8Array {
  const even = hex.length % 2 ? `0${hex}` : hex
  const bytes = new Uint8Array(even.length / 2)
  for (let i = 0; i < bytes.length; i++)
    bytes[i] = Number.parseInt(even.slice(2 * i, 2 * i + 2), 16)
  return bytes
}

/** Text as its UTF-16LE code units, lone surrogates included (what TextEncoder would replace). */
export function utf16le(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length * 2)
  const view = new DataView(bytes.buffer)
  for (let i = 0; i < text.length; i++) view.setUint16(2 * i, text.charCodeAt(i), true)
  return bytes
}
