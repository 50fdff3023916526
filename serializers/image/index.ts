// image: Roboflow's WorkflowImageData on the wire. Tag 61441 over a map, in this order:
//   pixels          ndarray: H×W gray or H×W×C, C = 1, 3 (BGR) or 4 (BGRA); uint8/uint16;
//                   H, W from 1 to 16384            — or —
//   encoded         byte string: the image file as sent (JPEG, PNG, WebP, BMP or TIFF by
//                   its magic bytes)
//   parent_id       text
//   parent_origin   {offset_x, offset_y, width, height}, omitted when unknown
//   root_parent_id  text (read as parent_id when missing)
//   root_origin     {offset_x, offset_y, width, height}, omitted when unknown
//   image_reference text, omitted when none
//   video_metadata  the video_metadata kind, omitted when none
// Exactly one of pixels and encoded; neither is ever re-encoded. Origin numbers are
// integers, offsets ≥ 0, sizes ≥ 1. Twin of codec.py (which also has the JSON form).
import { toHex } from '../bytes.ts'
import { ByteString } from '../cbor.ts'
import { KindError, type DecodeNested, type Serializer } from '../serializer.ts'
import { NDArray } from '../ndarray/index.ts'
import { describe, fieldsOf, VideoMetadata } from '../video_metadata/index.ts'

export const IMAGE_TAG = 61441
const IMAGE_LIMITS = {
  maxSide: 16384,
  channels: [1, 3, 4],
  dtypes: ['uint8', 'uint16'],
  maxCoordinate: 2 ** 31 - 1,
} as const
const FIELDS = [
  'pixels',
  'encoded',
  'parent_id',
  'parent_origin',
  'root_parent_id',
  'root_origin',
  'image_reference',
  'video_metadata',
] as const
const ORIGIN_FIELDS = ['offset_x', 'offset_y', 'width', 'height'] as const

export type ImageFormat = 'jpeg' | 'png' | 'webp' | 'bmp' | 'tiff'

/** Where an image sits in its parent: left-top corner and the parent's size, in pixels. */
export interface Origin {
  readonly offsetX: number
  readonly offsetY: number
  readonly width: number
  readonly height: number
}

export interface ImageParent {
  readonly id: string
  /** null when unknown: the Python side then takes (0, 0, W, H) of the image. */
  readonly origin: Origin | null
}

export interface EncodedImage {
  readonly bytes: Uint8Array
  readonly format: ImageFormat
}

export interface WorkflowImageOptions {
  /** Default: `{ id: 'image', origin: null }`. */
  parent?: ImageParent
  /** Default: the parent (the image is its own root). */
  root?: ImageParent
  imageReference?: string | null
  videoMetadata?: VideoMetadata | null
}

/** An image in a workflow: its pixels or its encoded file, and where it came from. */
export class WorkflowImage {
  private constructor(
    readonly pixels: NDArray | null,
    readonly encoded: EncodedImage | null,
    readonly parent: ImageParent,
    readonly root: ImageParent,
    readonly imageReference: string | null,
    readonly videoMetadata: VideoMetadata | null,
  ) {}

  /** An image from its pixels (not copied); KindError names `path.pixels…` when they are not an image. */
  static fromPixels(
    pixels: NDArray,
    options: WorkflowImageOptions = {},
    path = 'image',
  ): WorkflowImage {
    checkPixels(pixels, `${path}.pixels`)
    return WorkflowImage.create(pixels, null, options, path)
  }

  /** An image from its encoded file (not copied); the format comes from the magic bytes. */
  static fromEncoded(
    bytes: Uint8Array,
    options: WorkflowImageOptions = {},
    path = 'image',
  ): WorkflowImage {
    const format = checkEncoded(bytes, `${path}.encoded`)
    return WorkflowImage.create(null, { bytes, format }, options, path)
  }

