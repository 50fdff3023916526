// GET /playground in a real browser: Debian's Chromium driven by playwright-core. The sum
// example, an image inverted (the pixels shown compared with Python's own), a raising block
// (its line marked in the editor), detections drawn, and a server with keys that will not run
// without one. Screenshots of each state go to test/artifacts/ (ignored by git).
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createHash, randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { trace } from '@opentelemetry/api'
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace'
import { type Browser, chromium, type Page } from 'playwright-core'
import { createBackends } from '../../src/backends/index.ts'
import { createApp } from '../../src/app.ts'
import { digestOf } from '../../src/auth/keys.ts'
import { loadConfig, PROJECT_ROOT } from '../../src/config.ts'
import { FakeBackend } from '../support/fake-backend.ts'
import { PYTHON } from '../support/python.ts'

const SCENE = resolve(PROJECT_ROOT, 'test/fixtures/playground/scene.png')
const ARTIFACTS = resolve(PROJECT_ROOT, 'test/artifacts')
mkdirSync(ARTIFACTS, { recursive: true })

const config = loadConfig({ BLOCKGATE_MIN_WARM_WORKERS: '1', BLOCKGATE_MAX_WORKERS: '2' })
const backends = createBackends(config)
const app = createApp({ config, backends })
let server: ReturnType<typeof Bun.serve>
let browser: Browser
let page: Page

beforeAll(async () => {
  await backends.local!.start()
  server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: app.fetch })
  const executablePath = Bun.which('chromium') ?? Bun.which('chromium-browser')
  if (!executablePath) throw new Error('chromium is not installed: run npm run setup')
  browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] })
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  await page.goto(`${server.url.href}playground`)
}, 60_000)
afterAll(async () => {
  await browser?.close()
  server?.stop(true)
  await backends.local!.stop()
})

/** The page's canvas, as far as these tests read it (the tests' own types have no DOM). */
type Canvas = {
  width: number
  height: number
  getContext(kind: '2d'): {
    getImageData(
      x: number,
      y: number,
      w: number,
      h: number,
    ): { data: Uint8ClampedArray<ArrayBuffer> }
  }
}

/** Clicks Run and waits until the page has shown the answer (the button enabled again). */
async function runAndWait(p: Page): Promise<string> {
  await p.click('#run')
  await p.waitForSelector('#run:not([disabled])')
  await p.waitForFunction(
    "!['Press Run.', 'Running…'].includes(document.querySelector('#status').textContent)",
  )
  return (await p.textContent('#status')) ?? ''
}

