"""CBOR bytes of the worker's messages, and back.

A block's outputs reach this module already turned into CBOR-ready values by the
serializer registry (serializers/registry.py); this only writes and reads them, and
names the path of anything that still cannot be encoded.
"""

from __future__ import annotations

from datetime import timezone
from typing import Any

import cbor2


class EncodeError(ValueError):
    """A value could not be encoded; ``path`` says where it sits (``outputs.result[2]``)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path = path
        self.reason = reason


class DecodeError(ValueError):
    """Bytes that are not one well-formed CBOR item."""


class _Unencodable(Exception):
    """Raised by the hook; caught and re-described with a path by ``encode``."""


def _default(encoder: cbor2.CBOREncoder, value: Any) -> None:
    raise _Unencodable(f"cannot encode object of type {type(value).__qualname__}")


# Naive datetimes (datetime.now() in a block) are read as UTC rather than refused:
# a block author rarely means anything else inside a worker.
_ENCODE_OPTIONS: dict[str, Any] = {"default": _default, "timezone": timezone.utc}


def encode(obj: Any) -> bytes:
    try:
        return cbor2.dumps(obj, **_ENCODE_OPTIONS)
    except (cbor2.CBOREncodeError, _Unencodable, ValueError, TypeError) as exc:
        # Only on failure: walk the value again to name the path of the culprit.
        raise _locate_failure(obj, "", set()) or EncodeError("", str(exc)) from None


def decode(data: bytes | memoryview) -> Any:
    try:
        return cbor2.loads(data)
    except cbor2.CBORDecodeError as exc:
        raise DecodeError(f"invalid CBOR: {exc}") from None


def _locate_failure(value: Any, path: str, active: set[int]) -> EncodeError | None:
    """The first path under ``value`` that cannot be encoded, or None."""
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        if id(value) in active:
            return EncodeError(path, "cyclic reference: a container holds itself")
        active.add(id(value))
        try:
            if isinstance(value, dict):
                for key, item in value.items():
                    child = _join(path, key)
                    found = _locate_failure(key, f"{child} (key)", active) or _locate_failure(
                        item, child, active
                    )
                    if found:
                        return found
            else:
                for index, item in enumerate(value):
                    found = _locate_failure(item, f"{path}[{index}]", active)
                    if found:
                        return found
        finally:
            active.discard(id(value))
        return None
    try:
        cbor2.dumps(value, **_ENCODE_OPTIONS)
    except _Unencodable as exc:
        return EncodeError(path, str(exc))
    except (cbor2.CBOREncodeError, ValueError, TypeError) as exc:
        return EncodeError(path, f"cannot encode {type(value).__qualname__}: {exc}")
    return None


def _join(path: str, key: Any) -> str:
    if isinstance(key, str):
        return f"{path}.{key}" if path else key
    return f"{path}[{key!r}]"
