// The runtime protocol (src/backends/runtime-protocol.ts): a reply that does not fit its op's
// shape is a RuntimeProtocolError naming the field, at the session and not deeper; replies that
// fit arrive typed (integers past 32 bits as numbers). The TypeScript declarations and their
// Python twin (template/runtime/protocol.py) name the same fields, and both sides read the
// same defaults (template/runtime/protocol.json).
import { describe, expect, test } from 'bun:test'
import { resolve } from 'node:path'
import type { z } from 'zod'
import type { RunJob } from '../../src/backends/backend.ts'
import {
  checkFrame,
  checkReply,
  failureReply,
  loadReply,
  pingReply,
  runReply,
  RuntimeProtocolError,
  workerHello,
  workerReady,
  zygoteEvent,
  type LoadRequest,
  type PingRequest,
  type RunRequest,
  type ZygoteRequest,
} from '../../src/backends/runtime-protocol.ts'
import {
  blockError,
  runBlock,
  type BlockRuntime,
  type RuntimeReply,
} from '../../src/backends/runtime-session.ts'
import { blockOf } from '../../src/run/block.ts'
import { loadConfig, PROJECT_ROOT } from '../../src/config.ts'
import { FRAME_CONTENT_TYPE, RUNTIME_DEFAULTS, RUNTIME_PORT } from '../../src/runtime-template.ts'
import { frameLimitFor } from '../../src/backends/index.ts'
import { PYTHON } from '../support/python.ts'

const captured = { stdout: 'hi\n', stderr: '', stdout_truncated: false, stderr_truncated: false }
const goodRun = {
  ok: true,
  outputs_document: { format: 'cbor', pieces: [new Uint8Array([0xa0])] },
  ...captured,
  debug_traces: [],
  timings_ms: { decode: 0.01, execute: 0.5, encode: 0.02 },
  phases_ns: { execute: [1_764_000_000_000_000_000n, 1_764_000_000_000_500_000n] },
  rss_bytes: 5_000_000_000n, // past 32 bits: CBOR hands it over as a BigInt
}

describe('checking replies', () => {
  test('a reply that fits arrives typed', () => {
    const reply = checkReply('run', goodRun)
    if (!reply.ok) throw new Error('expected a run reply')
    expect(reply.rss_bytes).toBe(5_000_000_000)
    expect(reply.phases_ns.execute).toEqual([
      Number(1_764_000_000_000_000_000n),
      Number(1_764_000_000_000_500_000n),
    ])
    expect(reply.timings_ms.execute).toBe(0.5)
    expect(reply.outputs_document?.pieces).toHaveLength(1)
    expect(
      checkReply('load', {
        ok: true,
        hash: 'h',
        evicted: ['old'],
        ...captured,
        timings_ms: { load: 0 },
      }),
    ).toMatchObject({ evicted: ['old'] })
    expect(checkReply('ping', { ok: true, version: '0.2.0' })).toEqual({
      ok: true,
      version: '0.2.0',
    })
  })

  test('a failure arrives typed whatever the op, its details kept', () => {
    const failure = {
      ok: false as const,
      error: {
        type: 'BlockRuntimeError',
        message: 'boom',
        line: 3,
        function: 'run',
        snippet: null,
        ...captured,
      },
    }
    const reply = checkReply('run', failure)
    expect(reply).toEqual(failure)
    if (reply.ok) throw new Error('expected a failure')
    expect(blockError(reply).toBody()).toEqual({
      error: {
        type: 'BlockRuntimeError',
        message: 'boom',
        line: 3,
        function: 'run',
        snippet: null,
        ...captured,
      },
    })
  })

  const malformed: [string, 'run' | 'load', unknown, string][] = [
    [
      'a field of the wrong type',
      'run',
      { ...goodRun, timings_ms: { execute: 'fast' } },
      'timings_ms.execute',
    ],
    ['a missing field', 'run', { ...goodRun, stdout: undefined }, 'stdout'],
    [
      'evictions that are not a list',
      'run',
      { ...goodRun, loaded: { evicted: 5, load_ms: 1 } },
      'loaded.evicted',
    ],
    [
      'an integer that is not one',
      'run',
      { ...goodRun, rss_bytes: 1.5 },
      'rss_bytes: expected an integer',
    ],
    [
      'a document piece that is not bytes',
      'run',
      { ...goodRun, outputs_document: { format: 'cbor', pieces: ['text'] } },
      'outputs_document.pieces.0',
    ],
    [
      'a load reply for a run',
      'run',
      { ok: true, hash: 'h', evicted: [], ...captured, timings_ms: {} },
      'debug_traces',
    ],
    ['a failure without its error', 'load', { ok: false }, 'error'],
    ['an error without a type', 'load', { ok: false, error: { message: 'x' } }, 'error.type'],
    [
      'no map at all',
      'run',
      'ok',
      "the runtime's reply to run does not fit the runtime protocol: (the frame)",
    ],
    ['a reply without ok', 'load', {}, 'ok'],
  ]
  for (const [what, op, reply, named] of malformed) {
    test(`${what} is a RuntimeProtocolError naming it`, () => {
      expect(() => checkReply(op, reply)).toThrow(RuntimeProtocolError)
      expect(() => checkReply(op, reply)).toThrow(named)
    })
  }

  test('the zygote and its workers are checked too', () => {
    expect(
      checkFrame(zygoteEvent, { op: 'exited', id: 'w1', code: null, signal: 9 }, 'an event'),
    ).toEqual({ op: 'exited', id: 'w1', code: null, signal: 9 })
    expect(() => checkFrame(zygoteEvent, { op: 'spawned', id: 'w1', pid: 7 }, 'an event')).toThrow(
      'an event does not fit the runtime protocol: host_pid',
    )
    expect(() => checkFrame(zygoteEvent, { op: 'launched' }, 'an event')).toThrow(
      RuntimeProtocolError,
    )
    expect(
      workerHello.safeParse({ op: 'hello', id: 'w1', token: 't', pid: 1, host_pid: null }).success,
    ).toBe(true)
    expect(
      workerHello.safeParse({ op: 'hello', id: 'w1', token: 7, pid: 1, host_pid: null }).success,
    ).toBe(false)
    expect(() => checkFrame(workerReady, { op: 'ready', pid: 1 }, "w1's greeting")).toThrow(
      "w1's greeting does not fit the runtime protocol: version",
    )
  })
})