describe('the playground in Chromium', () => {
  test('the sum example runs: outputs, a cold start, the waterfall', async () => {
    expect(await runAndWait(page)).toStartWith('Done in')
    expect(await page.textContent('[data-output="sum"]')).toBe('sum: 30.75')
    expect(await page.textContent('#cold-start')).toMatch(/cold start|warm/)
    const phases = await page.$$eval('#waterfall .bar-row', (rows) =>
      rows.map((r) => r.getAttribute('data-phase')),
    )
    expect(phases).toEqual(['queue', 'acquire', 'execute', 'user_code', 'total'])
    await page.screenshot({ path: resolve(ARTIFACTS, 'playground-sum.png'), fullPage: true })
  }, 30_000)

  test("an image inverted: the pixels shown are Python's own 255 - image", async () => {
    await page.selectOption('#example', { label: 'invert an image' })
    await page.setInputFiles('#image-file', SCENE)
    await page.waitForSelector('#image-preview:not(.hidden)')
    expect(await runAndWait(page)).toStartWith('Done in')
    // The canvas's RGBA, hashed in the page (1.2 MB through the DevTools protocol is slow).
    const shown = await page.$eval('[data-output="inverted"] canvas', async (canvas) => {
      const c = canvas as unknown as Canvas
      const rgba = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data
      const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', rgba))
      return {
        width: c.width,
        height: c.height,
        sha256: Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join(''),
      }
    })
    const expected = Bun.spawnSync({
      cmd: [
        PYTHON,
        '-c',
        `import sys, cv2; i = 255 - cv2.imread(${JSON.stringify(SCENE)}); sys.stdout.buffer.write(cv2.cvtColor(i, cv2.COLOR_BGR2RGBA).tobytes())`,
      ],
    }).stdout
    expect([shown.width, shown.height]).toEqual([640, 480])
    expect(expected.byteLength).toBe(640 * 480 * 4)
    expect(shown.sha256).toBe(createHash('sha256').update(expected).digest('hex'))
    expect(await page.textContent('[data-output="shape"]')).toContain('list (3)')
    await page.screenshot({ path: resolve(ARTIFACTS, 'playground-image.png'), fullPage: true })
  }, 30_000)

  test('an image dropped, and detections drawn over it: boxes, labels, masks', async () => {
    await page.selectOption('#example', { label: 'filter detections' })
    // The drop zone, as a user drags the file onto it (the same scene, dropped afresh).
    await page.evaluate("document.querySelector('#image-preview').classList.add('hidden')")
    const dropped = await page.evaluateHandle(
      `(() => { const bytes = Uint8Array.from(atob(${JSON.stringify(readFileSync(SCENE).toString('base64'))}), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer(); transfer.items.add(new File([bytes], 'scene.png', { type: 'image/png' })); return transfer })()`,
    )
    await page.dispatchEvent('#drop', 'drop', { dataTransfer: dropped })
    await page.waitForSelector('#image-preview:not(.hidden)')
    expect(await runAndWait(page)).toStartWith('Done in')
    expect(await page.textContent('[data-output="count"]')).toBe('count: 2')
    const drawn = await page.$eval('[data-output="kept"] canvas', (canvas) => {
      const c = canvas as unknown as Canvas
      const g = c.getContext('2d')!
      const at = (x: number, y: number) => Array.from(g.getImageData(x, y, 1, 1).data.slice(0, 3))
      // The cat's box edge (its left side at x=100) is stroked in the first palette colour;
      // inside its mask (a diamond) the red square is tinted with it, outside it is not.
      return {
        size: [c.width, c.height],
        edge: at(100, 140),
        inMask: at(160, 120),
        outside: at(106, 80),
      }
    })
    expect(drawn.size).toEqual([640, 480])
    expect(drawn.edge).toEqual([0xe6, 0x19, 0x4b])
    const red = [200, 40, 40] // the square under the cat, as cv2 drew it (BGR 40, 40, 200)
    const tint = [0xe6, 0x19, 0x4b]
    for (const [i, value] of drawn.outside.entries())
      expect(Math.abs(value - red[i]!)).toBeLessThanOrEqual(2)
    for (const [i, value] of drawn.inMask.entries())
      expect(Math.abs(value - ((red[i]! + tint[i]!) >> 1))).toBeLessThanOrEqual(2)
    await page.screenshot({ path: resolve(ARTIFACTS, 'playground-detections.png'), fullPage: true })
  }, 30_000)

  test('a block that raises: the error, and its line marked in the editor', async () => {
    await page.selectOption('#example', { label: 'a block that raises' })
    expect(await runAndWait(page)).toBe('BlockRuntimeError (422)')
    expect(await page.textContent('#error')).toContain('ZeroDivisionError')
    expect(await page.textContent('#stdout')).toBe('total 6\n')
    const marked = await page.$$eval('#run-editor .cm-error-line', (lines) =>
      lines.map((l) => l.textContent),
    )
    expect(marked).toEqual(['    return {"mean": total / (len(values) - 3)}'])
    await page.screenshot({ path: resolve(ARTIFACTS, 'playground-error.png'), fullPage: true })
  }, 30_000)
})

