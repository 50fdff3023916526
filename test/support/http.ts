// Helpers to send run requests in either wire format and read the answer back.
import { decodeCbor, encodeCbor } from '../../serializers/cbor.ts'

export type Format = 'json' | 'cbor'
export const FORMATS: Format[] = ['json', 'cbor']

export const SUM_BLOCK = 'def run(self, a, b):\n    return {"sum": a + b}\n'

export function runRequest(
  body: unknown,
  format: Format,
  headers: Record<string, string> = {},
): RequestInit {
  return {
    method: 'POST',
    headers: { 'content-type': `application/${format}`, ...headers },
    body: format === 'cbor' ? encodeCbor(body) : JSON.stringify(body),
  }
}

/** Decodes a response body by its content type (typed loosely: tests check it field by field). */
export async function readAnswer(response: Response): Promise<any> {
  const type = response.headers.get('content-type') ?? ''
  if (type.startsWith('application/cbor'))
    return decodeCbor(new Uint8Array(await response.arrayBuffer()))
  return response.json()
}
