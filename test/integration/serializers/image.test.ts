import { describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import { encodeCbor, Tag, TimestampText, TypedBytes } from '../../../serializers/cbor.ts'
import {
  IMAGE_TAG,
  type ImageParent,
  imageFormat,
  type Origin,
  WorkflowImage,
} from '../../../serializers/image/index.ts'
import { KindError, kindOf } from '../../../serializers/index.ts'
import { NDArray } from '../../../serializers/ndarray/index.ts'
import { VideoMetadata } from '../../../serializers/video_metadata/index.ts'
import { pythonRoundTrip } from '../../support/python.ts'
import { decodeKind, goldenVectors, hex } from '../../support/vectors.ts'

type WireOrigin = { offset_x: number; offset_y: number; width: number; height: number }
interface Entry {
  name: string
  source: 'pixels' | 'encoded'
  dtype?: string
  shape?: number[]
  format?: string
  hex: string
  parent_id: string
  parent_origin: WireOrigin | null
  root_parent_id: string
  root_origin: WireOrigin | null
  image_reference: string | null
  video_metadata: {
    video_identifier: string
    frame_number: number
    frame_timestamp: string
    fps: number | null
    measured_fps: number | null
    comes_from_video_file: boolean | null
  } | null
}
const wireOrigin = (origin: Origin | null): WireOrigin | null =>
  origin && {
    offset_x: origin.offsetX,
    offset_y: origin.offsetY,
    width: origin.width,
    height: origin.height,
  }

describe('image golden vectors', () => {
  for (const entry of goldenVectors<Entry>('image')) {
    test(entry.name, () => {
      const { raw } = entry
      const image = decodeKind(raw) as WorkflowImage
      expect(image).toBeInstanceOf(WorkflowImage)
      if (entry.source === 'pixels') {
        expect(image.encoded).toBeNull()
        expect([image.pixels!.dtype, image.pixels!.shape, hex(image.pixels!.bytes)]).toEqual([
          entry.dtype as NDArray['dtype'],
          entry.shape!,
          entry.hex,
        ])
      } else {
        expect(image.pixels).toBeNull()
        expect([image.encoded!.format, hex(image.encoded!.bytes)]).toEqual([
          entry.format as 'png',
          entry.hex,
        ])
      }
      expect([
        image.parent.id,
        wireOrigin(image.parent.origin),
        image.root.id,
        wireOrigin(image.root.origin),
        image.imageReference,
      ]).toEqual([
        entry.parent_id,
        entry.parent_origin,
        entry.root_parent_id,
        entry.root_origin,
        entry.image_reference,
      ])
      const video = image.videoMetadata
      expect(
        video && {
          video_identifier: video.videoIdentifier,
          frame_number: video.frameNumber,
          frame_timestamp: video.frameTimestamp.text,
          fps: video.fps,
          measured_fps: video.measuredFps,
          comes_from_video_file: video.comesFromVideoFile,
        },
      ).toEqual(entry.video_metadata)
      expect(hex(encodeCbor(image))).toBe(hex(raw))
    })
  }
})

// --- TS → Python → TS ----------------------------------------------------------------

const pad = (n: number, width = 2) => String(n).padStart(width, '0')
const timestamp = fc
  .tuple(
    fc.date({
      min: new Date('0001-01-02T00:00:00Z'),
      max: new Date('9999-12-30T00:00:00Z'),
      noInvalidDate: true,
    }),
    fc.integer({ min: -(23 * 60 + 59), max: 23 * 60 + 59 }),
  )
  .map(([date, offset]) => {
    // cbor2's form: no fraction when whole seconds, else microseconds; Z for UTC.
    const base = date.toISOString().slice(0, 19)
    const millis = date.getUTCMilliseconds()
    const zone =
      offset === 0
        ? 'Z'
        : `${offset < 0 ? '-' : '+'}${pad(Math.floor(Math.abs(offset) / 60))}:${pad(Math.abs(offset) % 60)}`
    return `${base}${millis ? `.${pad(millis * 1000, 6)}` : ''}${zone}`
  })
const videoMetadata = fc.option(
  fc
    .record({
      videoIdentifier: fc.string({ unit: 'grapheme', maxLength: 8 }),
      frameNumber: fc.maxSafeNat(),
      frameTimestamp: timestamp,
      fps: fc.option(fc.oneof(fc.double({ min: 0, max: 1e6, noNaN: true }), fc.nat(240)), {
        nil: null,
      }),
      comesFromVideoFile: fc.option(fc.boolean(), { nil: null }),
    })
    .map((fields) => new VideoMetadata(fields)),
  { nil: null },
)
const coordinate = fc.integer({ min: 0, max: 2 ** 31 - 1 })
const size = fc.integer({ min: 1, max: 2 ** 31 - 1 })
const origin = fc.option(
  fc.record({ offsetX: coordinate, offsetY: coordinate, width: size, height: size }),
  { nil: null },
)
const parent: fc.Arbitrary<ImageParent> = fc.record({
  id: fc.string({ unit: 'grapheme', maxLength: 8 }),
  origin,
})

const pixels = fc
  .record({
    dtype: fc.constantFrom('uint8' as const, 'uint16' as const),
    height: fc.integer({ min: 1, max: 12 }),
    width: fc.integer({ min: 1, max: 12 }),
    channels: fc.constantFrom(0, 1, 3, 4),
  })
  .chain(({ dtype, height, width, channels }) => {
    const shape = channels ? [height, width, channels] : [height, width]
    const length = height * width * (channels || 1) * (dtype === 'uint8' ? 1 : 2)
    return fc
      .uint8Array({ minLength: length, maxLength: length })
      .map((bytes) => NDArray.fromBytes(dtype, shape, bytes))
  })
// Nothing decodes encoded bytes on the way, so a magic number and any tail will do.
const MAGIC = [
  [0xff, 0xd8, 0xff],
  [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a],
  [...Buffer.from('RIFF\0\0\0\0WEBP')],
  [0x42, 0x4d],
  [0x49, 0x49, 0x2a, 0],
  [0x4d, 0x4d, 0, 0x2a],
]
const encoded = fc
  .tuple(fc.constantFrom(...MAGIC), fc.uint8Array({ maxLength: 64 }))
  .map(([magic, tail]) => new Uint8Array([...magic, ...tail]))

const arbitraryImage = fc
  .record({
    source: fc.oneof(pixels, encoded),
    parent,
    root: fc.option(parent, { nil: undefined }),
    imageReference: fc.option(fc.string({ maxLength: 16 }), { nil: null }),
    videoMetadata,
  })
  .map(({ source, ...options }) =>
    source instanceof NDArray
      ? WorkflowImage.fromPixels(source, options)
      : WorkflowImage.fromEncoded(source, options),
  )

describe('image TS → Python → TS', () => {
  test('pixels, encoded bytes and metadata round-trip bit-exact through WorkflowImageData', () => {
    // One Python process for the whole sample: a list of images in, the same list back.
    const samples = fc.sample(arbitraryImage, { numRuns: 250, seed: 61441 })
    const sent = encodeCbor(samples)
    const answer = pythonRoundTrip(sent)
    expect(hex(answer)).toBe(hex(sent)) // Python writes exactly what TS wrote: nothing re-encoded
    const back = decodeKind(answer) as WorkflowImage[]
    expect(back).toHaveLength(samples.length)
    back.forEach((got, i) => {
      const want = samples[i]!
      expect(got.pixels && [got.pixels.dtype, got.pixels.shape, hex(got.pixels.bytes)]).toEqual(
        want.pixels && [want.pixels.dtype, want.pixels.shape, hex(want.pixels.bytes)],
      )
      expect(got.encoded && [got.encoded.format, hex(got.encoded.bytes)]).toEqual(
        want.encoded && [want.encoded.format, hex(want.encoded.bytes)],
      )
      expect([
        got.parent,
        got.root,
        got.imageReference,
        got.videoMetadata?.frameTimestamp.text,
      ]).toEqual([
        want.parent,
        want.root,
        want.imageReference,
        want.videoMetadata?.frameTimestamp.text,
      ])
    })
  })

  test('grayscale, BGRA and the timestamp offset of nested video metadata survive', () => {
    const video = new VideoMetadata({
      videoIdentifier: 'cam',
      frameNumber: 7,
      frameTimestamp: '2024-05-01T12:00:00.250000+05:30',
      fps: 30,
    })
    const sent = [
      WorkflowImage.fromPixels(NDArray.of('uint8', Uint8Array.of(0, 255, 1, 254), [2, 2]), {
        videoMetadata: video,
      }),
      WorkflowImage.fromPixels(
        NDArray.of('uint8', Uint8Array.of(1, 2, 3, 0, 4, 5, 6, 255), [1, 2, 4]),
      ),
    ]
    const [gray, bgra] = decodeKind(pythonRoundTrip(encodeCbor(sent))) as WorkflowImage[]
    expect([gray!.pixels!.shape, [...gray!.pixels!.bytes]]).toEqual([
      [2, 2],
      [0, 255, 1, 254],
    ])
    expect(gray!.videoMetadata!.frameTimestamp.text).toBe('2024-05-01T12:00:00.250000+05:30')
    expect(gray!.videoMetadata!.utcOffsetMinutes).toBe(330)
    expect([bgra!.pixels!.shape, [...bgra!.pixels!.bytes]]).toEqual([
      [1, 2, 4],
      [1, 2, 3, 0, 4, 5, 6, 255],
    ])
  })
})

// --- values and validation -------------------------------------------------------------

describe('WorkflowImage values', () => {
  test('formats come from the magic bytes', () => {
    expect(MAGIC.map((magic) => imageFormat(new Uint8Array(magic)))).toEqual([
      'jpeg',
      'png',
      'webp',
      'bmp',
      'tiff',
      'tiff',
    ])
    expect(imageFormat(new Uint8Array(Buffer.from('GIF89a')))).toBeNull()
  })

  test('defaults: parent "image" with unknown origin, root = parent; it is the image kind', () => {
    const image = WorkflowImage.fromEncoded(new Uint8Array([0xff, 0xd8, 0xff, 0xe0]))
    expect([image.parent, image.root, image.imageReference, image.videoMetadata]).toEqual([
      { id: 'image', origin: null },
      { id: 'image', origin: null },
      null,
      null,
    ])
    expect(kindOf(image)).toBe('image')
  })

  test('the factories validate, naming the path', () => {
    expect(() =>
      WorkflowImage.fromPixels(
        NDArray.of('float32', new Float32Array(4), [2, 2]),
        {},
        'inputs.img',
      ),
    ).toThrow(/^inputs\.img\.pixels\.dtype: an image is uint8 \(or uint16\), got float32$/)
    expect(() => WorkflowImage.fromEncoded(new Uint8Array(0))).toThrow(
      /^image\.encoded: the encoded image is empty$/,
    )
    const badOrigin = { id: 'p', origin: { offsetX: -1, offsetY: 0, width: 1, height: 1 } }
    expect(() =>
      WorkflowImage.fromPixels(NDArray.of('uint8', new Uint8Array(1), [1, 1]), {
        parent: badOrigin,
      }),
    ).toThrow(/^image\.parent_origin\.offset_x: must be an integer from 0/)
  })
})

const PNG = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0])
const rgb = (shape: number[], dtype: 'uint8' | 'uint16' = 'uint8') =>
  NDArray.fromBytes(
    dtype,
    shape,
    new Uint8Array(shape.reduce((a, b) => a * b, 1) * (dtype === 'uint8' ? 1 : 2)),
  )
