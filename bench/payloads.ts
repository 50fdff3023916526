// The payloads every serialization scenario uses, the same in TS and Python
// (bench/serializers.py builds the same shapes).
import { NDArray } from '../serializers/ndarray/index.ts'

function noise(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length)
  let x = seed
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0
    out[i] = x >>> 24
  }
  return out
}

export interface Payload {
  name: string
  /** Bytes of array data the payload carries (what MB/s is counted against). */
  bytes: number
  value: unknown
}

export function framePayloads(): Payload[] {
  const hd = NDArray.fromBytes('uint8', [1080, 1920, 3], noise(1080 * 1920 * 3))
  const uhd = NDArray.fromBytes('uint8', [2160, 3840, 3], noise(2160 * 3840 * 3, 2))
  return [
    { name: '1080p BGR frame (ndarray)', bytes: hd.bytes.byteLength, value: hd },
    { name: '4K BGR frame (ndarray)', bytes: uhd.bytes.byteLength, value: uhd },
  ]
}
