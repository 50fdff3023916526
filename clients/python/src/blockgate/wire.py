"""Bodies to and from blockgate, in CBOR (lossless: the default) or JSON, through the same
codecs the Python runtime uses (``blockgate.serializers``, the repository's serializers/)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Literal

import cbor2

from .serializers.registry import Decoder, Encoder

Format = Literal["cbor", "json"]


def encode_request(body: dict[str, Any], inputs: dict[str, Any], format: Format) -> bytes:
    """The request with its inputs encoded by kind (numpy arrays, images, detections, …)."""
    encoder = Encoder("cbor" if format == "cbor" else "json")
    encoded = {
        name: encoder.encode_value(value, f"inputs.{name}") for name, value in inputs.items()
    }
    whole = {**body, "inputs": encoded}
    if format == "cbor":
        return cbor2.dumps(whole, timezone=dt.timezone.utc)
    return json.dumps(whole, allow_nan=False).encode()


def read_body(content: bytes, content_type: str) -> Any:
    """An answer's body as plain data (kinds not yet decoded)."""
    if content_type.split(";")[0].strip() == "application/cbor":
        return cbor2.loads(content)
    return json.loads(content)


def decode_outputs(outputs: dict[str, Any]) -> dict[str, Any]:
    """Outputs as the Python objects the block returned (ndarray, WorkflowImageData, sv.Detections, …)."""
    decoder = Decoder()
    return {name: decoder.decode_value(value, f"outputs.{name}") for name, value in outputs.items()}
