"""The one explicit list of serializer plugins (Python side), and the walks that decode a
run's inputs into real objects and encode a block's outputs by their type.

Adding a kind: a folder beside this file, and one line in ``KINDS`` here and in
serializers/index.ts (test/integration/serializers/registry.test.ts checks that both lists agree).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
import os
import sys
from collections.abc import Mapping
from typing import Any

import cbor2
import msgpack
import numpy as np
from cbor2 import CBORTag

from .batch import Batch

try:
    from .detections.codec import KIND as DETECTIONS
except ModuleNotFoundError as missing:  # the Python client without its supervision extra
    if missing.name != "supervision":
        raise
    from .detections.unavailable import KIND as DETECTIONS  # type: ignore[assignment]
from .image.codec import KIND as IMAGE
from .kind import Kind, KindError
from .ndarray.codec import KIND as NDARRAY
from .video_metadata.codec import KIND as VIDEO_METADATA

KINDS: tuple[Kind, ...] = (NDARRAY, DETECTIONS, VIDEO_METADATA, IMAGE)

# Internal to the proxy <-> worker frames: the bytes of a large array travel after the
# CBOR head, 64-byte aligned, and the head holds [offset, length] under this tag.
SIDECAR_TAG = 61440
SIDECAR_ALIGN = 64
SIDECAR_MIN_BYTES = 4096
# Larger buffers may go through the worker's shared-memory region instead (the proxy's
# pread/pwrite on one side, an mmap on the other): [offset, length] under this tag.
REGION_TAG = 61444
REGION_MIN_BYTES = 1024 * 1024

MAX_DEPTH = 64
MAX_NODES = 1_000_000

# json-webexec: as json, but NaN and +-Infinity written as Python's json.dumps writes them
# (bare tokens), which is what Inference's remote executor reads; json and json-compact
# write them as {"_type": "float", "value": "NaN" | "Infinity" | "-Infinity"} instead.
# msgpack-webexec: json-webexec's tree as msgpack, for Inference's websocket transport: the
# same markers, but bytes stay bytes (msgpack bin), which is what its client reads there.
OUTPUT_MODES = ("cbor", "json", "json-compact", "json-webexec", "msgpack-webexec")
# Those whose documents carry byte strings as they are, not as base64 text.
_RAW_BYTES_MODES = ("cbor", "msgpack-webexec")

# Text holding a lone surrogate (JSON "\ud800", which json.loads accepts) cannot be CBOR
# text: the proxy sends its UTF-16LE code units under this tag (serializers/cbor.ts).
SURROGATE_TEXT_TAG = 61445
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}

_BY_TAG: dict[int, Kind] = {tag: kind for kind in KINDS for tag in kind.tags}
_BY_JSON_TYPE: dict[str, Kind] = {kind.json_type: kind for kind in KINDS}


def _join(path: str, key: Any) -> str:
    if isinstance(key, str):
        return f"{path}.{key}"
    try:
        # repr() of a block's own key runs its code: it may raise, or be huge (a big int).
        text = (
            f"<{type(key).__qualname__} object>"
            if type(key).__repr__ is object.__repr__
            else repr(key)
        )
    except Exception:
        text = f"<{type(key).__qualname__} key>"
    return f"{path}[{text if len(text) <= 80 else text[:77] + '...'}]"


class OutputLimitExceeded(KindError):
    """The outputs would encode to more bytes than the reply may hold: found while encoding,
    before the whole (too large) document is built."""


def _exception_words(exc: BaseException) -> str:
    """``"ValueError: boom"``; an exception whose own str() raises is still named."""
    try:
        text = str(exc)
    except Exception:
        text = "<its str() raised too>"
    return f"{type(exc).__qualname__}: {text}" if text else type(exc).__qualname__


# Bits past which an int may have more decimal digits than Python will write as text
# (sys.get_int_max_str_digits, 4300 by default): JSON cannot carry it.
_LOG2_10 = math.log2(10)
# The ints msgpack carries (int 64 and uint 64).
_MSGPACK_INT_RANGE = range(-(2**63), 2**64)


class Decoder:
    """Decodes CBOR-decoded values (CBORTag, plain data, JSON ``_type`` markers) into objects."""

    mode = "cbor"

    def __init__(self, sidecar: memoryview | None = None, region: Any = None) -> None:
        self._sidecar = sidecar
        self._region = region
        self._nodes = 0
        self._depth = 0

    def decode_value(self, value: Any, path: str) -> Any:
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise KindError(path, f"more than {MAX_NODES} values in one run")
        if self._depth >= MAX_DEPTH:
            raise KindError(path, f"nested deeper than {MAX_DEPTH} levels")
        self._depth += 1
        try:
            return self._decode(value, path)
        finally:
            self._depth -= 1

    def _decode(self, value: Any, path: str) -> Any:
        if isinstance(value, CBORTag):
            if (
                value.tag == SURROGATE_TEXT_TAG
                and isinstance(value.value, bytes)
                and len(value.value) % 2 == 0
            ):
                return value.value.decode("utf-16-le", "surrogatepass")
            kind = _BY_TAG.get(value.tag)
            if kind is None:
                raise KindError(path, f"unknown CBOR tag {value.tag}: no kind is carried under it")
            return kind.from_cbor(value.tag, value.value, path, self)
        if isinstance(value, Mapping):
            marker = value.get("_type")
            if isinstance(marker, str):
                decoded = self._decode_marked(marker, value, path)
                if decoded is not _NOT_MARKED:
                    return decoded
            return {key: self.decode_value(item, _join(path, key)) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.decode_value(item, f"{path}[{i}]") for i, item in enumerate(value)]
        return value

    def _decode_marked(self, marker: str, obj: Mapping[str, Any], path: str) -> Any:
        kind = _BY_JSON_TYPE.get(marker)
        if kind is not None:
            return kind.from_json(dict(obj), path, self)
        if marker == "float" and len(obj) == 2 and obj.get("value") in _NON_FINITE:
            return _NON_FINITE[obj["value"]]
        if marker == "datetime":
            try:
                return dt.datetime.fromisoformat(str(obj.get("value")))
            except ValueError:
                raise KindError(
                    f"{path}.value", f"not an ISO 8601 datetime: {obj.get('value')!r}"
                ) from None
        if marker == "bytes":
            content = obj.get("value")
            if isinstance(content, (bytes, bytearray, memoryview, CBORTag)):
                # Inference's msgpack transport may send the bytes themselves (a bin), not base64.
                return bytes(self.resolve_bytes(content, f"{path}.value"))
            if not isinstance(content, str):
                raise KindError(
                    f"{path}.value",
                    f"must be base64 text or a byte string, got {type(content).__name__}",
                )
            try:
                return base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError):
                raise KindError(f"{path}.value", "not valid base64") from None
        if marker == "object":  # Roboflow sends str(obj) of what it could not serialise
            return obj.get("value")
        if marker == "batch":  # a batch-oriented input from Inference's remote executor
            return self._decode_batch(obj, path)
        return _NOT_MARKED

    def _decode_batch(self, obj: Mapping[str, Any], path: str) -> Batch:
        content = obj.get("value")
        if not isinstance(content, (list, tuple)):
            raise KindError(f"{path}.value", f"must be a list, got {type(content).__name__}")
        indices = obj.get("indices")
        if indices is not None:
            well_formed = isinstance(indices, (list, tuple)) and all(
                isinstance(index, (list, tuple)) and all(type(i) is int for i in index)
                for index in indices
            )
            if not well_formed:
                raise KindError(f"{path}.indices", "must be a list of lists of integers")
            if len(indices) != len(content):
                raise KindError(
                    f"{path}.indices", f"has {len(indices)} entries for {len(content)} elements"
                )
        values = [self.decode_value(item, f"{path}.value[{i}]") for i, item in enumerate(content)]
        return Batch(values, indices)

    def resolve_bytes(self, content: Any, path: str) -> bytes | memoryview:
        if isinstance(content, (bytes, bytearray, memoryview)):
            return content
        if isinstance(content, CBORTag) and content.tag == REGION_TAG:
            if self._region is None:
                raise KindError(path, f"tag {REGION_TAG} is internal to blockgate's worker frames")
            offset, length = _reference(
                content.value, len(self._region), path, "region", "its region"
            )
            # A private copy: the region is rewritten by the next run, the block may keep its arrays.
            return memoryview(bytearray(memoryview(self._region)[offset : offset + length]))
        if isinstance(content, CBORTag) and content.tag == SIDECAR_TAG:
            if self._sidecar is None:
                raise KindError(path, f"tag {SIDECAR_TAG} is internal to blockgate's worker frames")
            offset, length = _reference(
                content.value, len(self._sidecar), path, "sidecar", "the frame"
            )
            return self._sidecar[offset : offset + length]
        raise KindError(path, f"expected a byte string, got {type(content).__name__}")

    def wrap_bytes(self, data: memoryview) -> Any:  # pragma: no cover - decoders never encode
        raise NotImplementedError


_NOT_MARKED = object()


class Encoder:
    """Encodes a block's outputs by type: kinds by their plugin, the rest as plain data."""

    def __init__(
        self,
        mode: str = "cbor",
        sidecar: bool = False,
        split: bool = False,
        max_bytes: int | None = None,
    ) -> None:
        if mode not in OUTPUT_MODES:
            raise ValueError(f"mode must be one of {', '.join(OUTPUT_MODES)}, got {mode!r}")
        self._mode = mode
        self._sidecar = sidecar and mode == "cbor"
        self._split = split and mode == "cbor"
        self._sidecar_buffers = Sidecar()
        self.buffers = self._sidecar_buffers.buffers
        self.splits: list[tuple[bytes, memoryview]] = []
        self._depth = 0
        # The reply's byte limit, and a lower bound of what the outputs encode to so far:
        # past the limit, encoding stops (OutputLimitExceeded) before building the rest.
        self._max_bytes = max_bytes
        self.used_bytes = 0

    @property
    def mode(self) -> str:
        return self._mode

    def encode_value(self, value: Any, path: str) -> Any:
        if self._depth >= MAX_DEPTH:
            raise KindError(path, f"nested deeper than {MAX_DEPTH} levels")
        self._depth += 1
        try:
            self._spend(self._least_bytes(value, path), path)
            return self._encode(value, path)
        except KindError:
            raise
        except MemoryError:
            raise OutputLimitExceeded(
                path, "the worker ran out of memory encoding this output"
            ) from None
        except (Exception, SystemExit, KeyboardInterrupt) as exc:
            # The block's own code ran here (a __str__, __iter__, items(), __array__...).
            raise KindError(
                path, f"cannot encode this {type(value).__qualname__}: {_exception_words(exc)}"
            ) from None
        finally:
            self._depth -= 1

    def _spend(self, nbytes: int, path: str) -> None:
        self.used_bytes += nbytes
        if self._max_bytes is not None and self.used_bytes > self._max_bytes:
            raise OutputLimitExceeded(
                path,
                f"the outputs are over the reply limit of {self._max_bytes} bytes (at least {self.used_bytes} bytes up to here)",
            )

    def _least_bytes(self, value: Any, path: str, key: bool = False) -> int:
        """A lower bound of the bytes ``value`` adds to the document, its nested values not
        counted (they are counted when encoded): checked before anything is copied. A ``key``
        outside CBOR is written as its str()."""
        if value is None or isinstance(value, (bool, float)):
            return 1
        if isinstance(value, int):
            bits = value.bit_length()
            if self._mode == "cbor":
                return 1 + bits // 8
            if self._mode == "msgpack-webexec" and not key:
                if value not in _MSGPACK_INT_RANGE:
                    raise KindError(
                        path,
                        "an integer outside msgpack's range (-2**63 to 2**64 - 1): Inference's websocket transport "
                        "cannot carry it; return it as a string (or a float)",
                    )
                return 1 + bits // 8
            limit = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else 0
            if limit and bits > (limit - 1) * _LOG2_10 and abs(value) >= 10**limit:
                raise KindError(
                    path,
                    f"an integer of more than {limit} digits (about {int(bits / _LOG2_10)}): Python does not write integers "
                    f"that long as text, so JSON cannot carry it; ask for CBOR (it carries any integer) or return it as a string",
                )
            return max(1, int(bits / _LOG2_10))
        if isinstance(value, str):
            return len(value) + 1
        if isinstance(value, (bytes, bytearray, memoryview)):
            nbytes = memoryview(value).nbytes
            return nbytes if self._mode in _RAW_BYTES_MODES else (nbytes + 2) // 3 * 4
        if isinstance(value, np.ndarray):
            if self._mode == "msgpack-webexec":
                return value.size  # nested lists: a byte at least for each value (a small int)
            if (
                value.dtype.kind not in "biuf"
            ):  # strings (or a dtype its kind refuses): a byte or two each at least
                return value.size if self._mode == "cbor" else 2 * value.size
            if self._mode == "cbor":
                return value.nbytes
            return (value.nbytes + 2) // 3 * 4 if self._mode == "json-compact" else 2 * value.size
        if isinstance(value, (Mapping, list, tuple, set, frozenset)):
            # JSON writes a separator between items; msgpack writes only the head.
            return 1 if self._mode == "msgpack-webexec" else 1 + len(value)
        return _kind_least_bytes(value, self._mode)

    def _key(self, key: Any, path: str) -> Any:
        """A map key as the document holds it, its bytes counted."""
        if isinstance(key, str):
            self._spend(len(key) + 1, path)
            return key
        where = f"{_join(path, key)} (key)"
        self._spend(self._least_bytes(key, where, key=True), where)
        if self._mode == "cbor":
            if not isinstance(key, (int, float, bytes, type(None))):
                try:
                    cbor2.dumps(key, timezone=dt.timezone.utc)
                except Exception as exc:
                    raise KindError(
                        where,
                        f"this {type(key).__qualname__} cannot be a map key in CBOR: {_exception_words(exc)}",
                    ) from None
            return key
        try:
            return str(key)
        except Exception as exc:
            raise KindError(
                where,
                f"JSON keys are text and str() of this {type(key).__qualname__} raised {_exception_words(exc)}",
            ) from None

    def _encode(self, value: Any, path: str) -> Any:
        if value is None or isinstance(value, (bool, int, str)):
            return value
        if isinstance(value, float):
            # JSON has no NaN or infinity: a marker says which (see _json_document).
            return (
                value
                if self._mode in ("cbor", "json-webexec", "msgpack-webexec") or math.isfinite(value)
                else _non_finite_marker(value)
            )
        for kind in KINDS:
            if isinstance(value, kind.python_types):
                if self._mode == "cbor":
                    return CBORTag(kind.tags[0], kind.to_cbor(value, path, self))
                return kind.to_json(value, path, self)
        if isinstance(value, Mapping):
            return {
                self._key(key, path): self.encode_value(item, _join(path, key))
                for key, item in value.items()
            }
        if isinstance(value, (list, tuple, set, frozenset)) or _is_batch(value):
            return [self.encode_value(item, f"{path}[{i}]") for i, item in enumerate(value)]
        if isinstance(value, np.generic):
            return self.encode_value(value.item(), path)
        if isinstance(value, (bytes, bytearray, memoryview)):
            if self._mode in _RAW_BYTES_MODES:
                return bytes(value)
            return {"_type": "bytes", "value": base64.b64encode(bytes(value)).decode("ascii")}
        if isinstance(value, dt.datetime):
            if value.tzinfo is None:  # datetime.now() in a block: read as UTC, not refused
                value = value.replace(tzinfo=dt.timezone.utc)
            return (
                value if self._mode == "cbor" else {"_type": "datetime", "value": value.isoformat()}
            )
        if isinstance(value, dt.date):
            return value.isoformat()
        # Roboflow's own fallback for what it cannot serialise: the class and its str().
        try:
            text = str(value)
        except Exception as exc:
            raise KindError(
                path,
                f"this {type(value).__qualname__} has no kind, so it is sent as its str(), which raised {_exception_words(exc)}",
            ) from None
        self._spend(len(text), path)
        return {"_type": "object", "class": type(value).__name__, "value": text}

    def wrap_bytes(self, data: memoryview) -> Any:
        if self._split and data.nbytes >= SIDECAR_MIN_BYTES:
            # A random stand-in, swapped for the real bytes by encode_document: the block
            # has already run, so nothing it wrote can imitate it.
            stand_in = os.urandom(16)
            self.splits.append((stand_in, data))
            return stand_in
        if not self._sidecar or data.nbytes < SIDECAR_MIN_BYTES:
            return data.tobytes()
        return self._sidecar_buffers.add(data)

    def resolve_bytes(self, content: Any, path: str) -> bytes | memoryview:  # pragma: no cover
        raise NotImplementedError


