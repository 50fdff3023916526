// The TypeScript client (clients/ts) against a live blockgate on a real socket: every kind
// round trip, every error type, retries and keys; then the same client bundled and run on
// Node, and in a context holding only web APIs (what an edge runtime offers: no Buffer,
// process or require), to prove it needs nothing of Bun or Node.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import vm from 'node:vm'
import { createBackends } from '../../src/backends/index.ts'
import { createApp } from '../../src/app.ts'
import { digestOf } from '../../src/auth/keys.ts'
import { loadConfig, PROJECT_ROOT } from '../../src/config.ts'
import { TimestampText } from '../../serializers/cbor.ts'
import {
  BadRequest,
  BlockCompileError,
  BlockRuntimeError,
  BlockTimeout,
  Client,
  Detections,
  Forbidden,
  NDArray,
  Overloaded,
  Unauthorized,
  VideoMetadata,
  WorkerCrashed,
  WorkflowImage,
} from '../../clients/ts/index.ts'
import { checkedApp } from '../support/contract.ts'

const KEY = randomBytes(18).toString('base64url')
const config = loadConfig({
  BLOCKGATE_MIN_WARM_WORKERS: '1',
  BLOCKGATE_MAX_WORKERS: '1',
  BLOCKGATE_MAX_QUEUE: '0',
  BLOCKGATE_API_KEYS: JSON.stringify({
    keys: [
      {
        id: 'ts-client',
        sha256: digestOf(KEY).toString('hex'),
        workspaces: ['tests', 'other'],
      },
    ],
  }),
})
const backends = createBackends(config)
const app = checkedApp(createApp({ config, backends }))
let server: ReturnType<typeof Bun.serve>
let client: Client
const ECHO = 'def run(self, value):\n    return {"value": value}\n'

beforeAll(async () => {
  await backends.local!.start()
  server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: app.fetch })
  client = new Client({ url: server.url.href, apiKey: KEY })
}, 60_000)
afterAll(async () => {
  server.stop(true)
  await backends.local!.stop()
})

describe('the TypeScript client against a live server', () => {
  test('plain values keep their types', async () => {
    const result = await client.run(ECHO, {
      value: { n: 2, big: 2n ** 70n, text: 'é', list: [1, null, true] },
    })
    expect(result.outputs.value).toEqual({ n: 2, big: 2n ** 70n, text: 'é', list: [1, null, true] })
    expect(result.backend).toBe('local')
    expect(result.timingsMs.total).toBeGreaterThan(0)
    expect(typeof result.coldStart).toBe('boolean')
  })

  test('an image in, an inverted image out, as the same class', async () => {
    const image = WorkflowImage.fromPixels(
      NDArray.fromBytes('uint8', [4, 6, 3], new Uint8Array(72).fill(128)),
    )
    const { outputs } = await client.run(
      'def run(self, image):\n    return {"image": WorkflowImageData.copy_and_replace(image, numpy_image=255 - image.numpy_image)}\n',
      { image },
    )
    const back = outputs.image as WorkflowImage
    expect(back).toBeInstanceOf(WorkflowImage)
    expect(back.pixels!.shape).toEqual([4, 6, 3])
    expect(back.pixels!.bytes.every((b) => b === 127)).toBe(true)
  })

  test('ndarrays of several dtypes, detections and video metadata round trip', async () => {
    const floats = NDArray.of('float32', new Float32Array([0.5, -0, 3]), [3])
    const detections = Detections.create({
      xyxy: NDArray.of('float32', new Float32Array([0, 0, 10, 10, 5, 5, 20, 20]), [2, 4]),
      confidence: NDArray.of('float32', new Float32Array([0.9, 0.2]), [2]),
      classId: NDArray.of('int64', new BigInt64Array([1n, 2n]), [2]),
      data: { class_name: NDArray.ofStrings(['car', 'person']) },
    })
    const metadata = new VideoMetadata({
      videoIdentifier: 'cam-1',
      frameNumber: 7,
      frameTimestamp: new TimestampText('2026-11-29T03:00:00.250000+02:00'),
      fps: 30,
    })
    const { outputs } = await client.run(
      'def run(self, floats, dets, meta):\n    return {"floats": floats, "kept": dets[dets.confidence > 0.5], "meta": meta}\n',
      { floats, dets: detections, meta: metadata },
    )
    const back = outputs.floats as NDArray
    expect(back.dtype).toBe('float32')
    expect(Array.from(back.data as Float32Array)).toEqual([0.5, -0, 3])
    expect(Object.is((back.data as Float32Array)[1], -0)).toBe(true)
    const kept = outputs.kept as Detections
    expect(kept).toBeInstanceOf(Detections)
    expect((kept.data.class_name as NDArray).strings).toEqual(['car'])
    const meta = outputs.meta as VideoMetadata
    expect(meta).toBeInstanceOf(VideoMetadata)
    expect(meta.frameTimestamp.text).toBe('2026-11-29T03:00:00.250000+02:00')
  })

  test('JSON too, with the forms as they are', async () => {
    const json = new Client({ url: server.url.href, apiKey: KEY, format: 'json' })
    const { outputs } = await json.run(ECHO, {
      value: { _type: 'ndarray', dtype: 'int32', shape: [2], value: [1, 2] },
    })
    expect(outputs.value).toEqual({ _type: 'ndarray', value: [1, 2], dtype: 'int32', shape: [2] })
  })

  test('every error type, typed', async () => {
    const raised = (await client
      .run('def run(self, x):\n    print("before")\n    return {"y": x / 0}\n', { x: 1 })
      .catch((e) => e)) as BlockRuntimeError
    expect(raised).toBeInstanceOf(BlockRuntimeError)
    expect([raised.status, raised.line, raised.function, raised.stdout]).toEqual([
      422,
      3,
      'run',
      'before\n',
    ])
    expect(raised.traceback).toContain('ZeroDivisionError')

    expect(await client.run('def run(self:\n    pass\n').catch((e) => e)).toBeInstanceOf(
      BlockCompileError,
    )
    const bad = (await client
      .run(ECHO, {}, { workspace: 'no spaces' })
      .catch((e) => e)) as BadRequest
    expect(bad).toBeInstanceOf(BadRequest)
    expect(bad.path).toBe('workspace')
    expect(
      await client
        .run('def run(self):\n    while True: pass\n', {}, { timeoutMs: 300 })
        .catch((e) => e),
    ).toBeInstanceOf(BlockTimeout)
    expect(
      await client.run('import os\ndef run(self):\n    os._exit(3)\n').catch((e) => e),
    ).toBeInstanceOf(WorkerCrashed)
    expect(
      await client.run(ECHO, { value: 1 }, { workspace: 'not-mine' }).catch((e) => e),
    ).toBeInstanceOf(Forbidden)
    const anonymous = new Client({ url: server.url.href })
    expect(await anonymous.run(ECHO, { value: 1 }).catch((e) => e)).toBeInstanceOf(Unauthorized)
  }, 30_000)

  test('429 is retried after Retry-After, and retries are bounded', async () => {
    const slow = 'import time\ndef run(self, s):\n    time.sleep(s)\n    return {}\n'
    await client.run(slow, { s: 0 })
    const once = new Client({ url: server.url.href, apiKey: KEY, retries: 0 })
    let busy = client.run(slow, { s: 1.2 })
    await Bun.sleep(300)
    const refused = (await once.run(ECHO, { value: 1 }).catch((e) => e)) as Overloaded
    expect(refused).toBeInstanceOf(Overloaded)
    expect(refused.status).toBe(429)
    expect(refused.retryAfterS).toBeGreaterThanOrEqual(1)
    await busy

    busy = client.run(slow, { s: 0.8 })
    await Bun.sleep(300)
    const startedAt = performance.now()
    expect((await client.run(ECHO, { value: 7 })).outputs).toEqual({ value: 7 })
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(900)
    await busy
  }, 30_000)
})

