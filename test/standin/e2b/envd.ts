// Port 49983: the part of envd the stand-in serves. The file API the SDK's files.write and
// files.read use (multipart or octet-stream uploads, raw downloads) on the sandbox's home,
// and /health. The Connect RPC services (commands, pty, watch) answer 501.
import { basename } from 'node:path'
import { Hono, type Context } from 'hono'
import { apiError } from './api-error.ts'
import { PathRefused, readHomeFile, writeHomeFile } from './home-paths.ts'
import type { StandinSandbox } from './sandbox.ts'

type Env = { Bindings: { sandbox: StandinSandbox } }

export const envd = new Hono<Env>()

envd.get('/health', (c) => c.body(null, 204))

envd.get('/files', (c) => {
  const path = c.req.query('path')
  if (!path) return apiError(c, 400, 'path: required')
  const bytes = readHomeFile(c.env.sandbox.dirs.homeDir, path)
  return c.body(bytes as Uint8Array<ArrayBuffer>, 200, {
    'Content-Type': 'application/octet-stream',
    'Content-Disposition': `attachment; filename=${JSON.stringify(basename(path))}`,
  })
})

envd.post('/files', async (c) => {
  const sandbox = c.env.sandbox
  const written: { name: string; type: 'file'; path: string }[] = []
  const write = (path: string, data: Uint8Array) => {
    const absolute = writeHomeFile(sandbox.dirs.homeDir, path, data, sandbox.fileOwner)
    written.push({ name: basename(absolute), type: 'file', path: absolute })
  }
  const queryPath = c.req.query('path')
  const contentType = c.req.header('Content-Type') ?? ''
  if (contentType.startsWith('multipart/form-data')) {
    const form = await c.req.formData()
    const files = form.getAll('file').filter((part): part is File => typeof part !== 'string')
    if (files.length === 0) return apiError(c, 400, 'the form holds no "file" part')
    // A single upload is named by the query; several are named by their parts' filenames.
    for (const file of files)
      write(queryPath ?? file.name, new Uint8Array(await file.arrayBuffer()))
  } else if (contentType.startsWith('application/octet-stream')) {
    if (!queryPath) return apiError(c, 400, 'path: required for an octet-stream upload')
    let data = new Uint8Array(await c.req.arrayBuffer())
    if (c.req.header('Content-Encoding') === 'gzip') data = Bun.gunzipSync(data)
    write(queryPath, data)
  } else {
    return apiError(
      c,
      400,
      `unsupported upload Content-Type '${contentType}': use multipart/form-data or application/octet-stream`,
    )
  }
  return c.json(written)
})

envd.all('*', (c) =>
  apiError(
    c,
    501,
    `envd ${c.req.method} ${c.req.path} is not served by the E2B stand-in (only /files and /health)`,
  ),
)

envd.onError((error, c: Context) => {
  if (error instanceof PathRefused) return apiError(c, error.status, error.message)
  return apiError(c, 500, error.message)
})