describe('with API keys', () => {
  const key = randomBytes(18).toString('base64url')
  const keyed = createApp({
    config: loadConfig({
      BLOCKGATE_PLAYGROUND: '1',
      BLOCKGATE_API_KEYS: JSON.stringify({
        keys: [
          {
            id: 'pg',
            sha256: digestOf(key).toString('hex'),
            workspaces: ['playground'],
          },
        ],
      }),
    }),
    backends: { local: new FakeBackend() },
  })
  let keyedServer: ReturnType<typeof Bun.serve>
  beforeAll(() => {
    keyedServer = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: keyed.fetch })
  })
  afterAll(() => keyedServer.stop(true))

  test('the page asks for a key and does not run without one; a wrong one is refused', async () => {
    const tab = await browser.newPage()
    const runs: string[] = []
    tab.on('request', (request) => {
      if (request.url().endsWith('/v1/run')) runs.push(request.headers().authorization ?? 'none')
    })
    await tab.goto(`${keyedServer.url.href}playground`)
    expect(await tab.isVisible('#key')).toBe(true)
    expect(await runAndWait(tab)).toContain('needs an API key')
    expect(runs).toEqual([])
    await tab.fill('#key', 'not-the-key')
    expect(await runAndWait(tab)).toBe('Unauthorized (401)')
    expect(runs).toEqual(['Bearer not-the-key'])
    await tab.screenshot({ path: resolve(ARTIFACTS, 'playground-keys.png'), fullPage: true })
    await tab.close()
  }, 30_000)
})

describe('with tracing on', () => {
  const provider = new TracerProvider({
    spanProcessors: [new SimpleSpanProcessor({ exporter: new InMemorySpanExporter() })],
  })
  const base = loadConfig({ BLOCKGATE_TRACE_URL_TEMPLATE: 'http://jaeger.test/trace/{trace_id}' })
  const traced = createApp({
    config: { ...base, telemetry: { ...base.telemetry, enabled: true } },
    backends: { local: new FakeBackend() },
  })
  let tracedServer: ReturnType<typeof Bun.serve>
  beforeAll(() => {
    trace.setGlobalTracerProvider(provider)
    tracedServer = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: traced.fetch })
  })
  afterAll(() => {
    tracedServer.stop(true)
    trace.disable() // later files run untraced, as a server without an endpoint does
  })

  test("a run's trace id is shown, linked with BLOCKGATE_TRACE_URL_TEMPLATE", async () => {
    const tab = await browser.newPage()
    const answered = tab.waitForResponse((r) => r.url().endsWith('/v1/run'))
    await tab.goto(`${tracedServer.url.href}playground`)
    expect(await runAndWait(tab)).toStartWith('Done in')
    const traceId = (await (await answered).headerValue('traceresponse'))?.split('-')[1]
    expect(traceId).toMatch(/^[0-9a-f]{32}$/)
    expect(await tab.getAttribute('#trace a', 'href')).toBe(`http://jaeger.test/trace/${traceId}`)
    expect(await tab.textContent('#trace a')).toBe(traceId!)
    await tab.close()
  }, 30_000)
})

test('off: BLOCKGATE_PLAYGROUND=0, or by default on a non-loopback bind; the script gzipped when asked', async () => {
  const off = createApp({
    config: loadConfig({ BLOCKGATE_PLAYGROUND: '0' }),
    backends: { local: new FakeBackend() },
  })
  expect((await off.request('/playground')).status).toBe(404)
  const script = await app.request('/playground/app.js', { headers: { 'accept-encoding': 'gzip' } })
  expect(script.headers.get('content-encoding')).toBe('gzip')
  const gzipped = new Uint8Array(await script.arrayBuffer())
  const plain = await (await app.request('/playground/app.js')).text()
  expect(new TextDecoder().decode(Bun.gunzipSync(gzipped))).toBe(plain)
  expect(gzipped.byteLength).toBeLessThan(plain.length / 2)
  const open = loadConfig({ HOST: '0.0.0.0', BLOCKGATE_ALLOW_OPEN_BIND: '1' })
  expect(open.playground.enabled).toBe(false)
  expect(loadConfig({}).playground.enabled).toBe(true)
})