  private static create(
    pixels: NDArray | null,
    encoded: EncodedImage | null,
    {
      parent = { id: 'image', origin: null },
      root = parent,
      imageReference = null,
      videoMetadata = null,
    }: WorkflowImageOptions,
    path: string,
  ): WorkflowImage {
    checkParent(parent, path, 'parent_id', 'parent_origin')
    checkParent(root, path, 'root_parent_id', 'root_origin')
    if (imageReference !== null && typeof imageReference !== 'string') {
      throw new KindError(
        `${path}.image_reference`,
        `must be text, got ${describe(imageReference)}`,
      )
    }
    if (videoMetadata !== null && !(videoMetadata instanceof VideoMetadata)) {
      throw new KindError(
        `${path}.video_metadata`,
        `must be a VideoMetadata, got ${describe(videoMetadata)}`,
      )
    }
    return new WorkflowImage(pixels, encoded, parent, root, imageReference, videoMetadata)
  }
}

/** The format of an encoded image by its magic bytes, or null. */
export function imageFormat(bytes: Uint8Array): ImageFormat | null {
  const starts = (...magic: number[]) => magic.every((byte, i) => bytes[i] === byte)
  if (starts(0xff, 0xd8, 0xff)) return 'jpeg'
  if (starts(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)) return 'png'
  if (
    starts(0x52, 0x49, 0x46, 0x46) &&
    bytes[8] === 0x57 &&
    bytes[9] === 0x45 &&
    bytes[10] === 0x42 &&
    bytes[11] === 0x50
  )
    return 'webp'
  if (starts(0x42, 0x4d)) return 'bmp'
  if (starts(0x49, 0x49, 0x2a, 0x00) || starts(0x4d, 0x4d, 0x00, 0x2a)) return 'tiff'
  return null
}

function checkPixels(pixels: unknown, path: string): asserts pixels is NDArray {
  if (!(pixels instanceof NDArray))
    throw new KindError(path, `must be an ndarray (tag 40), got ${describe(pixels)}`)
  const { shape, dtype } = pixels
  const { maxSide, channels, dtypes } = IMAGE_LIMITS
  if (shape.length !== 2 && shape.length !== 3) {
    throw new KindError(
      `${path}.shape`,
      `an image is H×W or H×W×C, got ${shape.length} dimensions ${JSON.stringify(shape)}`,
    )
  }
  if (!shape.slice(0, 2).every((side) => side >= 1 && side <= maxSide)) {
    throw new KindError(
      `${path}.shape`,
      `height and width must be 1 to ${maxSide}, got ${JSON.stringify(shape)}`,
    )
  }
  if (shape.length === 3 && !(channels as readonly number[]).includes(shape[2]!)) {
    throw new KindError(`${path}.shape`, `channels must be 1, 3 (BGR) or 4 (BGRA), got ${shape[2]}`)
  }
  if (!(dtypes as readonly string[]).includes(dtype))
    throw new KindError(`${path}.dtype`, `an image is uint8 (or uint16), got ${dtype}`)
}

function checkEncoded(bytes: unknown, path: string): ImageFormat {
  if (!(bytes instanceof Uint8Array))
    throw new KindError(path, `must be a byte string, got ${describe(bytes)}`)
  if (bytes.byteLength === 0) throw new KindError(path, 'the encoded image is empty')
  const format = imageFormat(bytes)
  if (!format)
    throw new KindError(
      path,
      `not a JPEG, PNG, WebP, BMP or TIFF file (starts with ${toHex(bytes.subarray(0, 8))})`,
    )
  return format
}

function checkText(value: unknown, path: string): string {
  if (typeof value !== 'string') throw new KindError(path, `must be text, got ${describe(value)}`)
  return value
}

function checkParent(
  parent: ImageParent,
  path: string,
  idField: string,
  originField: string,
): void {
  checkText(parent?.id, `${path}.${idField}`)
  if (parent.origin === null) return
  const { offsetX, offsetY, width, height } = parent.origin
  checkOrigin([offsetX, offsetY, width, height], `${path}.${originField}`)
}

function checkOrigin(values: readonly unknown[], path: string): void {
  values.forEach((value, i) => {
    const least = i < 2 ? 0 : 1
    if (
      typeof value !== 'number' ||
      !Number.isInteger(value) ||
      value < least ||
      value > IMAGE_LIMITS.maxCoordinate
    ) {
      throw new KindError(
        `${path}.${ORIGIN_FIELDS[i]}`,
        `must be an integer from ${least} to ${IMAGE_LIMITS.maxCoordinate}, got ${describe(value)}`,
      )
    }
  })
}

