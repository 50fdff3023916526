// End to end through real Python workers: the HTTP app in front of a LocalPool, and one
// real Bun.serve server for what only a socket shows (the server keeps serving).
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { createBackends } from '../../src/backends/index.ts'
import { Tag } from '../../serializers/cbor.ts'
import { decodeKinds } from '../../serializers/index.ts'
import { Detections } from '../../serializers/detections/index.ts'
import { WorkflowImage } from '../../serializers/image/index.ts'
import { NDArray } from '../../serializers/ndarray/index.ts'
import { FORMATS, readAnswer, runRequest, SUM_BLOCK } from '../support/http.ts'
import { PYTHON } from '../support/python.ts'
import { checkedApp } from '../support/contract.ts'

const config = loadConfig({
  BLOCKGATE_MIN_WARM_WORKERS: '2',
  BLOCKGATE_MAX_WORKERS: '4',
  BLOCKGATE_DEFAULT_TIMEOUT_MS: '10000',
})
const backends = createBackends(config)
const app = checkedApp(createApp({ config, backends }))

beforeAll(async () => {
  await backends.local!.start()
}, 60_000)
afterAll(async () => {
  await backends.local!.stop()
})

async function run(body: Record<string, unknown>, format: 'json' | 'cbor' = 'json') {
  const response = await app.request('/v1/run', runRequest(body, format))
  return { status: response.status, answer: await readAnswer(response) }
}

const code = (run_function_code: string, extra: Record<string, unknown> = {}) => ({
  code: { run_function_code, ...extra },
})

describe('a block runs end to end', () => {
  for (const format of FORMATS) {
    test(`sum in ${format}`, async () => {
      const { status, answer } = await run(
        { ...code(SUM_BLOCK), inputs: { a: 10.5, b: 20.3 } },
        format,
      )
      expect(status).toBe(200)
      expect(answer.outputs).toEqual({ sum: 30.8 })
      expect(answer.backend).toBe('local')
      expect(answer.timings_ms.total).toBeGreaterThan(0)
    })
  }

  test('the second run of the same code is warm', async () => {
    const body = { ...code('def run(self, x):\n    return {"twice": x * 2}\n'), inputs: { x: 21 } }
    const first = await run(body)
    const second = await run(body)
    expect(first.answer.cold_start).toBe(true)
    expect(second.answer.cold_start).toBe(false)
    expect(second.answer.outputs).toEqual({ twice: 42 })
  })

  test('init runs once per loaded block and is self._init_results', async () => {
    const block = code(
      'def run(self):\n    self._init_results["runs"] += 1\n    return dict(self._init_results)\n',
      {
        init_function_code:
          'import random\n\ndef init():\n    print("init ran")\n    return {"token": random.random(), "runs": 0}\n',
      },
    )
    const first = (await run(block)).answer
    const second = (await run(block)).answer
    expect(first.outputs.runs).toBe(1)
    expect(second.outputs.runs).toBe(2)
    expect(second.outputs.token).toBe(first.outputs.token)
  })

  test('no init means self._init_results is an empty dict', async () => {
    const { answer } = await run(code('def run(self):\n    return {"init": self._init_results}\n'))
    expect(answer.outputs).toEqual({ init: {} })
  })

  test('prints are captured per run', async () => {
    const { answer } = await run({
      ...code(
        'import sys\ndef run(self, n):\n    print("out", n)\n    print("err", n, file=sys.stderr)\n    return {}\n',
      ),
      inputs: { n: 7 },
    })
    expect(answer.stdout).toBe('out 7\n')
    expect(answer.stderr).toBe('err 7\n')
  })

  test('the workflow context reaches the block', async () => {
    const { answer } = await run({
      ...code('def run(self):\n    return self.get_workflow_context()\n'),
      step_name: 'my_step',
    })
    expect(answer.outputs.step_name).toBe('my_step')
    expect(answer.outputs.workflow_execution_id).toMatch(/^[0-9a-f-]{36}$/)
  })

  test('the standard import block and extra imports are in scope', async () => {
    const { status, answer } = await run({
      ...code(
        'def run(self):\n    return {"np": np.__name__, "sv": sv.__name__, "cv2": cv2.__name__, "pi": math.pi, "dq": type(deque()).__name__}\n',
        {
          imports: ['from collections import deque'],
        },
      ),
    })
    expect(status).toBe(200)
    expect(answer.outputs).toEqual({
      np: 'numpy',
      sv: 'supervision',
      cv2: 'cv2',
      pi: Math.PI,
      dq: 'deque',
    })
  })
})

