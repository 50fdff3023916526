// "The proxy copies a large array at most once on its way to the worker": from the HTTP
// body to the frame written to the worker's pipe, blockgate's own code copies it zero
// times (the pipe write itself is the one copy).
import { expect, test } from 'bun:test'
import { decodeCbor, encodeCbor } from '../../serializers/cbor.ts'
import { Detections, PackedMask } from '../../serializers/detections/index.ts'
import { NDArray } from '../../serializers/ndarray/index.ts'
import { encodeFrame } from '../../src/backends/framing.ts'
import { parseRunRequest } from '../../src/run/request.ts'

test('a 1080p frame in a CBOR body reaches the worker frame as a view of the body', () => {
  const pixels = new Uint8Array(1080 * 1920 * 3).fill(9)
  const body = encodeCbor({
    code: { run_function_code: 'def run(self, image): pass' },
    inputs: { image: NDArray.fromBytes('uint8', [1080, 1920, 3], pixels) },
  })
  const received = new Uint8Array(body) // as Bun hands a request body over: one buffer
  const request = parseRunRequest(decodeCbor(received), {
    defaultTimeoutMs: 1000,
    maxTimeoutMs: 1000,
  })
  const image = request.inputs.image as NDArray
  expect(image.bytes.buffer).toBe(received.buffer) // decoded without a copy
  const parts = encodeFrame({ op: 'run', hash: request.block.hash, inputs: request.inputs })
  const pixelPart = parts.find((part) => part.byteLength === pixels.byteLength)
  expect(pixelPart?.buffer).toBe(received.buffer) // framed without a copy
  expect(parts.reduce((sum, part) => sum + part.byteLength, 0) - pixels.byteLength).toBeLessThan(
    1024,
  ) // the rest is small
})

test("a detection's packed masks reach the worker frame as a view of the body, not inside its head", () => {
  // 10 masks of 1080p, packed: 2.6 MB of bits that cbor2 would otherwise copy out of the head.
  const bits = new Uint8Array((10 * 1080 * 1920) / 8).fill(0x0f)
  const detections = Detections.create({
    xyxy: NDArray.fromBytes('float32', [10, 4], new Uint8Array(10 * 4 * 4)),
    mask: PackedMask.fromBits([10, 1080, 1920], bits),
  })
  const received = new Uint8Array(
    encodeCbor({
      code: { run_function_code: 'def run(self, d): pass' },
      inputs: { d: detections },
    }),
  )
  const request = parseRunRequest(decodeCbor(received), {
    defaultTimeoutMs: 1000,
    maxTimeoutMs: 1000,
  })
  const parts = encodeFrame({ op: 'run', hash: request.block.hash, inputs: request.inputs })
  const bitsPart = parts.find((part) => part.byteLength === bits.byteLength)
  expect(bitsPart?.buffer).toBe(received.buffer) // the sidecar holds the bits, uncopied
  expect(parts[1]!.byteLength).toBeLessThan(1024) // the head is small
})
