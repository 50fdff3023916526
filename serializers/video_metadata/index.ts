// video_metadata: which video a frame came from, and when (Roboflow Inference's
// VideoMetadata). Tag 61443 over a map of every field, always in this order:
//   video_identifier text · frame_number uint ≤ 2^53−1 · frame_timestamp tag 0 (RFC 3339
//   text, its UTC offset kept exactly) · fps, measured_fps: number ≥ 0 or null ·
//   comes_from_video_file: bool or null
// An integral fps goes out as a CBOR integer (cbor-x writes integral numbers so; the
// Python half does the same, so both write the same bytes). Reading, the last three
// fields may be missing; unknown fields are refused. Twin of codec.py.
import { Tag, TimestampText } from '../cbor.ts'
import { KindError, type Serializer } from '../serializer.ts'

export const VIDEO_METADATA_TAG = 61443
const FIELDS = [
  'video_identifier',
  'frame_number',
  'frame_timestamp',
  'fps',
  'measured_fps',
  'comes_from_video_file',
] as const
const UINT32_MAX = 0xffff_ffff

export interface VideoMetadataFields {
  videoIdentifier: string
  frameNumber: number
  /** RFC 3339 with a UTC offset: `2024-05-01T12:00:00+05:30`, `…T10:30:00.25Z`. */
  frameTimestamp: TimestampText | string
  fps?: number | null
  measuredFps?: number | null
  comesFromVideoFile?: boolean | null
}

export class VideoMetadata {
  readonly videoIdentifier: string
  readonly frameNumber: number
  readonly frameTimestamp: TimestampText
  readonly fps: number | null
  readonly measuredFps: number | null
  readonly comesFromVideoFile: boolean | null

  /** Validates every field; a KindError names `path.<wire field>`. */
  constructor(
    {
      videoIdentifier,
      frameNumber,
      frameTimestamp,
      fps = null,
      measuredFps = null,
      comesFromVideoFile = null,
    }: VideoMetadataFields,
    path = 'video_metadata',
  ) {
    if (typeof videoIdentifier !== 'string')
      throw new KindError(
        `${path}.video_identifier`,
        `must be text, got ${describe(videoIdentifier)}`,
      )
    if (!Number.isSafeInteger(frameNumber) || frameNumber < 0) {
      throw new KindError(
        `${path}.frame_number`,
        `must be an integer from 0 to ${Number.MAX_SAFE_INTEGER}, got ${describe(frameNumber)}`,
      )
    }
    const text = frameTimestamp instanceof TimestampText ? frameTimestamp.text : frameTimestamp
    this.frameTimestamp = new TimestampText(checkTimestamp(text, `${path}.frame_timestamp`))
    this.videoIdentifier = videoIdentifier
    this.frameNumber = frameNumber
    this.fps = checkRate(fps, `${path}.fps`)
    this.measuredFps = checkRate(measuredFps, `${path}.measured_fps`)
    if (comesFromVideoFile !== null && typeof comesFromVideoFile !== 'boolean') {
      throw new KindError(
        `${path}.comes_from_video_file`,
        `must be a boolean or null, got ${describe(comesFromVideoFile)}`,
      )
    }
    this.comesFromVideoFile = comesFromVideoFile
  }

  /** The frame's instant (the offset is in `frameTimestamp.text` and `utcOffsetMinutes`). */
  get date(): Date {
    return new Date(this.frameTimestamp.text)
  }

  /** The timestamp's UTC offset in minutes: 330 for +05:30, 0 for Z. */
  get utcOffsetMinutes(): number {
    const match = /([+-])(\d{2}):(\d{2})$/.exec(this.frameTimestamp.text)
    return match ? (match[1] === '-' ? -1 : 1) * (Number(match[2]) * 60 + Number(match[3])) : 0
  }
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-](\d{2}):(\d{2}))$/

/**
 * `text` if it is an RFC 3339 date-time with a UTC offset that Python can hold (year ≥ 1,
 * no leap second, upper-case T and Z, as cbor2 reads them); else KindError at `path`.
 */
function checkTimestamp(text: unknown, path: string): string {
  const bad = () =>
    new KindError(
      path,
      `must be an RFC 3339 timestamp with a UTC offset (2024-05-01T12:00:00+05:30), got ${describe(text)}`,
    )
  if (typeof text !== 'string') throw bad()
  const match = RFC3339.exec(text)
  if (!match) throw bad()
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ]
  const daysInMonth =
    new Date(Date.UTC(2000, month, 0)).getUTCDate() - (month === 2 && !isLeapYear(year) ? 1 : 0)
  const offsetOk = match[8] === 'Z' || (Number(match[9]) <= 23 && Number(match[10]) <= 59)
  if (
    year < 1 ||
    month < 1 ||
    month > 12 ||
    day < 1 ||
    day > daysInMonth ||
    hour > 23 ||
    minute > 59 ||
    second > 59 ||
    !offsetOk
  )
    throw bad()
  return text
}