describe("the user's errors come back as 422 with their own line numbers", () => {
  test('a block that raises on line 3', async () => {
    const source =
      'def run(self, a):\n    print("about to fail")\n    raise ValueError(f"boom {a}")\n'
    const { status, answer } = await run({ ...code(source), inputs: { a: 1 } }, 'cbor')
    expect(status).toBe(422)
    const { error } = answer
    expect(error.type).toBe('BlockRuntimeError')
    expect(error.line).toBe(3)
    expect(error.function).toBe('run')
    expect(error.message).toBe('ValueError: boom 1')
    expect(error.snippet).toContain('> 3 |     raise ValueError(f"boom {a}")')
    expect(error.stdout).toBe('about to fail\n')
    expect(error.traceback).toContain('line 3, in run')
    expect(error.traceback).not.toContain('runtime/')
  })

  test('a syntax error is a BlockCompileError with its line', async () => {
    const { status, answer } = await run(code('def run(self):\n    x = 1\n    return {"x": x\n'))
    expect(status).toBe(422)
    expect(answer.error.type).toBe('BlockCompileError')
    expect(answer.error.line).toBeGreaterThanOrEqual(3)
    expect(answer.error.source).toBe('run_function_code')
  })

  test('a missing run function is named', async () => {
    const { status, answer } = await run(code('def execute(self):\n    return {}\n'))
    expect(status).toBe(422)
    expect(answer.error.type).toBe('BlockCompileError')
    expect(answer.error.message).toContain("'run'")
  })

  test('a run function under another name works when named', async () => {
    const { status, answer } = await run({
      ...code('def execute(self):\n    return {"ok": True}\n', { run_function_name: 'execute' }),
    })
    expect(status).toBe(200)
    expect(answer.outputs).toEqual({ ok: true })
  })

  test('sys.exit in a block is an error, not a dead worker', async () => {
    const { status, answer } = await run(code('import sys\ndef run(self):\n    sys.exit(3)\n'))
    expect(status).toBe(422)
    expect(answer.error.line).toBe(3)
    expect((await run({ ...code(SUM_BLOCK), inputs: { a: 1, b: 2 } })).answer.outputs).toEqual({
      sum: 3,
    })
  })
})

describe('a worker that hangs or dies is replaced', () => {
  test('an infinite loop is a 504 within the timeout, and the pool recovers', async () => {
    const startedAt = performance.now()
    const { status, answer } = await run({
      ...code('def run(self):\n    while True:\n        pass\n'),
      timeout_ms: 500,
    })
    expect(status).toBe(504)
    expect(answer.error.type).toBe('BlockTimeout')
    expect(performance.now() - startedAt).toBeLessThan(3000)
    const results = await Promise.all(
      [1, 2, 3, 4].map((a) => run({ ...code(SUM_BLOCK), inputs: { a, b: 1 } })),
    )
    expect(results.map((r) => r.answer.outputs.sum)).toEqual([2, 3, 4, 5])
  })

  test('os._exit is a 500 WorkerCrashed, and the next run succeeds', async () => {
    const { status, answer } = await run(code('import os\ndef run(self):\n    os._exit(1)\n'))
    expect(status).toBe(500)
    expect(answer.error.type).toBe('WorkerCrashed')
    expect(answer.error.message).toContain('exited with code 1')
    expect((await run({ ...code(SUM_BLOCK), inputs: { a: 2, b: 2 } })).answer.outputs).toEqual({
      sum: 4,
    })
  })

  test('writing to the raw stdout fd does not corrupt the frame channel', async () => {
    const { status, answer } = await run(
      code(
        'import os\ndef run(self):\n    os.write(1, b"\\x00\\x00\\x00\\x05junk")\n    return {"still": "fine"}\n',
      ),
    )
    expect(status).toBe(200)
    expect(answer.outputs).toEqual({ still: 'fine' })
  })
})

