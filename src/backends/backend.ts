// The small interface the run router depends on. `local` (src/backends/local/) and `e2b`
// (src/backends/e2b/) implement it; neither knows about the other or about HTTP.
import type { Block } from '../run/block.ts'

export type BackendName = 'local' | 'e2b'

/** What `self.get_workflow_context()` returns inside the block. */
export interface WorkflowContext {
  step_name: string | null
  step_selector: string | null
  block_type: string
  workflow_execution_id: string
  [key: string]: unknown
}

export interface RunJob {
  block: Block
  inputs: Record<string, unknown>
  workspace: string
  /** The id of the API key the run came with, when keys are configured: the key, not the workspace, then gets a share of the pool. */
  keyId?: string
  context: WorkflowContext
  /** Wall-clock budget for loading and running the block. */
  timeoutMs: number
  /** The form outputs come back in: CBOR kinds, or Roboflow's JSON `_type` forms. */
  outputFormat: OutputFormat
  /** Aborted when the client goes away: the run is cancelled. */
  signal?: AbortSignal
}

/**
 * `json-webexec`: as `json`, with NaN and ±Infinity as Python's json.dumps writes them (bare
 * tokens), for Inference's HTTP transport. `msgpack-webexec`: the same markers packed as
 * msgpack (bytes as bin, floats as float64), for its websocket transport.
 */
export type OutputFormat = 'cbor' | 'json' | 'json-compact' | 'json-webexec' | 'msgpack-webexec'

export interface RunTimings {
  /** Waiting for a free worker or sandbox. */
  queue: number
  /** Getting it ready for this block: spawning on a cold start, loading the block. */
  acquire: number
  /** The round trip of the run itself, user code included. */
  execute: number
  /** Of which the block's own code, as the runtime measured it. */
  user_code?: number
}

/**
 * A block's outputs as the runtime finished them: one CBOR, JSON or msgpack document in pieces
 * (large arrays are pieces of their own). The proxy passes it to the client as it is, so
 * every value arrives exactly as the block made it, and nothing is decoded on the way.
 */
export class OutputsDocument {
  constructor(
    readonly format: 'cbor' | 'json' | 'msgpack',
    readonly pieces: readonly Uint8Array[],
  ) {}
}

export interface RunOutcome {
  /** Plain values, or a finished document from the runtime. */
  outputs: unknown | OutputsDocument
  stdout: string
  stderr: string
  debugTraces: Record<string, unknown>[]
  /** True when this run paid for a start or a block load rather than reusing warm state. */
  coldStart: boolean
  timings: RunTimings
}

/** What a backend says of itself: the typed fields are the ones metrics and /readyz read. */
export interface BackendStatus {
  ready: boolean
  /** Runs waiting for a runtime. */
  queued: number
  /** Live runtimes: workers (local) or sandboxes (e2b). */
  live: number
  /** Live runtimes per workspace (/readyz shows a key only its own). */
  by_workspace: Record<string, number>
  [detail: string]: unknown
}

/** The backends a server runs, by name (the ones configured). */
export type Backends = Partial<Record<BackendName, Backend>>

export interface Backend {
  readonly name: BackendName
  start(): Promise<void>
  status(): BackendStatus
  /** Runs a block; throws BlockgateError subclasses (BlockCodeError, BlockTimeout, …). */
  run(job: RunJob): Promise<RunOutcome>
  stop(): Promise<void>
}