const isLeapYear = (year: number) => (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0

function checkRate(value: unknown, path: string): number | null {
  if (value === null) return null
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new KindError(path, `must be a finite number >= 0 or null, got ${describe(value)}`)
  }
  return value
}

/** A value as a message names it, in CBOR's terms (the Python half says the same). */
export function describe(value: unknown): string {
  if (typeof value === 'string')
    return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value)
  if (
    typeof value === 'number' ||
    typeof value === 'boolean' ||
    typeof value === 'bigint' ||
    value === null
  )
    return String(value)
  if (value === undefined) return 'nothing'
  if (value instanceof Uint8Array) return 'a byte string'
  if (Array.isArray(value)) return 'an array'
  if (value instanceof Date || value instanceof TimestampText) return 'a date'
  const prototype = Object.getPrototypeOf(value)
  if (prototype === Object.prototype || prototype === null) return 'a map'
  return (value as object).constructor?.name ?? 'a map'
}

/** A decoded CBOR map as a plain object, unknown keys refused. */
export function fieldsOf(
  content: unknown,
  known: readonly string[],
  path: string,
  what: string,
): Record<string, unknown> {
  if (
    content === null ||
    typeof content !== 'object' ||
    Object.getPrototypeOf(content) !== Object.prototype
  ) {
    throw new KindError(path, `must be a map of ${what}, got ${describe(content)}`)
  }
  for (const key of Object.keys(content)) {
    if (!known.includes(key))
      throw new KindError(
        path,
        `unknown field ${JSON.stringify(key)} (fields: ${known.join(', ')})`,
      )
  }
  return content as Record<string, unknown>
}

/** A CBOR integer or float as a number (cbor-x reads integers beyond 32 bits as bigint). */
function toNumber(value: unknown): unknown {
  return typeof value === 'bigint' ? Number(value) : value
}

function decodeVideoMetadata(tag: number, content: unknown, path: string): VideoMetadata {
  const fields = fieldsOf(content, FIELDS, path, `the video metadata fields (tag ${tag})`)
  for (const name of FIELDS.slice(0, 3))
    if (!(name in fields)) throw new KindError(path, `missing field '${name}'`)
  const frameNumber = fields.frame_number
  if (typeof frameNumber === 'bigint' && frameNumber > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new KindError(
      `${path}.frame_number`,
      `must be an integer from 0 to ${Number.MAX_SAFE_INTEGER}, got ${frameNumber}`,
    )
  }
  let timestamp = fields.frame_timestamp
  // tag 1: an instant in epoch seconds, read as UTC
  if (
    timestamp instanceof Tag &&
    timestamp.tag === 1 &&
    typeof timestamp.value === 'number' &&
    Number.isFinite(timestamp.value)
  ) {
    timestamp = new TimestampText(new Date(timestamp.value * 1000).toISOString())
  }
  if (!(timestamp instanceof TimestampText)) {
    throw new KindError(
      `${path}.frame_timestamp`,
      `must be a date (CBOR tag 0, RFC 3339 text with a UTC offset), got ${describe(timestamp)}`,
    )
  }
  return new VideoMetadata(
    {
      videoIdentifier: fields.video_identifier as string,
      frameNumber: toNumber(frameNumber) as number,
      frameTimestamp: timestamp,
      fps: (toNumber(fields.fps) ?? null) as number | null,
      measuredFps: (toNumber(fields.measured_fps) ?? null) as number | null,
      comesFromVideoFile: (fields.comes_from_video_file ?? null) as boolean | null,
    },
    path,
  )
}

function encodeVideoMetadata(value: VideoMetadata): unknown {
  return {
    video_identifier: value.videoIdentifier,
    // cbor-x writes a number above 32 bits as a float: a bigint keeps it an integer.
    frame_number: value.frameNumber > UINT32_MAX ? BigInt(value.frameNumber) : value.frameNumber,
    frame_timestamp: value.frameTimestamp,
    fps: value.fps,
    measured_fps: value.measuredFps,
    comes_from_video_file: value.comesFromVideoFile,
  }
}

declare module '../serializer.ts' {
  interface KindMap {
    video_metadata: VideoMetadata
  }
}

export const videoMetadata: Serializer<'video_metadata'> = {
  kind: 'video_metadata',
  Class: VideoMetadata,
  tags: [VIDEO_METADATA_TAG],
  decode: (tag, content, path) => decodeVideoMetadata(tag, content, path),
  encode: encodeVideoMetadata,
}
