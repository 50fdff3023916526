// The one explicit list of serializer plugins, and the walk that turns decoded CBOR into
// kind values. Adding a kind: a folder beside this file, and one line in each list below
// (this one and its Python twin in serializers/registry.py; test/integration/serializers/registry.test.ts
// checks they agree).
import { dateProblem, registerEncoder, Tag, TimestampText, TypedBytes } from './cbor.ts'
import { KindError, type KindMap, type KindName, type Serializer } from './serializer.ts'
import { detections } from './detections/index.ts'
import { image } from './image/index.ts'
import { ndarray } from './ndarray/index.ts'
import { videoMetadata } from './video_metadata/index.ts'

export const SERIALIZERS: readonly Serializer[] = [
  ndarray,
  detections,
  videoMetadata,
  image,
] as readonly Serializer[]

export { KindError }
export type { KindMap, KindName, Serializer }

/** Caps on any decoded value, whatever the body limit. */
const WALK_LIMITS = { maxDepth: 64, maxNodes: 1_000_000 } as const

const byName = new Map<string, Serializer>()
const byTag = new Map<number, Serializer>()
for (const serializer of SERIALIZERS) {
  byName.set(serializer.kind, serializer)
  for (const tag of serializer.tags) byTag.set(tag, serializer)
  registerEncoder(serializer.Class, serializer.tags[0]!, (value) =>
    serializer.encode(value as never),
  )
}

export function serializerFor<K extends KindName>(kind: K): Serializer<K> {
  return byName.get(kind) as unknown as Serializer<K>
}

/** The kind a value is encoded as, if it is one. */
export function kindOf(value: unknown): KindName | null {
  for (const serializer of SERIALIZERS)
    if (value instanceof serializer.Class) return serializer.kind
  return null
}

/**
 * Turns what cbor-x decoded (Tag objects, typed-array bytes, plain values) into kind
 * values, validating each one. Errors name the path, e.g. `inputs.dets.confidence`.
 */
export function decodeKinds(value: unknown, path: string): unknown {
  let nodes = 0
  const walk = (node: unknown, at: string, depth: number): unknown => {
    if (++nodes > WALK_LIMITS.maxNodes)
      throw new KindError(at, `more than ${WALK_LIMITS.maxNodes} values in one request`)
    if (depth > WALK_LIMITS.maxDepth)
      throw new KindError(at, `nested deeper than ${WALK_LIMITS.maxDepth} levels`)
    if (
      node instanceof TimestampText ||
      (node instanceof Tag && (node.tag === 0 || node.tag === 1))
    ) {
      const problem = dateProblem(node)
      if (problem) throw new KindError(at, problem)
      return node
    }
    if (node instanceof TypedBytes || node instanceof Tag) {
      const serializer = byTag.get(node.tag)
      if (!serializer)
        throw new KindError(at, `unknown CBOR tag ${node.tag}: no kind is carried under it`)
      const content = node instanceof Tag ? node.value : node
      return serializer.decode(node.tag, content, at, (c, p) => walk(c, p, depth + 1))
    }
    if (Array.isArray(node)) return node.map((item, i) => walk(item, `${at}[${i}]`, depth + 1))
    if (
      node !== null &&
      typeof node === 'object' &&
      Object.getPrototypeOf(node) === Object.prototype
    ) {
      const out: Record<string, unknown> = {}
      for (const [key, item] of Object.entries(node)) {
        const value = walk(item, `${at}.${key}`, depth + 1)
        // `out.__proto__ = v` would set out's prototype: keep the key as JSON.parse does.
        if (key === '__proto__')
          Object.defineProperty(out, key, {
            value,
            enumerable: true,
            writable: true,
            configurable: true,
          })
        else out[key] = value
      }
      return out
    }
    return node
  }
  return walk(value, path, 0)
}