describe('over a real socket', () => {
  test('garbage, a non-object and a missing field get 400s and the server keeps serving', async () => {
    const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: app.fetch })
    try {
      const url = `${server.url.href}v1/run`
      const garbage = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/cbor' },
        body: crypto.getRandomValues(new Uint8Array(512)).map((b, i) => (i === 0 ? 0xff : b)),
      })
      expect(garbage.status).toBe(400)
      expect((await readAnswer(garbage)).error.message).toMatch(/^body: not valid CBOR/)
      const array = await fetch(url, runRequest([1, 2], 'json'))
      expect(array.status).toBe(400)
      const missing = await fetch(url, runRequest({ code: {} }, 'json'))
      expect((await readAnswer(missing)).error.message).toBe('code.run_function_code: is required')
      const ok = await fetch(
        url,
        runRequest({ ...code(SUM_BLOCK), inputs: { a: 10.5, b: 20.3 } }, 'cbor'),
      )
      expect(ok.status).toBe(200)
      expect((await readAnswer(ok)).outputs).toEqual({ sum: 30.8 })
    } finally {
      server.stop(true)
    }
  })

  test('many concurrent runs of mixed blocks all answer correctly', async () => {
    const blocks = [
      SUM_BLOCK,
      'def run(self, a, b):\n    return {"sum": a - b}\n',
      'def run(self, a, b):\n    return {"sum": a * b}\n',
    ]
    const expected = (i: number) => [i + 3, i - 3, i * 3][i % 3]
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        run({ ...code(blocks[i % 3]!), inputs: { a: i, b: 3 } }, i % 2 ? 'cbor' : 'json'),
      ),
    )
    expect(results.map((r) => r.answer.outputs?.sum)).toEqual(
      Array.from({ length: 30 }, (_, i) => expected(i)),
    )
  })
})

describe('kinds cross the boundary intact', () => {
  const invert = code(
    'def run(self, image):\n    return {"inverted": 255 - image, "dtype": str(image.dtype), "writable": image.flags.writeable}\n',
  )

  test('a 10×10×3 uint8 array of 128s comes back as exactly 127s, over CBOR', async () => {
    const image = NDArray.fromBytes('uint8', [10, 10, 3], new Uint8Array(300).fill(128))
    const { status, answer } = await runKinds({ ...invert, inputs: { image } })
    expect(status).toBe(200)
    const inverted = answer.outputs.inverted as NDArray
    expect([inverted.dtype, inverted.shape]).toEqual(['uint8', [10, 10, 3]])
    expect(inverted.bytes.every((b) => b === 127)).toBe(true)
    expect(answer.outputs.writable).toBe(true)
  })

  test('a 1080p frame goes in and out through the sidecar, bit-exact and writable', async () => {
    const pixels = new Uint8Array(1080 * 1920 * 3).map((_, i) => (i * 7) % 256)
    const { status, answer } = await runKinds({
      ...invert,
      inputs: { image: NDArray.fromBytes('uint8', [1080, 1920, 3], pixels) },
    })
    expect(status).toBe(200)
    const inverted = answer.outputs.inverted as NDArray
    expect(inverted.shape).toEqual([1080, 1920, 3])
    expect(inverted.bytes.every((b, i) => b === 255 - pixels[i]!)).toBe(true)
    expect(answer.outputs.writable).toBe(true)
  })

  test('a block returning float32 gets float32 back, not float64 lists', async () => {
    const { answer } = await runKinds(
      code('def run(self):\n    return {"a": np.linspace(0, 1, 5, dtype=np.float32)}\n'),
    )
    const a = answer.outputs.a as NDArray
    expect(a.dtype).toBe('float32')
    expect(Array.from(a.data as Float32Array)).toEqual([0, 0.25, 0.5, 0.75, 1])
  })

  test("over JSON, arrays use Roboflow's ndarray form both ways, or compact base64 when asked", async () => {
    const input = {
      _type: 'ndarray',
      dtype: 'uint8',
      shape: [2, 2],
      value: [
        [0, 10],
        [200, 255],
      ],
    }
    const lists = await run({
      ...code('def run(self, m):\n    return {"m": m + 0, "sum": int(m.sum())}\n'),
      inputs: { m: input },
    })
    expect(lists.status).toBe(200)
    expect(lists.answer.outputs).toEqual({
      m: {
        _type: 'ndarray',
        value: [
          [0, 10],
          [200, 255],
        ],
        dtype: 'uint8',
        shape: [2, 2],
      },
      sum: 465,
    })
    const compact = await run({
      ...code('def run(self, m):\n    return {"m": m}\n'),
      inputs: { m: input },
      json_arrays: 'base64',
    })
    expect(compact.answer.outputs.m).toEqual({
      _type: 'ndarray',
      dtype: 'uint8',
      shape: [2, 2],
      encoding: 'base64',
      value: Buffer.from([0, 10, 200, 255]).toString('base64'),
    })
  })

  test('an array that does not fit its shape is a 400 naming the path, over CBOR and JSON', async () => {
    const bad = await app.request(
      '/v1/run',
      runRequest(
        { ...code(SUM_BLOCK), inputs: { a: new Tag([[2, 3], new Float32Array(5)], 40) } },
        'cbor',
      ),
    )
    expect(bad.status).toBe(400)
    expect((await readAnswer(bad)).error.message).toBe(
      'inputs.a: shape [2,3] of float32 needs 24 bytes, got 20',
    )
    const json = await run({
      ...code(SUM_BLOCK),
      inputs: { a: { _type: 'ndarray', dtype: 'float32', shape: [3], value: [1, 2] } },
    })
    expect(json.status).toBe(400)
    expect(json.answer.error.message).toBe('inputs.a.value: holds 2 values, shape [3] needs 3')
  })
})