const ORIGIN = { offset_x: 0, offset_y: 0, width: 2, height: 2 }
const content = (fields: Record<string, unknown>) => {
  const base: Record<string, unknown> = { pixels: rgb([2, 2, 3]), parent_id: 'p', ...fields }
  for (const key of Object.keys(base)) if (base[key] === undefined) delete base[key]
  return new Tag(base, IMAGE_TAG)
}

describe('image validation', () => {
  const video = (fields: Record<string, unknown>) =>
    new Tag(
      {
        video_identifier: 'v',
        frame_number: 0,
        frame_timestamp: new TimestampText('2024-01-01T00:00:00Z'),
        ...fields,
      },
      61443,
    )
  const bad: [string, unknown, RegExp][] = [
    [
      '4-D pixels',
      content({ pixels: rgb([1, 2, 2, 3]) }),
      /^inputs\.image\.pixels\.shape: an image is H×W or H×W×C, got 4 dimensions \[1,2,2,3\]$/,
    ],
    [
      '2 channels',
      content({ pixels: rgb([2, 2, 2]) }),
      /^inputs\.image\.pixels\.shape: channels must be 1, 3 \(BGR\) or 4 \(BGRA\), got 2$/,
    ],
    [
      'an empty image',
      content({ pixels: rgb([0, 3]) }),
      /^inputs\.image\.pixels\.shape: height and width must be 1 to 16384, got \[0,3\]$/,
    ],
    [
      'a side over 16384',
      content({ pixels: rgb([1, 16385]) }),
      /^inputs\.image\.pixels\.shape: height and width must be 1 to 16384/,
    ],
    [
      'float pixels',
      content({ pixels: NDArray.of('float32', new Float32Array(4), [2, 2]) }),
      /^inputs\.image\.pixels\.dtype: an image is uint8 \(or uint16\), got float32$/,
    ],
    [
      'pixels as a list',
      content({
        pixels: [
          [1, 2],
          [3, 4],
        ],
      }),
      /^inputs\.image\.pixels: must be an ndarray \(tag 40\), got an array$/,
    ],
    [
      'a short typed array',
      content({ pixels: new Tag([[2, 2], new TypedBytes(64, new Uint8Array(3))], 40) }),
      /^inputs\.image\.pixels: shape \[2,2\] of uint8 needs 4 bytes, got 3$/,
    ],
    [
      'pixels and encoded',
      content({ encoded: PNG }),
      /^inputs\.image: needs exactly one of 'pixels' \(an ndarray\) and 'encoded'/,
    ],
    ['neither', content({ pixels: undefined }), /^inputs\.image: needs exactly one of/],
    [
      'empty encoded bytes',
      content({ pixels: undefined, encoded: new Uint8Array(0) }),
      /^inputs\.image\.encoded: the encoded image is empty$/,
    ],
    [
      'a GIF',
      content({ pixels: undefined, encoded: new Uint8Array(Buffer.from('GIF89a\x01\x00')) }),
      /^inputs\.image\.encoded: not a JPEG, PNG, WebP, BMP or TIFF file \(starts with 4749463839610100\)$/,
    ],
    [
      'encoded as text',
      content({ pixels: undefined, encoded: 'iVBORw0KGgo=' }),
      /^inputs\.image\.encoded: must be a byte string, got "iVBORw0KGgo="$/,
    ],
    [
      'no parent id',
      content({ parent_id: undefined }),
      /^inputs\.image: missing field 'parent_id'$/,
    ],
    [
      'a numeric parent id',
      content({ parent_id: 5 }),
      /^inputs\.image\.parent_id: must be text, got 5$/,
    ],
    [
      'a negative offset',
      content({ parent_origin: { ...ORIGIN, offset_x: -1 } }),
      /^inputs\.image\.parent_origin\.offset_x: must be an integer from 0 to 2147483647, got -1$/,
    ],
    [
      'a fractional offset',
      content({ parent_origin: { ...ORIGIN, offset_y: 1.5 } }),
      /^inputs\.image\.parent_origin\.offset_y: must be an integer/,
    ],
    [
      'a zero width',
      content({ parent_origin: { ...ORIGIN, width: 0 } }),
      /^inputs\.image\.parent_origin\.width: must be an integer from 1/,
    ],
    [
      'a missing height',
      content({ parent_origin: { offset_x: 0, offset_y: 0, width: 2 } }),
      /^inputs\.image\.parent_origin: missing field 'height'$/,
    ],
    [
      'an unknown origin field',
      content({ parent_origin: { ...ORIGIN, depth: 1 } }),
      /^inputs\.image\.parent_origin: unknown field "depth"/,
    ],
    [
      'an origin array',
      content({ parent_origin: [0, 0, 2, 2] }),
      /^inputs\.image\.parent_origin: must be a map of \{offset_x, offset_y, width, height\}, got an array$/,
    ],
    [
      'a bad root origin',
      content({ root_parent_id: 'r', root_origin: { ...ORIGIN, width: -3 } }),
      /^inputs\.image\.root_origin\.width: must be an integer from 1/,
    ],
    [
      'a root origin without root id',
      content({ root_origin: ORIGIN }),
      /^inputs\.image\.root_origin: given without root_parent_id$/,
    ],
    [
      'a numeric reference',
      content({ image_reference: 3 }),
      /^inputs\.image\.image_reference: must be text/,
    ],
    [
      'untagged video metadata',
      content({ video_metadata: { video_identifier: 'v' } }),
      /^inputs\.image\.video_metadata: must be a video_metadata \(tag 61443\), got a map$/,
    ],
    [
      'bad nested video metadata',
      content({ video_metadata: video({ frame_number: -2 }) }),
      /^inputs\.image\.video_metadata\.frame_number: must be an integer/,
    ],
    ['an unknown field', content({ colour: 'red' }), /^inputs\.image: unknown field "colour"/],
    [
      'not a map',
      new Tag(PNG, IMAGE_TAG),
      /^inputs\.image: must be a map of the image fields \(tag 61441\), got a byte string$/,
    ],
  ]
  for (const [name, value, message] of bad) {
    test(`rejects ${name} with the path`, () => {
      const bytes = encodeCbor(value)
      expect(() => decodeKind(bytes, 'inputs.image')).toThrow(KindError)
      expect(() => decodeKind(bytes, 'inputs.image')).toThrow(message)
    })
  }

  test('a missing root is the parent', () => {
    const image = decodeKind(encodeCbor(content({ parent_origin: ORIGIN }))) as WorkflowImage
    expect(image.root).toEqual({ id: 'p', origin: { offsetX: 0, offsetY: 0, width: 2, height: 2 } })
  })
})
