// Roboflow Inference's remote-execution protocol, so a stock Inference server runs its custom
// Python blocks here: the HTTP transport of its Modal executor (WORKFLOWS_CUSTOM_PYTHON_EXECUTION_MODE=modal,
// MODAL_WEB_ENDPOINT_URL pointing at this route).
//
//   POST /webexec?workspace_id=<ws>   Modal-Key, Modal-Secret, Content-Encoding: gzip
//   {code_hash, run_function_name, inputs_json, workflow_context, code_str?, imports?}
//   → 200 {success: true, result: "<JSON text>", stdout, stderr}
//   → 200 {success: false, error, error_type, line_number, function_name, stdout, stderr}
//
// A run takes the /v1/run path: the same backends, limits and tenants (workspace_id is the
// workspace). Problems with the HTTP request itself (credentials, size, encoding) are HTTP
// errors; everything after that is the protocol's 200 with `success: false`, which Inference
// turns into its own error message.
import { gunzip, gunzipSync } from 'node:zlib'
import { promisify } from 'node:util'
import type { Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { z } from 'zod'
import { OutputsDocument } from '../../backends/backend.ts'
import { callerOf, workspaceFor, type CallerEnv } from '../../auth/caller.ts'
import { BadRequest, PayloadTooLarge, UnsupportedMediaType } from '../../errors.ts'
import { encodeBody, parseJson } from '../../http/wire.ts'
import type { WebexecSuccess } from '../../api/schemas.ts'
import { workspaceName } from '../../run/request.ts'
import {
  callFields,
  executionSeconds,
  failureOf,
  serverFailure,
  type Failure,
  type WebexecRunner,
} from './run.ts'

export const WEBEXEC_PATH = '/webexec'

/** The body of POST /webexec, as Inference's client sends it. */
export const webexecRequestSchema = z
  .object({ ...callFields, inputs_json: z.string().default('{}') })
  .meta({ id: 'WebexecRequest' })

/** What a run gave, in Inference's shape (the document's `WebexecSuccess`). */
type Success = WebexecSuccess

export function registerWebexec(
  app: Hono<CallerEnv>,
  runner: WebexecRunner,
  { maxBodyBytes: maxBytes }: { maxBodyBytes: number },
): void {
  app.post(
    WEBEXEC_PATH,
    bodyLimit({
      maxSize: maxBytes,
      onError: () => {
        throw new PayloadTooLarge(
          `body: larger than the ${maxBytes}-byte limit (BLOCKGATE_MAX_BODY_BYTES)`,
        )
      },
    }),
    async (c) => {
      const caller = callerOf(c)
      const named = workspaceName.safeParse(c.req.query('workspace_id'))
      if (!named.success) throw new BadRequest(`workspace_id: ${named.error.issues[0]!.message}`)
      const workspace = workspaceFor(caller, named.data)
      const body = await readBody(
        c.req.raw,
        Math.min(maxBytes, caller?.limits.maxBodyBytes ?? maxBytes),
      )

      const startedAt = performance.now()
      let answer: Success | Failure
      try {
        const request = webexecRequestSchema.safeParse(body)
        if (!request.success) {
          const problems = request.error.issues.map(
            (issue) => `${issue.path.join('.') || 'body'}: ${issue.message}`,
          )
          answer = serverFailure('InvalidRequest', problems.join('; '))
        } else {
          // Read as Inference's Python json.loads reads it (floats stay floats, NaN is read).
          const inputs = parseJson(request.data.inputs_json, 'inputs_json', 'root')
          const execution = await runner.execute(request.data, {
            inputs,
            inputsField: 'inputs_json',
            workspace,
            caller,
            // Written as Modal writes it (json.dumps: NaN and Infinity as bare tokens).
            outputFormat: 'json-webexec',
            route: WEBEXEC_PATH,
            signal: c.req.raw.signal,
          })
          answer = execution.ran
            ? {
                success: true,
                result: resultText(execution.outcome.outputs),
                stdout: execution.outcome.stdout || null,
                stderr: execution.outcome.stderr || null,
                execution_time_seconds: executionSeconds(execution.outcome),
                blockgate: {
                  backend: execution.backend.name,
                  cold_start: execution.outcome.coldStart,
                  block_hash: execution.block.hash,
                  timings_ms: {
                    ...execution.outcome.timings,
                    total: performance.now() - startedAt,
                  },
                },
              }
            : execution.failure
        }
      } catch (thrown) {
        answer = failureOf(thrown)
      }
      return c.json(answer)
    },
  )
}

const gunzipAsync = promisify(gunzip)
/**
 * A body is first inflated at once up to this much (the thread pool's round trip costs more
 * than a small body does); only a larger one, or a bomb, goes on to the pool, so no client
 * holds the event loop longer than this much inflating takes.
 */
const INFLATE_IN_LINE_BYTES = 1024 * 1024

/** The JSON body, gunzipped when it says so; a body over the limit once decompressed is a 413. */
async function readBody(request: Request, maxBytes: number): Promise<unknown> {
  const type = (request.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase()
  if (type !== '' && type !== 'application/json')
    throw new UnsupportedMediaType(`Content-Type ${JSON.stringify(type)}: send application/json`)
  const encoding = (request.headers.get('content-encoding') ?? 'identity').trim().toLowerCase()
  if (encoding !== 'gzip' && encoding !== 'identity')
    throw new UnsupportedMediaType(
      `Content-Encoding ${JSON.stringify(encoding)}: send gzip or none`,
    )
  let bytes: Uint8Array = new Uint8Array(await request.arrayBuffer())
  if (encoding === 'gzip') {
    try {
      // The cap stops inflating at the limit: a small bomb never becomes a large buffer.
      bytes = await inflate(bytes, maxBytes)
    } catch (error) {
      if ((error as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
        throw new PayloadTooLarge(
          `body: larger than the ${maxBytes}-byte limit once decompressed (BLOCKGATE_MAX_BODY_BYTES)`,
        )
      }
      throw new BadRequest(`body: not valid gzip (${(error as Error).message})`)
    }
  }
  if (bytes.byteLength === 0) throw new BadRequest('body: empty; expected a webexec request')
  return parseJson(new TextDecoder().decode(bytes), 'body')
}

async function inflate(bytes: Uint8Array, maxBytes: number): Promise<Uint8Array> {
  try {
    return gunzipSync(bytes, { maxOutputLength: Math.min(maxBytes, INFLATE_IN_LINE_BYTES) })
  } catch (error) {
    const larger = (error as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE'
    if (!larger || maxBytes <= INFLATE_IN_LINE_BYTES) throw error
    return gunzipAsync(bytes, { maxOutputLength: maxBytes })
  }
}

function resultText(outputs: unknown): string {
  // The runtime's JSON document is the result as it is: Inference gets it byte for byte, as a string.
  if (outputs instanceof OutputsDocument) return Buffer.concat(outputs.pieces).toString('utf8')
  // Plain outputs hold no document to splice: their JSON comes back as a string.
  const { body } = encodeBody(outputs, 'json')
  if (typeof body !== 'string') throw new Error('plain outputs encoded to JSON as bytes')
  return body
}
