import { describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import { encodeCbor, Tag, TimestampText } from '../../../serializers/cbor.ts'
import { KindError } from '../../../serializers/index.ts'
import { VIDEO_METADATA_TAG, VideoMetadata } from '../../../serializers/video_metadata/index.ts'
import { pythonRoundTrip } from '../../support/python.ts'
import { decodeKind, goldenVectors, hex } from '../../support/vectors.ts'

interface Entry {
  name: string
  video_identifier: string
  frame_number: number
  frame_timestamp: string
  utc_offset_minutes: number
  fps: number | null
  measured_fps: number | null
  comes_from_video_file: boolean | null
}

describe('video_metadata golden vectors', () => {
  for (const entry of goldenVectors<Entry>('video_metadata')) {
    test(entry.name, () => {
      const { raw } = entry
      const value = decodeKind(raw) as VideoMetadata
      expect(value).toBeInstanceOf(VideoMetadata)
      expect([
        value.videoIdentifier,
        value.frameNumber,
        value.frameTimestamp.text,
        value.utcOffsetMinutes,
      ]).toEqual([
        entry.video_identifier,
        entry.frame_number,
        entry.frame_timestamp,
        entry.utc_offset_minutes,
      ])
      expect([value.fps, value.measuredFps, value.comesFromVideoFile]).toEqual([
        entry.fps,
        entry.measured_fps,
        entry.comes_from_video_file,
      ])
      expect(hex(encodeCbor(value))).toBe(hex(raw))
    })
  }
})

const pad = (n: number, width = 2) => String(n).padStart(width, '0')

/** RFC 3339 texts in the form cbor2 writes them (microseconds or none; Z for UTC). */
const timestampText = fc
  .record({
    year: fc.integer({ min: 1, max: 9999 }),
    month: fc.integer({ min: 1, max: 12 }),
    day: fc.integer({ min: 1, max: 28 }),
    hour: fc.integer({ min: 0, max: 23 }),
    minute: fc.integer({ min: 0, max: 59 }),
    second: fc.integer({ min: 0, max: 59 }),
    micro: fc.option(fc.integer({ min: 1, max: 999_999 }), { nil: null }),
    offset: fc.option(
      fc.integer({ min: -(23 * 60 + 59), max: 23 * 60 + 59 }).filter((m) => m !== 0),
      { nil: null },
    ),
  })
  .map(({ year, month, day, hour, minute, second, micro, offset }) => {
    const fraction = micro === null ? '' : `.${pad(micro, 6)}`
    const zone =
      offset === null
        ? 'Z'
        : `${offset < 0 ? '-' : '+'}${pad(Math.floor(Math.abs(offset) / 60))}:${pad(Math.abs(offset) % 60)}`
    return `${pad(year, 4)}-${pad(month)}-${pad(day)}T${pad(hour)}:${pad(minute)}:${pad(second)}${fraction}${zone}`
  })

const rate = fc.option(
  fc.oneof(
    fc.double({ min: 0, max: 1e12, noNaN: true }),
    fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    fc.constantFrom(2 ** 32 - 1, 2 ** 32, 2 ** 53),
  ),
  {
    nil: null,
  },
)

const arbitraryVideoMetadata = fc
  .record({
    videoIdentifier: fc.string({ unit: 'grapheme', maxLength: 12 }),
    frameNumber: fc.oneof(
      fc.nat(1000),
      fc.constantFrom(2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER),
      fc.maxSafeNat(),
    ),
    frameTimestamp: timestampText,
    fps: rate,
    measuredFps: rate,
    comesFromVideoFile: fc.option(fc.boolean(), { nil: null }),
  })
  .map((fields) => new VideoMetadata(fields))

const fieldsOf = (v: VideoMetadata) => [
  v.videoIdentifier,
  v.frameNumber,
  v.frameTimestamp.text,
  v.fps,
  v.measuredFps,
  v.comesFromVideoFile,
]

describe('video_metadata TS → Python → TS', () => {
  test('every field round-trips bit-exact, the UTC offset included', () => {
    const samples = fc.sample(arbitraryVideoMetadata, { numRuns: 300, seed: 61443 })
    const sent = encodeCbor(samples)
    const answer = pythonRoundTrip(sent)
    expect(hex(answer)).toBe(hex(sent)) // Python writes exactly what TS wrote
    const back = decodeKind(answer) as VideoMetadata[]
    expect(back.map(fieldsOf)).toEqual(samples.map(fieldsOf))
  })

  test('the timestamp offset survives: +05:30 stays +05:30, not UTC', () => {
    const texts = [
      '2024-05-01T12:34:56.789000+05:30',
      '1999-12-31T23:59:59-08:00',
      '2024-01-01T00:00:00Z',
    ]
    const sent = texts.map(
      (text) => new VideoMetadata({ videoIdentifier: 'cam', frameNumber: 1, frameTimestamp: text }),
    )
    const back = decodeKind(pythonRoundTrip(encodeCbor(sent))) as VideoMetadata[]
    expect(back.map((v) => v.frameTimestamp.text)).toEqual(texts)
    expect(back.map((v) => v.utcOffsetMinutes)).toEqual([330, -480, 0])
    const ist = new VideoMetadata({
      videoIdentifier: 'cam',
      frameNumber: 1,
      frameTimestamp: '2024-05-01T12:00:00+05:30',
    })
    expect(ist.utcOffsetMinutes).toBe(330)
    expect(ist.date.toISOString()).toBe('2024-05-01T06:30:00.000Z')
  })
})

const good = {
  video_identifier: 'cam',
  frame_number: 1,
  frame_timestamp: new TimestampText('2024-01-01T00:00:00Z'),
  fps: 30,
  measured_fps: null,
  comes_from_video_file: null,
}

describe('video_metadata validation', () => {
  const bad: [string, unknown, RegExp][] = [
    [
      'negative frame number',
      { ...good, frame_number: -1 },
      /^inputs\.v\.frame_number: must be an integer from 0 to 9007199254740991, got -1$/,
    ],
    [
      'fractional frame number',
      { ...good, frame_number: 1.5 },
      /^inputs\.v\.frame_number: must be an integer/,
    ],
    [
      'frame number beyond 2^53',
      { ...good, frame_number: 2n ** 60n },
      /^inputs\.v\.frame_number: must be an integer from 0 to 9007199254740991, got 1152921504606846976$/,
    ],
    [
      'negative fps',
      { ...good, fps: -0.5 },
      /^inputs\.v\.fps: must be a finite number >= 0 or null, got -0\.5$/,
    ],
    [
      'infinite fps',
      { ...good, measured_fps: Number.POSITIVE_INFINITY },
      /^inputs\.v\.measured_fps: must be a finite number/,
    ],
    [
      'text fps',
      { ...good, fps: '30' },
      /^inputs\.v\.fps: must be a finite number >= 0 or null, got "30"$/,
    ],
    [
      'untagged timestamp',
      { ...good, frame_timestamp: '2024-01-01T00:00:00Z' },
      /^inputs\.v\.frame_timestamp: must be a date \(CBOR tag 0/,
    ],
    [
      'timestamp without offset',
      { ...good, frame_timestamp: new TimestampText('2024-01-01T00:00:00') },
      /^inputs\.v\.frame_timestamp: must be an RFC 3339 timestamp with a UTC offset/,
    ],
    [
      'impossible date',
      { ...good, frame_timestamp: new TimestampText('2023-02-29T00:00:00Z') },
      /^inputs\.v\.frame_timestamp: must be an RFC 3339/,
    ],
    [
      'leap second',
      { ...good, frame_timestamp: new TimestampText('2016-12-31T23:59:60Z') },
      /^inputs\.v\.frame_timestamp: must be an RFC 3339/,
    ],
    [
      'year 0',
      { ...good, frame_timestamp: new TimestampText('0000-01-01T00:00:00Z') },
      /^inputs\.v\.frame_timestamp: must be an RFC 3339/,
    ],
    [
      'identifier not text',
      { ...good, video_identifier: 7 },
      /^inputs\.v\.video_identifier: must be text, got 7$/,
    ],
    [
      'flag not a boolean',
      { ...good, comes_from_video_file: 'yes' },
      /^inputs\.v\.comes_from_video_file: must be a boolean or null/,
    ],
    [
      'missing timestamp',
      { video_identifier: 'c', frame_number: 0 },
      /^inputs\.v: missing field 'frame_timestamp'$/,
    ],
    ['unknown field', { ...good, colour: 'red' }, /^inputs\.v: unknown field "colour"/],
    [
      'not a map',
      [1, 2],
      /^inputs\.v: must be a map of the video metadata fields \(tag 61443\), got an array$/,
    ],
  ]
  for (const [name, content, message] of bad) {
    test(`rejects ${name} with the path`, () => {
      const bytes = encodeCbor(new Tag(content, VIDEO_METADATA_TAG))
      expect(() => decodeKind(bytes, 'inputs.v')).toThrow(KindError)
      expect(() => decodeKind(bytes, 'inputs.v')).toThrow(message)
    })
  }

  test('optional fields may be missing, a tag 1 epoch is read as UTC', () => {
    const value = decodeKind(
      encodeCbor(
        new Tag(
          {
            video_identifier: 'c',
            frame_number: 0,
            frame_timestamp: new Date(Date.UTC(2024, 0, 2)),
          },
          VIDEO_METADATA_TAG,
        ),
      ),
    ) as VideoMetadata
    expect([
      value.fps,
      value.measuredFps,
      value.comesFromVideoFile,
      value.frameTimestamp.text,
    ]).toEqual([null, null, null, '2024-01-02T00:00:00.000Z'])
  })

  test('the constructor validates too', () => {
    expect(
      () =>
        new VideoMetadata(
          { videoIdentifier: 'c', frameNumber: 0, frameTimestamp: 'yesterday' },
          'meta',
        ),
    ).toThrow(/^meta\.frame_timestamp: must be an RFC 3339/)
    expect(
      () =>
        new VideoMetadata({
          videoIdentifier: 'c',
          frameNumber: 0,
          frameTimestamp: '2024-01-01T00:00:00Z',
          fps: Number.NaN,
        }),
    ).toThrow(/^video_metadata\.fps:/)
  })
})