function readOrigin(content: unknown, path: string): Origin {
  const fields = fieldsOf(content, ORIGIN_FIELDS, path, `{${ORIGIN_FIELDS.join(', ')}}`)
  for (const name of ORIGIN_FIELDS)
    if (!(name in fields)) throw new KindError(path, `missing field '${name}'`)
  const values = ORIGIN_FIELDS.map((name) => fields[name])
  checkOrigin(values, path)
  const [offsetX, offsetY, width, height] = values as [number, number, number, number]
  return { offsetX, offsetY, width, height }
}

function writeOrigin({
  offsetX,
  offsetY,
  width,
  height,
}: Origin): Record<(typeof ORIGIN_FIELDS)[number], number> {
  return { offset_x: offsetX, offset_y: offsetY, width, height }
}

function decodeImage(
  tag: number,
  content: unknown,
  path: string,
  decodeNested: DecodeNested,
): WorkflowImage {
  const fields = fieldsOf(content, FIELDS, path, `the image fields (tag ${tag})`)
  const optional = <T>(
    key: (typeof FIELDS)[number],
    read: (value: unknown, at: string) => T,
  ): T | null =>
    fields[key] === undefined || fields[key] === null ? null : read(fields[key], `${path}.${key}`)
  if ('pixels' in fields === 'encoded' in fields) {
    throw new KindError(
      path,
      "needs exactly one of 'pixels' (an ndarray) and 'encoded' (the image file's bytes)",
    )
  }
  let pixels: NDArray | null = null
  if ('pixels' in fields) {
    const decoded = decodeNested(fields.pixels, `${path}.pixels`)
    checkPixels(decoded, `${path}.pixels`)
    pixels = decoded
  } else checkEncoded(fields.encoded, `${path}.encoded`)
  if (!('parent_id' in fields)) throw new KindError(path, "missing field 'parent_id'")
  const parent: ImageParent = {
    id: checkText(fields.parent_id, `${path}.parent_id`),
    origin: optional('parent_origin', readOrigin),
  }
  const rootId = optional('root_parent_id', checkText)
  const rootOrigin = optional('root_origin', readOrigin)
  if (rootId === null && rootOrigin !== null)
    throw new KindError(`${path}.root_origin`, 'given without root_parent_id')
  const options: WorkflowImageOptions = {
    parent,
    root: rootId === null ? parent : { id: rootId, origin: rootOrigin },
    imageReference: optional('image_reference', checkText),
    videoMetadata: optional('video_metadata', (value, at) => {
      const decoded = decodeNested(value, at)
      if (!(decoded instanceof VideoMetadata))
        throw new KindError(at, `must be a video_metadata (tag 61443), got ${describe(decoded)}`)
      return decoded
    }),
  }
  return pixels
    ? WorkflowImage.fromPixels(pixels, options, path)
    : WorkflowImage.fromEncoded(fields.encoded as Uint8Array, options, path)
}

function encodeImage(image: WorkflowImage): unknown {
  const content: Record<string, unknown> = {}
  if (image.pixels) content.pixels = image.pixels
  else content.encoded = new ByteString(image.encoded!.bytes) // rides in the sidecar when large
  content.parent_id = image.parent.id
  if (image.parent.origin) content.parent_origin = writeOrigin(image.parent.origin)
  content.root_parent_id = image.root.id
  if (image.root.origin) content.root_origin = writeOrigin(image.root.origin)
  if (image.imageReference !== null) content.image_reference = image.imageReference
  if (image.videoMetadata) content.video_metadata = image.videoMetadata
  return content
}

declare module '../serializer.ts' {
  interface KindMap {
    image: WorkflowImage
  }
}

export const image: Serializer<'image'> = {
  kind: 'image',
  Class: WorkflowImage,
  tags: [IMAGE_TAG],
  decode: decodeImage,
  encode: encodeImage,
}
