// The API document: valid OpenAPI 3.1, generated from the server's schemas, served with its
// reference page (assets from blockgate itself); every kind plugin has its JSON form in it.
import { describe, expect, test } from 'bun:test'
import { Validator } from '@seriousme/openapi-schema-validator'
import { SERIALIZERS } from '../../serializers/index.ts'
import { KIND_JSON_FORMS } from '../../src/api/kinds.ts'
import { openApiDocument } from '../../src/api/openapi.ts'
import { createApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { contractProblem } from '../support/contract.ts'
import { FakeBackend } from '../support/fake-backend.ts'

const app = createApp({
  config: loadConfig({}),
  backends: { local: new FakeBackend() },
})

describe('the OpenAPI document', () => {
  test('validates as OpenAPI 3.1', async () => {
    const document = openApiDocument('1.0.0')
    expect(document.openapi).toBe('3.1.0')
    const result = await new Validator().validate(JSON.parse(JSON.stringify(document)))
    expect(result.errors ?? []).toEqual([])
    expect(result.valid).toBe(true)
  })

  test('lists every route and every kind plugin has its JSON form', () => {
    const document = openApiDocument('1.0.0') as { paths: object; components: { schemas: object } }
    expect(Object.keys(document.paths).sort()).toEqual(
      ['/healthz', '/readyz', '/v1/run', '/webexec', '/webexec/ws'].sort(),
    )
    expect(Object.keys(KIND_JSON_FORMS).sort()).toEqual(SERIALIZERS.map((s) => s.kind).sort())
    for (const name of [
      'ndarray',
      'workflow_image',
      'sv_detections',
      'video_metadata',
      'datetime',
      'bytes',
    ])
      expect(document.components.schemas).toHaveProperty(name)
  })

  test('GET /openapi.json serves it, with the package version', async () => {
    const response = await app.request('/openapi.json')
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toStartWith('application/json')
    const served = (await response.json()) as { info: { version: string }; openapi: string }
    const { version } = (await Bun.file(new URL('../../package.json', import.meta.url)).json()) as {
      version: string
    }
    expect(served.info.version).toBe(version)
    expect(served.openapi).toBe('3.1.0')
  })

  test('GET /docs is a page whose every asset blockgate serves itself', async () => {
    const response = await app.request('/docs')
    expect(response.status).toBe(200)
    const html = await response.text()
    const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!)
    expect(assets.length).toBeGreaterThanOrEqual(2)
    for (const asset of assets) {
      expect(asset).toStartWith('/') // same origin: no CDN at run time
      const served = await app.request(asset)
      expect(served.status).toBe(200)
      expect((await served.arrayBuffer()).byteLength).toBeGreaterThan(1000)
    }
    expect(html).toContain("url: '/openapi.json'")
  })
})

describe('the contract check the end-to-end suites run every answer through', () => {
  const json = (status: number, body: unknown) =>
    new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } })
  const answer = {
    outputs: { n: 1, when: { _type: 'datetime', value: '2026-11-29T03:00:00+00:00' } },
    stdout: '',
    stderr: '',
    debug_traces: [],
    backend: 'local',
    cold_start: false,
    block_hash: 'abc',
    timings_ms: { queue: 0, acquire: 0, execute: 1, total: 1.5 },
  }

  test('passes an answer that fits', async () => {
    expect(await contractProblem('POST', '/v1/run', json(200, answer))).toBeNull()
  })

  test('names what does not fit: a missing field, a bad kind form, an undocumented status', async () => {
    const { stdout: _, ...noStdout } = answer
    expect(await contractProblem('POST', '/v1/run', json(200, noStdout))).toContain('stdout')
    const badForm = { ...answer, outputs: { a: { _type: 'ndarray', shape: [2] } } }
    expect(await contractProblem('POST', '/v1/run', json(200, badForm))).toContain('/outputs/a')
    expect(await contractProblem('POST', '/v1/run', json(418, {}))).toContain('status 418')
    const error = { error: { type: 'NoSuchType', message: 'x' } }
    expect(await contractProblem('POST', '/v1/run', json(400, error))).toContain('/error/type')
  })
})