def _align(n: int) -> int:
    return (n + SIDECAR_ALIGN - 1) // SIDECAR_ALIGN * SIDECAR_ALIGN


def _reference(ref: Any, limit: int, path: str, what: str, within: str) -> tuple[int, int]:
    """[offset, length] of a sidecar or region reference, checked against ``limit``."""
    if not (
        isinstance(ref, (list, tuple))
        and len(ref) == 2
        and all(isinstance(n, int) and n >= 0 for n in ref)
    ):
        raise KindError(path, f"malformed {what} reference")
    offset, length = ref
    if offset + length > limit:
        raise KindError(path, f"{what} reference beyond {within}")
    return offset, length


class Sidecar:
    """Lays out buffers in a frame's sidecar (64-byte aligned, in order) and hands back
    the [offset, length] reference to put in the head in each one's place. With a
    shared-memory ``region``, large buffers are copied there instead."""

    def __init__(self, region: Any = None) -> None:
        self.buffers: list[memoryview] = []
        self._size = 0
        self._region = region
        self._region_used = 0
        self.region_bytes = 0  # what the references into the region add up to

    def add(self, data: bytes | memoryview) -> CBORTag:
        view = memoryview(data)
        if self._region is not None and view.nbytes >= REGION_MIN_BYTES:
            at = _align(self._region_used)
            # A region that can reserve its pages first says no when /dev/shm is full, where a
            # write to an unbacked page would kill the worker with SIGBUS: then the socket carries it.
            reserve = getattr(self._region, "reserve", None)
            if at + view.nbytes <= len(self._region) and (
                reserve is None or reserve(at, view.nbytes)
            ):
                self._region[at : at + view.nbytes] = (
                    view.cast("B") if view.ndim != 1 or view.format != "B" else view
                )
                self._region_used = at + view.nbytes
                self.region_bytes += view.nbytes
                return CBORTag(REGION_TAG, [at, view.nbytes])
        offset = self._size
        self.buffers.append(view)
        self._size = _align(offset + view.nbytes)
        return CBORTag(SIDECAR_TAG, [offset, view.nbytes])


