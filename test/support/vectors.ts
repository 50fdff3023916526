// The golden vectors every kind keeps in serializers/<kind>/vectors: index.json describes
// each vector language-neutrally, <name>.cbor holds its bytes (make_vectors.py writes both).
import { existsSync, readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { decodeCbor } from '../../serializers/cbor.ts'
import { decodeKinds, SERIALIZERS } from '../../serializers/index.ts'

export const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex')

/** CBOR bytes decoded as the server decodes a request's inputs: kinds become their TS classes. */
export const decodeKind = (bytes: Uint8Array, path = 'v') => decodeKinds(decodeCbor(bytes), path)

const vectorsOf = (kind: string) => resolve(import.meta.dir, '../../serializers', kind, 'vectors')

/** A kind's vectors, in index.json's order, each entry with its CBOR bytes. */
export function goldenVectors<Entry extends { name: string }>(
  kind: string,
): (Entry & { kind: string; raw: Uint8Array })[] {
  const dir = vectorsOf(kind)
  const index: Entry[] = JSON.parse(readFileSync(resolve(dir, 'index.json'), 'utf8'))
  return index.map((entry) => ({
    ...entry,
    kind,
    raw: new Uint8Array(readFileSync(resolve(dir, `${entry.name}.cbor`))),
  }))
}

/** The vectors of every plugin in the registry that keeps some. */
export function allGoldenVectors(): { name: string; kind: string; raw: Uint8Array }[] {
  return SERIALIZERS.filter(({ kind }) =>
    existsSync(resolve(vectorsOf(kind), 'index.json')),
  ).flatMap(({ kind }) => goldenVectors(kind))
}
