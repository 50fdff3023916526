"""Handles one decoded message at a time against an LRU cache of loaded blocks."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from serializers.kind import KindError
from serializers.registry import (
    OUTPUT_MODES,
    SIDECAR_MIN_BYTES,
    OutputLimitExceeded,
    Sidecar,
    decode_inputs,
    encode_document,
    encode_outputs,
)

from . import __version__
from .assembly import BlockCode, LoadedBlock, load_block
from .capture import Captured, capture_output
from .errors import (
    BadRequest,
    BlockError,
    BlockRuntimeError,
    InternalError,
    InvalidInput,
    OutputTooLarge,
    UnknownBlock,
    exception_message,
)
from .protocol import (
    MAX_BLOCK_CACHE_SIZE,
    ErrorBody,
    FailureReply,
    LoadedInline,
    LoadReply,
    PingReply,
    Reply,
    RunReply,
)
from .selfstat import SELF
from .traces import collecting_traces

# A reply may carry the sidecar buffers its outputs refer to under this key; the worker
# takes them out and writes them after the reply's CBOR head.
BUFFERS_KEY = "_buffers"
# ...and how many bytes its outputs put in the shared-memory region: the proxy counts those
# against the frame limit too, so the worker must refuse a reply over it (OutputTooLarge)
# rather than send one the proxy would take for a forged frame.
REGION_BYTES_KEY = "_region_bytes"
# The document format of each output mode that is not JSON.
_DOCUMENT_FORMATS = {"cbor": "cbor", "msgpack-webexec": "msgpack"}


class Phases:
    """How long each phase of a request took, and when it ran by the wall clock: the proxy
    turns ``spans_ns`` into trace spans, so one trace shows both sides without an OTel SDK here."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}
        self.spans_ns: dict[str, list[int]] = {}

    @contextmanager
    def measure(self, name: str) -> Iterator[None]:
        wall, start = time.time_ns(), time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.ms[name] = round(elapsed * 1000, 3)
            self.spans_ns[name] = [wall, wall + int(elapsed * 1e9)]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _field(
    message: Mapping[str, Any], name: str, kind: type, *, required: bool = True, default: Any = None
) -> Any:
    value = message.get(name)
    if value is None:
        if required:
            raise BadRequest(f"{name}: required field is missing")
        return default
    if not isinstance(value, kind):
        raise BadRequest(f"{name}: must be a {_KIND_NAMES[kind]}, got {type(value).__name__}")
    return value


_KIND_NAMES = {str: "string", dict: "map", list: "list"}


def failure_reply(error: BlockError, captured: Captured | None = None) -> FailureReply:
    captured = captured or Captured()
    body = ErrorBody(
        **error.to_dict(),
        stdout=captured.stdout,
        stderr=captured.stderr,
        stdout_truncated=captured.stdout_truncated,
        stderr_truncated=captured.stderr_truncated,
    )
    return FailureReply(ok=False, error=body)