def _kind_least_bytes(value: Any, mode: str) -> int:
    """What a kind's value adds beyond the nested values it encodes through the codec
    (an image's encoded bytes, a detection's packed mask or JSON predictions)."""
    try:
        if isinstance(value, IMAGE.python_types):
            encoded = (
                getattr(value, "_encoded_image", None)
                if getattr(value, "_numpy_image", None) is None
                else None
            )
            nbytes = memoryview(encoded).nbytes if encoded is not None else 0
            return nbytes if mode == "cbor" else (nbytes + 2) // 3 * 4
        if isinstance(value, DETECTIONS.python_types):
            if mode != "cbor":
                return 40 * len(value)  # one prediction: "x", "y", "width", "height", ...
            mask = getattr(value, "mask", None)
            return 0 if mask is None else int(np.asarray(mask).size) // 8
    except (TypeError, ValueError, AttributeError):
        pass  # a malformed value: its kind says what is wrong with it
    return 1


def _is_batch(value: Any) -> bool:
    # Roboflow's Batch (ours or the real one from `inference`) is a sequence of kinds.
    return type(value).__name__ == "Batch" and hasattr(value, "__iter__")


def decode_inputs(
    inputs: Mapping[str, Any],
    sidecar: memoryview | None = None,
    path: str = "inputs",
    region: Any = None,
) -> dict[str, Any]:
    """A run's inputs as the objects the block sees; KindError names the bad path."""
    decoder = Decoder(sidecar, region)
    return {name: decoder.decode_value(value, _join(path, name)) for name, value in inputs.items()}


