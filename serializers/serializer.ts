// What a serializer plugin is: one workflow kind (ndarray, image, detections, …) carried
// on the wire under its CBOR tag. Each plugin folder holds its TS half (index.ts), its
// Python half (codec.py) and golden vectors; serializers/index.ts lists them.

/**
 * Kind name → the TS value of that kind. Empty here: each plugin widens it from its own
 * file (`declare module '../serializer.ts' { interface KindMap { ndarray: NDArray } }`),
 * so `serializerFor('image')` does not compile until an image plugin exists.
 */
// biome-ignore lint: an interface to be merged into
export interface KindMap {}
export type KindName = keyof KindMap

/** Walks nested content, turning tagged values into kind values (the registry's decoder). */
export type DecodeNested = (content: unknown, path: string) => unknown

export interface Serializer<K extends KindName = KindName> {
  readonly kind: K
  /** The class of this kind's values: how outputs are recognised and encoded. */
  readonly Class: Function & { prototype: KindMap[K] }
  /** CBOR tags this kind is decoded from; the first is the one it is encoded under. */
  readonly tags: readonly number[]
  /** A value from a tag's content, validated; throws KindError naming `path` on bad input. */
  decode(tag: number, content: unknown, path: string, decodeNested: DecodeNested): KindMap[K]
  /** The tag content for a value (other kinds inside it are encoded by their own plugins). */
  encode(value: KindMap[K]): unknown
}

/** A value that does not fit its kind; the message starts with the input path. */
export class KindError extends Error {
  override name = 'KindError'
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(`${path}: ${problem}`)
  }
}