class Executor:
    def __init__(
        self,
        cache_size: int,
        max_capture_bytes: int,
        sidecar_outputs: bool = False,
        region: Any = None,
        max_output_bytes: int | None = None,
    ) -> None:
        if cache_size < 1:
            raise ValueError(f"cache_size must be at least 1, got {cache_size}")
        if max_capture_bytes < 0:
            raise ValueError(f"max_capture_bytes must not be negative, got {max_capture_bytes}")
        self._cache_size = cache_size
        self._max_capture_bytes = max_capture_bytes
        self._sidecar_outputs = sidecar_outputs
        self._region = region  # the shared memory the proxy may pass large buffers through
        # The reply's limit (the worker's frame limit): encoding outputs stops past it,
        # before the whole too-large document is built (OutputTooLarge).
        self.max_output_bytes = max_output_bytes
        # The only state the runtime keeps between messages: hash → loaded block, oldest first.
        self._blocks: OrderedDict[str, LoadedBlock] = OrderedDict()
        self._ops: dict[str, Callable[[Mapping[str, Any], memoryview | None], Reply]] = {
            "load": self._load,
            "run": self._run,
            "ping": self._ping,
        }

    @property
    def loaded_hashes(self) -> list[str]:
        return list(self._blocks)

    def handle(self, message: Any, sidecar: memoryview | None = None) -> Reply:
        """A reply for ``message``; never raises, whatever the message or the block does.

        ``sidecar`` is the frame's region of large array bytes that inputs may refer to.
        """
        try:
            if not isinstance(message, Mapping):
                raise BadRequest(f"message: must be a map, got {type(message).__name__}")
            op = _field(message, "op", str)
            handler = self._ops.get(op)
            if handler is None:
                raise BadRequest(f"op: unknown op {op!r} (expected one of {', '.join(self._ops)})")
            return handler(message, sidecar)
        except BlockError as error:
            return failure_reply(error)
        except Exception as exc:  # a runtime bug must not end the worker
            return failure_reply(InternalError(f"{type(exc).__name__}: {exc}"))

    def _ping(self, message: Mapping[str, Any], sidecar: memoryview | None = None) -> PingReply:
        return PingReply(ok=True, version=__version__)

    def _load(
        self, message: Mapping[str, Any], sidecar: memoryview | None = None
    ) -> LoadReply | FailureReply:
        block_hash = _field(message, "hash", str)
        code = BlockCode.from_dict(message.get("code"))
        # A runtime the proxy did not start (an E2B sandbox's server, started by the template)
        # learns the deployment's settings with the blocks it is sent.
        cache_size = message.get("cache_size")
        if _is_int(cache_size) and 1 <= cache_size <= MAX_BLOCK_CACHE_SIZE:
            self._cache_size = cache_size
        max_capture_bytes = message.get("max_capture_bytes")
        if _is_int(max_capture_bytes) and max_capture_bytes >= 0:
            self._max_capture_bytes = max_capture_bytes
        if block_hash in self._blocks:
            self._blocks.move_to_end(block_hash)
            return LoadReply(
                ok=True,
                hash=block_hash,
                evicted=[],
                stdout="",
                stderr="",
                stdout_truncated=False,
                stderr_truncated=False,
                timings_ms={"load": 0.0},
            )

        phases = Phases()
        with phases.measure("load"), capture_output(self._max_capture_bytes) as captured:
            try:
                block = load_block(code, module_name=f"blockgate_block_{block_hash[:16]}")
            except BlockError as error:
                failed: BlockError | None = error
            else:
                failed = None
        if failed is not None:
            return failure_reply(failed, captured)

        self._blocks[block_hash] = block
        evicted = []
        while len(self._blocks) > self._cache_size:
            old_hash, _ = self._blocks.popitem(last=False)
            evicted.append(old_hash)
        return LoadReply(
            ok=True,
            hash=block_hash,
            evicted=evicted,
            stdout=captured.stdout,
            stderr=captured.stderr,
            stdout_truncated=captured.stdout_truncated,
            stderr_truncated=captured.stderr_truncated,
            timings_ms=phases.ms,
            phases_ns=phases.spans_ns,
        )

    def _encode(self, outputs: Any, output_format: str) -> tuple[dict[str, Any], list[memoryview]]:
        """The reply's outputs field(s) and the sidecar buffers they refer to."""
        if not self._sidecar_outputs:
            tree, buffers = encode_outputs(outputs, output_format, max_bytes=self.max_output_bytes)
            return {"outputs": tree}, buffers
        # The worker sends a finished document the proxy can pass on without decoding it;
        # its large pieces ride in the sidecar.
        sidecar = Sidecar(region=self._region)
        pieces = [
            sidecar.add(piece) if memoryview(piece).nbytes >= SIDECAR_MIN_BYTES else bytes(piece)
            for piece in encode_document(outputs, output_format, max_bytes=self.max_output_bytes)
        ]
        document = {"format": _DOCUMENT_FORMATS.get(output_format, "json"), "pieces": pieces}
        return {
            "outputs_document": document,
            **({REGION_BYTES_KEY: sidecar.region_bytes} if sidecar.region_bytes else {}),
        }, sidecar.buffers

    def _run(
        self, message: Mapping[str, Any], sidecar: memoryview | None = None
    ) -> RunReply | FailureReply:
        block_hash = _field(message, "hash", str)
        raw_inputs = _field(message, "inputs", dict, required=False, default={})
        context = _field(message, "context", dict, required=False, default={})
        output_format = _field(message, "output_format", str, required=False, default="cbor")
        if output_format not in OUTPUT_MODES:
            raise BadRequest(
                f"output_format: must be one of {', '.join(OUTPUT_MODES)}, got {output_format!r}"
            )
        bad_key = next((key for key in raw_inputs if not isinstance(key, str)), None)
        if bad_key is not None:
            raise BadRequest(f"inputs: names must be strings, got {bad_key!r}")
        loaded_now: LoadReply | None = None
        if block_hash not in self._blocks and "code" in message:
            # A remote proxy sends the code with the run: one round trip on a cold start.
            load_reply = self._load(message)
            if not load_reply["ok"]:
                return load_reply
            loaded_now = load_reply
        block = self._blocks.get(block_hash)
        if block is None:
            raise UnknownBlock(f"hash: no block loaded with hash {block_hash!r}; send a load first")
        self._blocks.move_to_end(block_hash)
        phases = Phases()
        with phases.measure("decode"):
            try:
                inputs = decode_inputs(raw_inputs, sidecar, region=self._region)
            except KindError as exc:
                raise InvalidInput(str(exc)) from None

        with (
            phases.measure("execute"),
            capture_output(self._max_capture_bytes) as captured,
            collecting_traces(context.get("step_name")) as traces,
        ):
            try:
                outputs = block.run(inputs, context)
            except BlockError as error:
                failed: BlockError | None = error
            else:
                failed = None
        if failed is not None:
            return failure_reply(failed, captured)
        with phases.measure("encode"):
            try:
                encoded, buffers = self._encode(outputs, output_format)
            except OutputLimitExceeded as exc:
                return failure_reply(
                    OutputTooLarge(str(exc), function=block.code.run_function_name), captured
                )
            except KindError as exc:
                return failure_reply(
                    BlockRuntimeError(str(exc), function=block.code.run_function_name), captured
                )
            except MemoryError:
                error = OutputTooLarge(
                    "outputs: the worker ran out of memory encoding them",
                    function=block.code.run_function_name,
                )
                return failure_reply(error, captured)
            except Exception as exc:  # what the block returned, not a fault of blockgate's
                error = BlockRuntimeError(
                    f"outputs: cannot be encoded: {exception_message(exc)}",
                    function=block.code.run_function_name,
                )
                return failure_reply(error, captured)
        reply = RunReply(
            ok=True,
            **encoded,
            stdout=captured.stdout,
            stderr=captured.stderr,
            stdout_truncated=captured.stdout_truncated,
            stderr_truncated=captured.stderr_truncated,
            debug_traces=traces,
            timings_ms=phases.ms,
            phases_ns=phases.spans_ns,
            rss_bytes=SELF.resident_bytes(),  # the pool recycles a worker past a mark
        )
        if loaded_now is not None:
            reply["loaded"] = LoadedInline(
                evicted=loaded_now["evicted"], load_ms=loaded_now["timings_ms"]["load"]
            )
            reply["phases_ns"] = {**loaded_now.get("phases_ns", {}), **phases.spans_ns}
            reply["stdout"] = loaded_now["stdout"] + reply["stdout"]
            reply["stderr"] = loaded_now["stderr"] + reply["stderr"]
        if buffers:
            reply[BUFFERS_KEY] = buffers
        return reply
