// Roboflow Inference's /webexec requests as its client sends them: gzip JSON, the code once
// (with its md5 hash), then only the hash.
import { createHash } from 'node:crypto'
import { gzipSync } from 'node:zlib'

/** Inference's code hash: md5 of the code, a newline, the import lines joined by newlines. */
export const md5 = (code: string, imports: string[] = []) =>
  createHash('md5')
    .update(`${code}\n${imports.join('\n')}`)
    .digest('hex')

/** A full-code request for `code` with `inputs`, as Inference sends the first time. */
export function withCode(
  code: string,
  inputs: Record<string, unknown> = {},
  extra: Record<string, unknown> = {},
) {
  const imports = (extra.imports as string[] | undefined) ?? []
  return {
    code_hash: md5(code, imports),
    run_function_name: 'run',
    inputs_json: JSON.stringify(inputs),
    workflow_context: {},
    code_str: code,
    imports,
    ...extra,
  }
}

/** A hash-only request for `code`, as Inference sends once it sent the code. */
export function withHash(
  code: string,
  inputs: Record<string, unknown> = {},
  imports: string[] = [],
) {
  return {
    code_hash: md5(code, imports),
    run_function_name: 'run',
    inputs_json: JSON.stringify(inputs),
    workflow_context: {},
  }
}

/** The POST of a webexec body (gzipped unless `gzip` is false) with `headers` (credentials). */
export function webexecRequest(
  body: unknown,
  { headers = {}, gzip = true }: { headers?: Record<string, string>; gzip?: boolean } = {},
): RequestInit {
  const json = typeof body === 'string' ? body : JSON.stringify(body)
  return {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(gzip ? { 'content-encoding': 'gzip' } : {}),
      ...headers,
    },
    body: gzip ? gzipSync(json) : json,
  }
}