async function runKinds(body: Record<string, unknown>) {
  const response = await app.request('/v1/run', runRequest(body, 'cbor'))
  const answer = await readAnswer(response)
  return {
    status: response.status,
    answer:
      response.status === 200
        ? { ...answer, outputs: decodeKinds(answer.outputs, 'outputs') }
        : answer,
  }
}

describe('outputs reach the client exactly as the block made them', () => {
  const block = code(
    'def run(self):\n    return {"whole": 1.0, "neg": -0.0, "big": 2**64 + 1, "keys": {"b": 1, "10": 2, "a": 3, "2": 4}}\n',
  )

  test('over CBOR: whole floats stay floats, -0.0 and big integers survive, key order kept', async () => {
    const response = await app.request('/v1/run', runRequest(block, 'cbor'))
    const bytes = Buffer.from(await response.arrayBuffer())
    expect(bytes.includes(Buffer.from('6577686f6c65fb3ff0000000000000', 'hex'))).toBe(true) // "whole": float64 1.0
    expect(bytes.includes(Buffer.from('636e6567fb8000000000000000', 'hex'))).toBe(true) // "neg": float64 -0.0
    const python = Bun.spawnSync({
      cmd: [
        PYTHON,
        '-c',
        'import sys, cbor2; o = cbor2.loads(sys.stdin.buffer.read())["outputs"]; print(repr(o["whole"]), repr(o["neg"]), o["big"], list(o["keys"]))',
      ],
      stdin: bytes,
    })
    expect(python.stdout.toString().trim()).toBe(
      "1.0 -0.0 18446744073709551617 ['b', '10', 'a', '2']",
    )
  })

  test('over JSON: the text the runtime wrote', async () => {
    const response = await app.request('/v1/run', runRequest(block, 'json'))
    const text = await response.text()
    expect(text).toStartWith(
      '{"outputs":{"whole":1.0,"neg":-0.0,"big":18446744073709551617,"keys":{"b":1,"10":2,"a":3,"2":4}},',
    )
    expect(JSON.parse(text).backend).toBe('local')
  })
})

