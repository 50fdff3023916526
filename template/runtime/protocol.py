"""The messages between the proxy and this runtime, and the values both sides must agree on.

Every frame's head is one of these maps. The proxy sends requests (``LoadRequest``,
``RunRequest``, ``PingRequest``; to the zygote ``SpawnRequest``, ``KillRequest``); the runtime
answers each request with one reply (``FailureReply`` or the op's own), and the zygote and its
workers send the events below. The runtime builds its messages with these TypedDicts.
src/backends/runtime-protocol.ts is the TypeScript twin: it declares the same fields and checks
every frame the proxy receives against them (test/integration/runtime-protocol.test.ts compares the two).

The numbers and names both sides read are in protocol.json beside this module.

Only the standard library: runtime.interpreter imports this before the CV stack is installed.
"""

from __future__ import annotations

import json
import os
from typing import Any, Literal, TypedDict

_SHARED_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "protocol.json")
with open(_SHARED_FILE, encoding="utf-8") as _file:
    _SHARED: dict[str, Any] = json.load(_file)

#: The Content-Type of a frame over HTTP (the E2B template's server).
FRAME_CONTENT_TYPE: str = _SHARED["frame_content_type"]
#: Where the E2B template's server listens in a sandbox.
RUNTIME_PORT: int = _SHARED["runtime_port"]
#: The frame limit of a runtime started without --max-frame-bytes.
DEFAULT_MAX_FRAME_BYTES: int = _SHARED["default_max_frame_bytes"]
#: The limit on a frame between the proxy and the zygote (spawn, kill and their events).
ZYGOTE_CONTROL_FRAME_BYTES: int = _SHARED["zygote_control_frame_bytes"]
#: Blocks a runtime keeps loaded unless told otherwise (--block-cache-size, a load's cache_size).
DEFAULT_BLOCK_CACHE_SIZE: int = _SHARED["default_block_cache_size"]
#: The most blocks a runtime keeps loaded, whatever a load asks for.
MAX_BLOCK_CACHE_SIZE: int = _SHARED["max_block_cache_size"]
#: What a run's stdout and stderr each keep unless told otherwise (--max-capture-bytes).
DEFAULT_MAX_CAPTURE_BYTES: int = _SHARED["default_max_capture_bytes"]


# --- requests: proxy → runtime ----------------------------------------------------------


class BlockCodeFields(TypedDict):
    """A block's code, as Roboflow's ``PythonCode`` names its fields (runtime.assembly.BlockCode)."""

    run_function_code: str
    run_function_name: str
    init_function_code: str | None
    init_function_name: str
    imports: list[str]


class _Settings(TypedDict, total=False):
    # A runtime the proxy did not start (an E2B sandbox's server) learns the deployment's
    # settings with the blocks it is sent: its block cache size and its stdout/stderr bound.
    cache_size: int
    max_capture_bytes: int


class LoadRequest(_Settings):
    op: Literal["load"]
    hash: str
    code: BlockCodeFields


class _RunRequestOptional(_Settings, total=False):
    inputs: dict[str, Any]
    context: dict[str, Any]
    output_format: Literal["cbor", "json", "json-compact", "json-webexec", "msgpack-webexec"]
    # The code of a block the runtime may not hold: loaded first, in the same round trip.
    code: BlockCodeFields


class RunRequest(_RunRequestOptional):
    op: Literal["run"]
    hash: str


class PingRequest(TypedDict):
    op: Literal["ping"]


# --- replies: runtime → proxy, one per request ------------------------------------------


class CapturedFields(TypedDict):
    """What the block printed while the request ran, each stream cut at the capture limit."""

    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool


class UserException(TypedDict):
    type: str
    message: str


class ErrorBody(CapturedFields):
    """A failure (runtime.errors.BlockError.to_dict, with what the block printed)."""

    type: str
    message: str
    line: int | None
    function: str | None
    source: str | None
    snippet: str | None
    traceback: str | None
    exception: UserException | None


class Aftermath(TypedDict, total=False):
    """What a worker adds to its reply when the request left something behind (runtime.worker)."""

    stray_processes: int
    retire: str


class FailureReply(Aftermath):
    ok: Literal[False]
    error: ErrorBody


class PingReply(Aftermath):
    ok: Literal[True]
    version: str


class _LoadReplyOptional(Aftermath, total=False):
    # Absent when the block was already loaded (nothing ran).
    phases_ns: dict[str, list[int]]


class LoadReply(_LoadReplyOptional, CapturedFields):
    ok: Literal[True]
    hash: str
    evicted: list[str]
    timings_ms: dict[str, float]


#: A large piece of a document as the head refers to it: a CBOR tag over [offset, length] in
#: the frame's sidecar or the worker's shared-memory region (serializers.registry.Sidecar); the
#: proxy's decoder hands it over as those bytes.
BufferReference = Any


class OutputsDocument(TypedDict):
    """The outputs as one finished CBOR, JSON or msgpack document in pieces; large pieces ride in the sidecar."""

    format: Literal["cbor", "json", "msgpack"]
    pieces: list[bytes | BufferReference]


class LoadedInline(TypedDict):
    """The block a run loaded first (it came with its code): what that evicted, and how long it took."""

    evicted: list[str]
    load_ms: float


class _RunReplyOptional(Aftermath, total=False):
    # One of the two: plain values (an Executor without sidecar outputs: tests only), or the
    # finished document every real runtime sends.
    outputs: Any
    outputs_document: OutputsDocument
    loaded: LoadedInline
    # Never framed: runtime.worker.encode_reply takes these out and writes the buffers (or
    # counts the region's bytes) after the head. A leading underscore marks such keys.
    _buffers: list[memoryview]
    _region_bytes: int


class RunReply(_RunReplyOptional, CapturedFields):
    ok: Literal[True]
    debug_traces: list[dict[str, Any]]
    #: Each phase's duration (load, decode, execute, encode).
    timings_ms: dict[str, float]
    #: Each phase's wall-clock [start, end] in epoch nanoseconds: the proxy's trace spans.
    phases_ns: dict[str, list[int]]
    #: The worker's resident memory after the run: the pool recycles it past a mark.
    rss_bytes: int


Reply = FailureReply | PingReply | LoadReply | RunReply


# --- the zygote and its workers ---------------------------------------------------------


class _SpawnRequestOptional(TypedDict, total=False):
    region: str
    region_bytes: int


class SpawnRequest(_SpawnRequestOptional):
    """proxy → zygote: fork a worker that proves itself with ``token``."""

    op: Literal["spawn"]
    id: str
    token: str


class KillRequest(TypedDict):
    op: Literal["kill"]
    id: str


class ZygoteReady(TypedDict):
    """zygote → proxy, once: the CV stack is imported, spawns may come."""

    op: Literal["ready"]
    pid: int


class Spawned(TypedDict):
    """zygote → proxy: a worker's holder is forked; ``host_pid`` is its pid as the proxy sees it."""

    op: Literal["spawned"]
    id: str
    pid: int
    host_pid: int | None


class Exited(TypedDict):
    """zygote → proxy: a worker ended (``signal`` when a signal ended it)."""

    op: Literal["exited"]
    id: str
    code: int | None
    signal: int | None


class WorkerHello(TypedDict):
    """worker → proxy, first on its socket, before any user code: which spawn it is."""

    op: Literal["hello"]
    id: str
    token: str
    pid: int
    host_pid: int | None


class WorkerReady(TypedDict):
    """A worker on its own stdin/stdout (``python -m runtime.worker``), first: it is warm."""

    op: Literal["ready"]
    version: str
    pid: int
