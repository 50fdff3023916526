// The API's OpenAPI 3.1 document, generated from the schemas the routes validate requests
// with and type their answers by (zod-openapi over zod's own JSON Schema): served at
// GET /openapi.json, rendered at GET /docs, and held to the server's real answers by
// test/support/contract.ts.
import { createDocument, type ZodOpenApiResponsesObject } from 'zod-openapi'
import { z } from 'zod'
import { runRequestSchema, workspaceName } from '../run/request.ts'
import { webexecRequestSchema } from '../interop/webexec/http.ts'
import { KIND_JSON_FORMS, PLAIN_MARKERS, value } from './kinds.ts'
import {
  errorResponse,
  healthResponse,
  readinessResponse,
  runResponse,
  webexecFailure,
  webexecSuccess,
} from './schemas.ts'

const CBOR_NOTE =
  'As application/cbor, the same fields in CBOR (RFC 8949), kinds under their tags (each form below names its tag): lossless.'

const errorContent = {
  'application/json': { schema: errorResponse },
  'application/cbor': { schema: errorResponse },
}
const retryAfter = {
  'Retry-After': {
    description: 'Seconds to wait before trying again.',
    schema: { type: 'integer' as const },
  },
}

/** Each failure of a run, by status (README.md, "Errors"). */
const runErrors: ZodOpenApiResponsesObject = {
  '400': {
    description: 'A malformed body or a field that does not fit; the message names it.',
    content: errorContent,
  },
  '401': {
    description: 'Keys are configured and the request has none that is valid.',
    content: errorContent,
  },
  '403': { description: 'The key does not hold the workspace asked for.', content: errorContent },
  '413': {
    description: 'The body (PayloadTooLarge) or the outputs (OutputTooLarge) are over the limit.',
    content: errorContent,
  },
  '415': { description: 'A body that is neither JSON nor CBOR.', content: errorContent },
  '422': {
    description:
      'The block did not compile (BlockCompileError) or raised (BlockRuntimeError): line, function, snippet, traceback.',
    content: errorContent,
  },
  '429': {
    description: 'Too many runs already wait (Overloaded).',
    headers: retryAfter,
    content: errorContent,
  },
  '500': {
    description:
      'The worker died under the run (WorkerCrashed), or blockgate failed (InternalError).',
    content: errorContent,
  },
  '502': { description: 'A remote backend (E2B) failed.', content: errorContent },
  '503': {
    description: 'No runtime became free in time, or none could be started (Overloaded).',
    headers: retryAfter,
    content: errorContent,
  },
  '504': {
    description: 'The run passed its timeout_ms (BlockTimeout); its worker was replaced.',
    content: errorContent,
  },
}

/**
 * The request as validated, its inputs described as values: the proxy passes inputs on
 * unparsed (the runtime's codecs check each kind), so the document says what they may hold.
 */
const runRequest = runRequestSchema
  .extend({ inputs: z.record(z.string(), value).default({}) })
  .meta({ id: 'RunRequest' })

export function openApiDocument(version: string): ReturnType<typeof createDocument> {
  return createDocument({
    openapi: '3.1.0',
    info: {
      title: 'blockgate',
      version,
      description:
        'Runs untrusted Custom Python Blocks of computer-vision workflows in isolated, warm Python workers (or E2B sandboxes). Bodies are JSON or CBOR; see the README for the kinds and the guarantees.',
    },
    components: {
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'An API key (README, "Who may run code").',
        },
        modalKey: {
          type: 'apiKey',
          in: 'header',
          name: 'Modal-Key',
          description: "Inference's pair, on /webexec: Modal-Key and Modal-Secret.",
        },
        modalSecret: { type: 'apiKey', in: 'header', name: 'Modal-Secret' },
      },
      schemas: { ...KIND_JSON_FORMS, ...PLAIN_MARKERS },
    },
    security: [{}, { bearer: [] }],
    paths: {
      '/v1/run': {
        post: {
          operationId: 'run',
          summary: "Run a block's code on inputs",
          requestBody: {
            required: true,
            description: CBOR_NOTE,
            content: {
              'application/json': { schema: runRequest },
              'application/cbor': { schema: runRequest },
            },
          },
          responses: {
            '200': {
              description: `The outputs, what the block printed, and where the time went. ${CBOR_NOTE}`,
              headers: {
                traceresponse: {
                  description:
                    'When the run was traced (sampled): W3C Trace Context `00-<trace id>-<span id>-01`.',
                  schema: { type: 'string' },
                },
              },
              content: {
                'application/json': { schema: runResponse },
                'application/cbor': { schema: runResponse },
              },
            },
            ...runErrors,
          },
        },
      },
      '/webexec': {
        post: {
          operationId: 'webexec',
          summary: "Roboflow Inference's remote execution over HTTP",
          description:
            "What Inference sends with WEBEXEC_TRANSPORT=http (gzip allowed). A run that fails is still a 200, in Inference's failure shape.",
          security: [{}, { bearer: [] }, { modalKey: [], modalSecret: [] }],
          requestParams: {
            query: z.object({ workspace_id: workspaceName.optional() }),
          },
          requestBody: {
            required: true,
            content: { 'application/json': { schema: webexecRequestSchema } },
          },
          responses: {
            '200': {
              description: 'The run, or why it failed.',
              content: {
                'application/json': { schema: z.union([webexecSuccess, webexecFailure]) },
              },
            },
            '400': runErrors['400']!,
            '401': runErrors['401']!,
            '403': runErrors['403']!,
            '413': runErrors['413']!,
            '415': runErrors['415']!,
            '429': runErrors['429']!,
          },
        },
      },
      '/webexec/ws': {
        get: {
          operationId: 'webexecSocket',
          summary: "Roboflow Inference's websocket transport (msgpack frames)",
          description:
            'What Inference opens with WEBEXEC_TRANSPORT=websocket (README, "The websocket transport").',
          security: [{}, { bearer: [] }, { modalKey: [], modalSecret: [] }],
          responses: {
            '101': { description: 'Switched to the websocket protocol.' },
            '401': runErrors['401']!,
            '426': { description: 'Asked for without the upgrade.', content: errorContent },
            '429': runErrors['429']!,
          },
        },
      },
      '/healthz': {
        get: {
          operationId: 'health',
          summary: 'The process is up',
          security: [],
          responses: {
            '200': {
              description: 'Up.',
              content: { 'application/json': { schema: healthResponse } },
            },
          },
        },
      },
      '/readyz': {
        get: {
          operationId: 'readiness',
          summary: 'Ready when the default backend has warm runtimes',
          responses: {
            '200': {
              description: 'Ready.',
              content: { 'application/json': { schema: readinessResponse } },
            },
            '503': {
              description: 'Not ready yet.',
              content: { 'application/json': { schema: readinessResponse } },
            },
          },
        },
      },
    },
  })
}