describe('the same client outside Bun', () => {
  const dir = mkdtempSync(join(tmpdir(), 'blockgate-ts-client-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  // One round trip of each kind class through the bundled client; prints what came back.
  const script = (importLine: string) => `${importLine}
export async function main(url, key) {
  const client = new Client({ url, apiKey: key })
  const image = WorkflowImage.fromPixels(NDArray.fromBytes('uint8', [2, 2, 3], new Uint8Array(12).fill(10)))
  const result = await client.run('def run(self, image, n):\\n    return {"sum": int(image.numpy_image.sum()) + n, "image": image}\\n', { image, n: 1 })
  let error = null
  try { await client.run('def run(self):\\n    raise ValueError("x")\\n') } catch (e) { error = e.name + ' ' + e.line }
  return JSON.stringify({ sum: result.outputs.sum, isImage: result.outputs.image instanceof WorkflowImage, error })
}
`
  const expected = JSON.stringify({ sum: 121, isImage: true, error: 'BlockRuntimeError 2' })

  async function bundle(target: 'node' | 'browser'): Promise<string> {
    const entry = join(dir, `entry-${target}.ts`)
    await Bun.write(
      entry,
      script(
        `import { Client, NDArray, WorkflowImage } from '${resolve(PROJECT_ROOT, 'clients/ts/index.ts')}'`,
      ),
    )
    const built = await Bun.build({
      entrypoints: [entry],
      target,
      format: 'esm',
      outdir: join(dir, target),
    })
    expect(built.success).toBe(true)
    return built.outputs[0]!.path
  }

  test('on Node', async () => {
    const file = await bundle('node')
    const runner = join(dir, 'run.mjs')
    await Bun.write(
      runner,
      `import { main } from '${file}'\nconsole.log(await main(process.argv[2], process.argv[3]))\n`,
    )
    const node = Bun.spawn(['node', runner, server.url.href, KEY], {
      stdout: 'pipe',
      stderr: 'pipe',
    })
    const [out, err] = await Promise.all([
      new Response(node.stdout).text(),
      new Response(node.stderr).text(),
    ])
    expect(await node.exited, err).toBe(0)
    expect(out.trim()).toBe(expected)
  }, 60_000)

  test('with web APIs only (an edge runtime: no Buffer, process or require)', async () => {
    const file = await bundle('browser')
    const source = readFileSync(file, 'utf8').replace(/^export \{[^}]*\};?\s*$/m, '')
    expect(source).not.toMatch(/\bfrom\s+["']node:|require\(["']node:/)
    const web = {
      fetch,
      Request,
      Response,
      Headers,
      URL,
      TextEncoder,
      TextDecoder,
      AbortController,
      AbortSignal,
      crypto,
      setTimeout,
      clearTimeout,
      console,
    }
    const context = vm.createContext({ ...web, globalThis: undefined })
    vm.runInContext('globalThis = this', context)
    vm.runInContext(source, context)
    const answer = await vm.runInContext('main', context)(server.url.href, KEY)
    expect(answer).toBe(expected)
    expect(vm.runInContext('typeof Buffer + typeof process + typeof require', context)).toBe(
      'undefinedundefinedundefined',
    )
  }, 60_000)
})