describe('images and detections through real workers', () => {
  test('a WorkflowImageData of 128s inverted by copy_and_replace comes back as exactly 127s', async () => {
    const image = WorkflowImage.fromPixels(
      NDArray.fromBytes('uint8', [10, 10, 3], new Uint8Array(300).fill(128)),
    )
    const { status, answer } = await runKinds({
      ...code(
        'def run(self, image):\n    return {"image": WorkflowImageData.copy_and_replace(image, numpy_image=255 - image.numpy_image)}\n',
      ),
      inputs: { image },
    })
    expect(status).toBe(200)
    const back = answer.outputs.image as WorkflowImage
    expect(back).toBeInstanceOf(WorkflowImage)
    expect(back.pixels!.shape).toEqual([10, 10, 3])
    expect(back.pixels!.bytes.every((b) => b === 127)).toBe(true)
  })

  test('an encoded PNG passed through untouched comes back byte-identical, never re-encoded', async () => {
    const png = new Uint8Array(
      Bun.spawnSync({
        cmd: [
          PYTHON,
          '-c',
          'import sys, cv2, numpy as np; sys.stdout.buffer.write(cv2.imencode(".png", np.arange(120*160*4, dtype=np.uint32).astype(np.uint8).reshape(120,160,4))[1].tobytes())',
        ],
      }).stdout,
    )
    const { answer } = await runKinds({
      ...code(
        'def run(self, image):\n    return {"same": image, "parent": image.parent_metadata.parent_id}\n',
      ),
      inputs: { image: WorkflowImage.fromEncoded(png) },
    })
    const back = answer.outputs.same as WorkflowImage
    expect(back.encoded?.format).toBe('png')
    expect(Buffer.from(back.encoded!.bytes).equals(Buffer.from(png))).toBe(true)
    expect(answer.outputs.parent).toBe('image')
  })

  test('filtering detections by confidence keeps every data key', async () => {
    const detections = Detections.create({
      xyxy: NDArray.of(
        'float32',
        new Float32Array([0, 0, 10, 10, 5, 5, 20, 20, 1, 2, 3, 4]),
        [3, 4],
      ),
      confidence: NDArray.of('float32', new Float32Array([0.9, 0.2, 0.7]), [3]),
      classId: NDArray.of('int64', new BigInt64Array([1n, 2n, 1n]), [3]),
      data: {
        class_name: NDArray.ofStrings(['car', 'person', 'car']),
        ocr: ['A1', 'B2', 'C3'],
        area: NDArray.of('float64', new Float64Array([100, 225, 4]), [3]),
      },
    })
    const { status, answer } = await runKinds({
      ...code(
        'def run(self, dets):\n    kept = dets[dets.confidence > 0.5]\n    return {"kept": kept, "n": len(kept)}\n',
      ),
      inputs: { dets: detections },
    })
    expect(status).toBe(200)
    const kept = answer.outputs.kept as Detections
    expect(answer.outputs.n).toBe(2)
    expect(Object.keys(kept.data).sort()).toEqual(['area', 'class_name', 'ocr'])
    expect((kept.data.class_name as NDArray).strings).toEqual(['car', 'car'])
    expect(Array.from((kept.data.area as NDArray).data as Float64Array)).toEqual([100, 4])
    expect(kept.xyxy.dtype).toBe('float32')
  })

  test("over JSON, images and detections use Roboflow's webexec forms", async () => {
    const pngBase64 = Bun.spawnSync({
      cmd: [
        PYTHON,
        '-c',
        'import base64, cv2, numpy as np; print(base64.b64encode(cv2.imencode(".png", np.full((4, 6, 3), 128, np.uint8))[1]).decode())',
      ],
    })
      .stdout.toString()
      .trim()
    const { status, answer } = await run({
      ...code(
        'def run(self, image, dets):\n    return {"shape": list(image.numpy_image.shape), "n": len(dets), "classes": list(dets.data["class_name"]), "dets": dets}\n',
      ),
      inputs: {
        image: { _type: 'workflow_image', type: 'base64', value: pngBase64 },
        dets: {
          _type: 'sv_detections',
          image: { width: 6, height: 4 },
          predictions: [
            {
              x: 3,
              y: 2,
              width: 2,
              height: 2,
              confidence: 0.8,
              class_id: 0,
              class: 'cat',
              detection_id: 'd1',
            },
          ],
        },
      },
    })
    expect(status).toBe(200)
    expect(answer.outputs.shape).toEqual([4, 6, 3])
    expect(answer.outputs.n).toBe(1)
    expect(answer.outputs.classes).toEqual(['cat'])
    expect(answer.outputs.dets._type).toBe('sv_detections')
    expect(answer.outputs.dets.predictions[0]).toMatchObject({
      x: 3,
      y: 2,
      width: 2,
      height: 2,
      class: 'cat',
      detection_id: 'd1',
    })
  })
})
