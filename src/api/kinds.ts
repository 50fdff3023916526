// The kinds' JSON forms (README.md, "Kinds") as schemas of the API's document: one per
// serializer plugin, plus the markers of plain values JSON cannot carry. Each names the CBOR
// tag its kind travels under. The proxy does not parse JSON kinds (the runtime's codecs do,
// serializers/<kind>/codec.py); these describe what crosses, and the contract test holds
// every JSON answer of the end-to-end suite to them.
import { z } from 'zod'
import type { KindName } from '../../serializers/index.ts'

const floatMarker = z
  .object({ _type: z.literal('float'), value: z.enum(['NaN', 'Infinity', '-Infinity']) })
  .meta({
    id: 'float',
    description:
      'A float JSON cannot write (on /v1/run; /webexec writes the bare NaN, Infinity, -Infinity as Python does). CBOR carries it as a float.',
  })

/** A float inside a kind: NaN and ±Infinity are float markers there too. */
const float = z.union([z.number(), floatMarker])

const origin = z
  .object({
    offset_x: z.number(),
    offset_y: z.number(),
    width: z.number(),
    height: z.number(),
  })
  .meta({ id: 'origin', description: 'Where an image or crop sits in its parent, in pixels.' })

const datetime = z.object({ _type: z.literal('datetime'), value: z.string() }).meta({
  id: 'datetime',
  description:
    'Python datetime, ISO 8601 (its UTC offset kept when it has one). CBOR: tag 0 (RFC 3339 text) or tag 1 (epoch seconds).',
})

const bytes = z
  .object({ _type: z.literal('bytes'), value: z.base64() })
  .meta({ id: 'bytes', description: 'Python bytes, base64. CBOR: a byte string.' })

const ndarray = z
  .object({
    _type: z.literal('ndarray'),
    dtype: z.string().meta({ description: 'numpy dtype name: uint8, float32, bool, <U5, …' }),
    shape: z.array(z.int().nonnegative()),
    encoding: z
      .literal('base64')
      .optional()
      .meta({ description: 'Absent: `value` is nested lists (row-major).' }),
    value: z.unknown().meta({
      description:
        'Nested lists (a scalar for a 0-d array; NaN and ±Infinity as float markers), or with `encoding: base64` the little-endian bytes in base64.',
    }),
  })
  .meta({
    id: 'ndarray',
    description:
      'numpy.ndarray. CBOR: RFC 8746 tag 40 over [[dims…], typed array] (tags 64–87; bool as 0/1 under tag 68; str under tag 41); big-endian, classic-array and column-major (tag 1040) inputs are read too.',
  })

const videoMetadataFields = {
  video_identifier: z.string(),
  frame_number: z.int(),
  frame_timestamp: z.union([datetime, z.string()]),
  fps: float.nullable().optional(),
  measured_fps: float.nullable().optional(),
  comes_from_video_file: z.boolean().nullable().optional(),
}

const videoMetadata = z
  .object({ _type: z.literal('video_metadata'), ...videoMetadataFields })
  .meta({
    id: 'video_metadata',
    description:
      "Inference's VideoMetadata. CBOR: tag 61443 over every field, frame_timestamp as an RFC 3339 date (tag 0).",
  })

const workflowImage = z
  .object({
    _type: z.literal('workflow_image'),
    type: z.literal('base64').optional(),
    value: z.base64().meta({ description: 'The image file (JPEG, PNG, …) in base64.' }),
    parent_id: z.string().optional(),
    parent_origin: origin.optional(),
    root_parent_id: z.string().optional(),
    root_parent_origin: origin.optional(),
    video_metadata: z.object(videoMetadataFields).optional(),
  })
  .meta({
    id: 'workflow_image',
    description:
      "Inference's WorkflowImageData. CBOR: tag 61441 over {pixels: ndarray (H×W, H×W×3 BGR, H×W×4 BGRA) or encoded: the file's bytes as sent, parent_id, parent_origin, root_parent_id, root_origin, image_reference, video_metadata}: lossless, never re-encoded.",
  })

const prediction = z
  .looseObject({
    x: float.meta({ description: 'Box centre.' }),
    y: float,
    width: float,
    height: float,
    confidence: float.nullable().optional(),
    class_id: z.int().nullable().optional(),
    class: z.string().nullable().optional(),
    detection_id: z.string().optional(),
    tracker_id: z.int().nullable().optional(),
    points: z
      .array(z.object({ x: z.number(), y: z.number() }))
      .optional()
      .meta({
        description: "The mask's outer contour (the JSON form's loss: CBOR keeps the mask).",
      }),
    parent_origin: origin.optional(),
    root_parent_origin: origin.optional(),
    keypoints: z.array(z.looseObject({ x: z.number(), y: z.number() })).optional(),
  })
  .meta({
    id: 'prediction',
    description:
      "One detection; every other data column is a key of its own (that detection's value).",
  })

const detections = z
  .object({
    _type: z.literal('sv_detections'),
    image: z.object({ width: z.int().nullable(), height: z.int().nullable() }),
    predictions: z.array(prediction),
    metadata: z.record(z.string(), z.unknown()).optional(),
  })
  .meta({
    id: 'sv_detections',
    description:
      'supervision.Detections, as Inference writes predictions. CBOR: tag 61442 over columns {xyxy, confidence, class_id, tracker_id, mask: {shape: [N, H, W], bits: packbits}, data, metadata}: lossless.',
  })

/** Each serializer plugin's JSON form: test/unit/openapi.test.ts checks every plugin has one. */
export const KIND_JSON_FORMS: Record<KindName, z.ZodType> = {
  ndarray,
  image: workflowImage,
  detections,
  video_metadata: videoMetadata,
}

/** Plain values JSON cannot write as they are. */
export const PLAIN_MARKERS = { datetime, bytes, float: floatMarker }

/**
 * A value in `inputs` or `outputs`: a kind's form, a marker, or plain JSON. An object with a
 * `_type` must be one of the forms; other objects and lists nest values.
 */
export const value: z.ZodType = z
  .union([
    ...Object.values(KIND_JSON_FORMS),
    ...Object.values(PLAIN_MARKERS),
    z.null(),
    z.boolean(),
    z.number(),
    z.string(),
    z.array(z.lazy(() => value)),
    z
      .record(
        z.string().regex(/^(?!_type$)/),
        z.lazy(() => value),
      )
      .meta({ description: 'A map of values (a key `_type` marks one of the forms above).' }),
  ])
  .meta({ id: 'value', description: 'A value in a JSON body: plain JSON, or one of the forms.' })
