// The parity blocks: the same blocks and inputs sent to the local backend and to e2b, whose
// answers must be identical (timings and the backend's name aside). Every kind, in CBOR and
// JSON. Used by integration/e2b.test.ts and by `npm run smoke:e2b`.
import { decodeCbor } from '../../serializers/cbor.ts'
import { allGoldenVectors } from './vectors.ts'

export interface ParityBlock {
  name: string
  code: string
  inputs: Record<string, unknown>
  formats: ('cbor' | 'json')[]
}

/** Every golden vector of every kind, as one input each. */
const vectors = () =>
  Object.fromEntries(
    allGoldenVectors().map(({ kind, name, raw }) => [
      `${kind}_${name.replace(/\W/g, '_')}`,
      decodeCbor(raw),
    ]),
  )

const MAKE_KINDS = [
  'def run(self):',
  '    from runtime.entities import ImageParentMetadata',
  '    image = WorkflowImageData(parent_metadata=ImageParentMetadata(parent_id="p"), numpy_image=np.full((4, 6, 3), 7, dtype=np.uint8))',
  '    detections = sv.Detections(xyxy=np.array([[1, 2, 3, 4]], dtype=np.float32), confidence=np.array([0.5], dtype=np.float32), class_id=np.array([2]))',
  '    return {"array": np.arange(6, dtype=np.int16).reshape(2, 3), "image": image, "detections": detections, "when": datetime(2026, 1, 2, 3, 4, 5), "raw": b"\\x00\\xff"}',
].join('\n')

export function parityBlocks(): ParityBlock[] {
  const both: ('cbor' | 'json')[] = ['cbor', 'json']
  return [
    {
      name: 'plain values',
      code: 'def run(self, a, b):\n    return {"sum": a + b, "list": [a, b, None, True], "big": 2**70, "f": 1.0, "neg0": -0.0}\n',
      inputs: { a: 1, b: 2.5 },
      formats: both,
    },
    // The golden vectors are CBOR: every kind as a client sends it, echoed back.
    {
      name: 'every kind, echoed',
      code: 'def run(self, **inputs):\n    return inputs\n',
      inputs: vectors(),
      formats: ['cbor'],
    },
    { name: 'kinds made by the block', code: MAKE_KINDS, inputs: {}, formats: both },
    {
      name: 'a block error',
      code: 'def run(self):\n    print("before")\n    raise KeyError("k")\n',
      inputs: {},
      formats: both,
    },
    {
      name: 'prints and traces',
      code: 'def run(self):\n    print("out")\n    import sys\n    print("err", file=sys.stderr)\n    return {}\n',
      inputs: {},
      formats: both,
    },
  ]
}

/** An answer with what legitimately differs between backends removed. */
export function comparable(answer: Record<string, any>): Record<string, any> {
  const { timings_ms: _t, cold_start: _c, backend: _b, ...rest } = answer
  if (rest.error) {
    const { traceback_path: _p, ...error } = rest.error
    rest.error = error
  }
  return rest
}
