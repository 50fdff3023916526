// GET /openapi.json (the document, built once) and GET /docs (Swagger UI, its assets served
// from the swagger-ui-dist package by blockgate itself: the page works with no CDN).
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { Env, Hono } from 'hono'
import packageJson from '../../package.json' with { type: 'json' }
import { openApiDocument } from './openapi.ts'

export const OPENAPI_PATH = '/openapi.json'
export const DOCS_PATH = '/docs'

const SWAGGER_UI = dirname(Bun.resolveSync('swagger-ui-dist/package.json', import.meta.dir))
/** The files the page loads, by the name it asks for them. */
const ASSETS: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
}

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>blockgate API</title>
<link rel="stylesheet" href="${DOCS_PATH}/swagger-ui.css">
</head>
<body>
<div id="docs"></div>
<script src="${DOCS_PATH}/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({ url: '${OPENAPI_PATH}', dom_id: '#docs', deepLinking: true })
</script>
</body>
</html>
`

export function registerDocs<E extends Env>(app: Hono<E>): void {
  let document: string | undefined
  app.get(OPENAPI_PATH, (c) => {
    document ??= JSON.stringify(openApiDocument(packageJson.version))
    return c.body(document, 200, { 'content-type': 'application/json' })
  })
  app.get(DOCS_PATH, (c) => c.html(PAGE))
  for (const [name, type] of Object.entries(ASSETS)) {
    let bytes: Uint8Array | undefined
    app.get(`${DOCS_PATH}/${name}`, (c) => {
      bytes ??= readFileSync(join(SWAGGER_UI, name))
      return c.body(bytes as Uint8Array<ArrayBuffer>, 200, {
        'content-type': type,
        'cache-control': 'public, max-age=86400',
      })
    })
  }
}
