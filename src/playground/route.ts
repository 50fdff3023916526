// GET /playground: a page to write a block, drop an image, and see its outputs and where the
// time went (README.md, "Playground"). Its script (page/main.ts: CodeMirror, the TypeScript
// client and the kind classes) is bundled by Bun on first request and served from memory,
// so nothing comes from a CDN. The page itself holds no secret: runs go to /v1/run with the
// key the user types, kept in the tab.
import { resolve } from 'node:path'
import type { Env, Hono } from 'hono'
import { InternalError } from '../errors.ts'
import { log } from '../log.ts'
import { pageHtml, type PlaygroundSettings } from './page/html.ts'

export const PLAYGROUND_PATH = '/playground'
const ENTRY = resolve(import.meta.dir, 'page/main.ts')

/** The page's script, built once per process, as it is and gzipped (it is ~0.5 MB). */
let bundle: Promise<{ plain: Uint8Array; gzipped: Uint8Array }> | undefined
function pageScript(): Promise<{ plain: Uint8Array; gzipped: Uint8Array }> {
  bundle ??= Bun.build({ entrypoints: [ENTRY], target: 'browser', minify: true }).then(
    async (built) => {
      if (!built.success) {
        bundle = undefined
        throw new InternalError(`the playground's script did not build: ${built.logs.join('; ')}`)
      }
      const plain = new Uint8Array(await built.outputs[0]!.arrayBuffer())
      return { plain, gzipped: Bun.gzipSync(plain) }
    },
  )
  return bundle
}

export function registerPlayground<E extends Env>(
  app: Hono<E>,
  settings: PlaygroundSettings,
): void {
  const html = pageHtml(settings)
  app.get(PLAYGROUND_PATH, (c) =>
    c.html(html, 200, {
      // Only this origin's script and the API: a block's outputs are data, never markup.
      'content-security-policy':
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; script-src 'self'",
      'cache-control': 'no-store',
    }),
  )
  app.get(`${PLAYGROUND_PATH}/app.js`, async (c) => {
    const { plain, gzipped } = await pageScript()
    const gzip = /\bgzip\b/.test(c.req.header('accept-encoding') ?? '')
    return c.body((gzip ? gzipped : plain) as Uint8Array<ArrayBuffer>, 200, {
      'content-type': 'text/javascript; charset=utf-8',
      'cache-control': 'no-cache',
      vary: 'accept-encoding',
      ...(gzip ? { 'content-encoding': 'gzip' } : {}),
    })
  })
}

/** Builds the script ahead of the first visit (the server's start): a build error shows in the log. */
export function warmPlayground(): void {
  pageScript().catch((error) => log.error('the playground is unavailable', { error }))
}
