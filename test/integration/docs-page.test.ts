// GET /docs in a real browser: headless Chromium (installed by `npm run setup`) renders the
// reference page from blockgate alone (every other host unresolvable), and it lists every
// route of the document.
import { afterAll, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createApp } from '../../src/app.ts'
import { openApiDocument } from '../../src/api/openapi.ts'
import { loadConfig } from '../../src/config.ts'
import { FakeBackend } from '../support/fake-backend.ts'

const app = createApp({ config: loadConfig({}), backends: { local: new FakeBackend() } })
const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: app.fetch })
const profile = mkdtempSync(join(tmpdir(), 'blockgate-docs-'))
afterAll(() => {
  server.stop(true)
  rmSync(profile, { recursive: true, force: true })
})

test('Chromium renders /docs with no host but blockgate, listing every route', async () => {
  const browser = Bun.which('chromium') ?? Bun.which('chromium-browser')
  expect(browser, 'chromium is not installed: run npm run setup').toBeTruthy()
  const chromium = Bun.spawn(
    [
      browser!,
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      `--user-data-dir=${profile}`,
      // No CDN: any host but the server's own fails to resolve.
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
      '--virtual-time-budget=10000',
      '--dump-dom',
      `${server.url.href}docs`,
    ],
    { stdout: 'pipe', stderr: 'ignore' },
  )
  const timer = setTimeout(() => chromium.kill(), 60_000)
  const dom = await new Response(chromium.stdout).text()
  clearTimeout(timer)
  expect(await chromium.exited).toBe(0)
  const rendered = [...dom.matchAll(/class="opblock-summary-path" data-path="([^"]+)"/g)].map(
    (m) => m[1],
  )
  const documented = Object.keys((openApiDocument('test') as { paths: object }).paths)
  expect(rendered.sort()).toEqual(documented.sort())
}, 90_000)