def encode_outputs(
    outputs: Any,
    mode: str = "cbor",
    sidecar: bool = False,
    path: str = "outputs",
    max_bytes: int | None = None,
) -> tuple[Any, list[memoryview]]:
    """Outputs ready for cbor2 (CBORTag for kinds), and the sidecar buffers they refer to.
    Past ``max_bytes`` (a lower bound of the encoded size), OutputLimitExceeded."""
    encoder = Encoder(mode, sidecar, max_bytes=max_bytes)
    return encoder.encode_value(outputs, path), encoder.buffers


def _cbor_bytes_header(length: int) -> bytes:
    if length < 24:
        return bytes([0x40 + length])
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if length < 1 << (8 * size):
            return bytes([0x40 + extra]) + length.to_bytes(size, "big")
    raise ValueError("byte string too long for CBOR")


def encode_document(
    outputs: Any, mode: str = "cbor", path: str = "outputs", max_bytes: int | None = None
) -> list[bytes | memoryview]:
    """The outputs as one finished CBOR, JSON or msgpack document, in pieces whose concatenation
    is the document. Large arrays are pieces of their own, not copied into the rest, so
    the proxy can send the document on to its client without decoding it: every value
    (a float that happens to be whole, -0.0, a map's key order) reaches the client as
    the block made it.
    """
    encoder = Encoder(mode, split=True, max_bytes=max_bytes)
    tree = encoder.encode_value(outputs, path)
    if mode == "msgpack-webexec":
        return [msgpack.packb(tree, use_bin_type=True, use_single_float=False)]
    if mode != "cbor":
        return [_json_document(tree, mode)]
    document = memoryview(cbor2.dumps(tree, timezone=dt.timezone.utc))
    pieces: list[bytes | memoryview] = []
    start = 0
    for stand_in, data in encoder.splits:
        at = document.obj.find(b"\x50" + stand_in, start)  # 0x50: a 16-byte byte string
        pieces += [document[start:at], _cbor_bytes_header(data.nbytes), data]
        start = at + 17
    pieces.append(document[start:])
    return pieces