describe('the session checks what a runtime answers', () => {
  const run = job()
  const answering = (...replies: unknown[]): BlockRuntime & { sent: string[] } => {
    const sent: string[] = []
    return {
      loaded: new Set(),
      sent,
      async request(message): Promise<RuntimeReply> {
        sent.push(message.op)
        return replies.shift()
      },
    }
  }
  const load = {
    ok: true,
    hash: run.block.hash,
    evicted: [],
    ...captured,
    timings_ms: { load: 1 },
    phases_ns: { load: [1n, 2n] },
  }

  test('a malformed reply fails the run with the protocol error, nothing read from it', async () => {
    const runtime = answering(load, { ...goodRun, loaded: { evicted: 'all' } })
    const failure = runBlock(runtime, run, performance.now() + 1000)
    await expect(failure).rejects.toThrow(RuntimeProtocolError)
    await expect(failure).rejects.toThrow(
      "the runtime's reply to run does not fit the runtime protocol: loaded.evicted",
    )
    expect(runtime.sent).toEqual(['load', 'run'])
    expect([...runtime.loaded]).toEqual([run.block.hash]) // the load reply was fine
  })

  test('a malformed load reply fails before the run is sent', async () => {
    const runtime = answering({ ...load, evicted: [1] })
    await expect(runBlock(runtime, run, performance.now() + 1000)).rejects.toThrow('evicted.0')
    expect(runtime.sent).toEqual(['load'])
    expect(runtime.loaded.size).toBe(0)
  })

  test('a reply that fits gives the pools typed fields', async () => {
    const session = await runBlock(
      answering(load, { ...goodRun, retire: 'the block left a thread running' }),
      run,
      performance.now() + 1000,
    )
    expect(session.reply.rss_bytes).toBe(5_000_000_000)
    expect(session.reply.retire).toBe('the block left a thread running')
    expect(session.loadedBlock).toBe(true)
  })
})

/** Each TypedDict's keys as Python declares them (keys starting with `_` are never framed). */
function pythonKeys(names: string[]): Record<string, { required: string[]; optional: string[] }> {
  const script = [
    'import json, sys',
    'from runtime import protocol',
    'def keys(td):',
    '    pick = lambda found: sorted(key for key in found if not key.startswith("_"))',
    '    return {"required": pick(td.__required_keys__), "optional": pick(td.__optional_keys__)}',
    'print(json.dumps({name: keys(getattr(protocol, name)) for name in sys.argv[1:]}))',
  ].join('\n')
  const template = resolve(PROJECT_ROOT, 'template')
  const result = Bun.spawnSync({
    cmd: [PYTHON, '-c', script, ...names],
    cwd: template,
    env: { PYTHONPATH: `${template}:${PROJECT_ROOT}` },
    stderr: 'pipe',
  })
  if (result.exitCode !== 0) throw new Error(result.stderr.toString())
  return JSON.parse(result.stdout.toString())
}

