"""Test helpers shared by the plugins' Python tests: the worker's path without a worker."""

from __future__ import annotations

from typing import Any

import cbor2

from .registry import SIDECAR_ALIGN, decode_inputs, encode_outputs


def frame(tree: Any, buffers: list[memoryview]) -> tuple[bytes, memoryview | None]:
    """What a worker frame carries: the CBOR head, and the sidecar region its buffers fill."""
    if not buffers:
        return cbor2.dumps(tree), None
    region = bytearray()
    for buffer in buffers:
        region += bytes(buffer) + b"\0" * (-buffer.nbytes % SIDECAR_ALIGN)
    return cbor2.dumps(tree), memoryview(region)


def cbor_round_trip(value: Any, sidecar: bool = False) -> Any:
    """Encode as outputs, to CBOR bytes (and a sidecar region), then decode as inputs."""
    head, region = frame(*encode_outputs({"x": value}, sidecar=sidecar))
    return decode_inputs(cbor2.loads(head), sidecar=region)["x"]