def _non_finite_marker(value: float) -> dict[str, str]:
    return {
        "_type": "float",
        "value": "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity",
    }


def _with_non_finite_marked(node: Any) -> Any:
    if isinstance(node, float):
        return node if math.isfinite(node) else _non_finite_marker(node)
    if isinstance(node, dict):
        return {key: _with_non_finite_marked(item) for key, item in node.items()}
    if isinstance(node, (list, tuple)):
        return [_with_non_finite_marked(item) for item in node]
    return node


def _json_document(tree: Any, mode: str) -> bytes:
    """The JSON text of an encoded tree. Plain floats are marked by the Encoder already;
    a kind's JSON form may still hold NaN or infinity (an array's values, a detection's
    confidence): only then is the tree walked again to mark them. A str holding a lone
    surrogate (a block's JSON input "\\ud800", given back) is written as escapes, as
    Python's json.dumps writes it by default and json.loads reads it back."""
    allow_nan = mode == "json-webexec"
    try:
        text = json.dumps(tree, ensure_ascii=False, separators=(",", ":"), allow_nan=allow_nan)
    except ValueError:
        if allow_nan:
            raise
        tree = _with_non_finite_marked(tree)
        text = json.dumps(tree, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(tree, separators=(",", ":"), allow_nan=allow_nan).encode()