/** A zod object's keys, and which of them must be there. */
function tsKeys(schema: z.ZodObject): { all: string[]; required: string[] } {
  const entries = Object.entries(schema.shape)
  return {
    all: entries.map(([key]) => key).sort(),
    required: entries
      .filter(([, field]) => !(field as z.ZodType).safeParse(undefined).success)
      .map(([key]) => key)
      .sort(),
  }
}

describe('the TypeScript declarations and their Python twin', () => {
  test('every reply and event names the same fields on both sides; TypeScript requires none that Python may leave out', () => {
    const [ready, spawned, exited] = zygoteEvent.options
    const twins: Record<string, z.ZodObject> = {
      FailureReply: failureReply,
      ErrorBody: failureReply.shape.error,
      PingReply: pingReply,
      LoadReply: loadReply,
      RunReply: runReply,
      OutputsDocument: runReply.shape.outputs_document.unwrap(),
      LoadedInline: runReply.shape.loaded.unwrap(),
      ZygoteReady: ready,
      Spawned: spawned,
      Exited: exited,
      WorkerHello: workerHello,
      WorkerReady: workerReady,
    }
    const python = pythonKeys(Object.keys(twins))
    for (const [name, schema] of Object.entries(twins)) {
      const ts = tsKeys(schema)
      const py = python[name]!
      expect({ name, keys: ts.all }).toEqual({
        name,
        keys: [...py.required, ...py.optional].sort(),
      })
      expect({
        name,
        requiredInTsOnly: ts.required.filter((key) => !py.required.includes(key)),
      }).toEqual({ name, requiredInTsOnly: [] })
    }
  })

  test('every request names the same fields on both sides', () => {
    const code = job().block.code
    const requests: Record<string, object> = {
      LoadRequest: {
        op: 'load',
        hash: 'h',
        code,
        cache_size: 1,
        max_capture_bytes: 1,
      } satisfies Required<LoadRequest>,
      RunRequest: {
        op: 'run',
        hash: 'h',
        inputs: {},
        context: job().context,
        output_format: 'cbor',
        code,
        cache_size: 1,
        max_capture_bytes: 1,
      } satisfies Required<RunRequest>,
      PingRequest: { op: 'ping' } satisfies Required<PingRequest>,
      SpawnRequest: {
        op: 'spawn',
        id: 'w1',
        token: 't',
        region: 'r',
        region_bytes: 1,
      } satisfies Required<Extract<ZygoteRequest, { op: 'spawn' }>>,
      KillRequest: { op: 'kill', id: 'w1' } satisfies Required<
        Extract<ZygoteRequest, { op: 'kill' }>
      >,
      BlockCodeFields: code,
    }
    const python = pythonKeys(Object.keys(requests))
    for (const [name, request] of Object.entries(requests)) {
      expect({ name, keys: Object.keys(request).sort() }).toEqual({
        name,
        keys: [...python[name]!.required, ...python[name]!.optional].sort(),
      })
    }
  })

  test('both sides read the same defaults, and the proxy agrees with them', () => {
    const config = loadConfig({})
    expect(frameLimitFor(config)).toBe(RUNTIME_DEFAULTS.maxFrameBytes)
    expect(config.local.blockCacheSize).toBe(RUNTIME_DEFAULTS.blockCacheSize)
    expect(config.local.maxCaptureBytes).toBe(RUNTIME_DEFAULTS.maxCaptureBytes)
    expect(
      loadConfig({ BLOCKGATE_BLOCK_CACHE_SIZE: String(RUNTIME_DEFAULTS.maxBlockCacheSize) }).local
        .blockCacheSize,
    ).toBe(RUNTIME_DEFAULTS.maxBlockCacheSize)
    expect(() =>
      loadConfig({ BLOCKGATE_BLOCK_CACHE_SIZE: String(RUNTIME_DEFAULTS.maxBlockCacheSize + 1) }),
    ).toThrow('BLOCKGATE_BLOCK_CACHE_SIZE')
    expect(FRAME_CONTENT_TYPE).toBe('application/vnd.blockgate.frame')
    expect(RUNTIME_PORT).toBe(8000)
  })
})

function job(): RunJob {
  return {
    block: blockOf({
      run_function_code: 'def run(self):\n    return {}\n',
      run_function_name: 'run',
      init_function_code: null,
      init_function_name: 'init',
      imports: [],
    }),
    inputs: {},
    workspace: 'w',
    context: {
      step_name: null,
      step_selector: null,
      block_type: 'custom',
      workflow_execution_id: 'x',
    },
    timeoutMs: 1000,
    outputFormat: 'cbor',
  }
}
