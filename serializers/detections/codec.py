"""detections, Python half (twin of index.ts): ``supervision.Detections`` <-> CBOR tag 61442.

CBOR: tag 61442 over a map whose fields are always written in this order:

  xyxy        ndarray kind, shape [N, 4], its own dtype (normally float32/float64)
  confidence  ndarray kind, shape [N], or null
  class_id    ndarray kind, shape [N], an integer dtype, or null
  tracker_id  ndarray kind, shape [N], an integer dtype, or null
  mask        null, or {"shape": [N, H, W], "bits": bytes}: the whole N×H×W bool mask in
              row-major order, 8 pixels a byte, first pixel in the lowest bit
              (``numpy.packbits(mask.reshape(-1), bitorder="little")``), the padding
              bits of the last byte 0. Large ``bits`` ride in the frame's sidecar.
  data        map, every key of ``detections.data`` in its order, each value one of
                - ndarray kind (numeric or str), first dimension N (or 0-d);
                - a CBOR array: a Python list, length N, elements encoded as any value
                  (nested kinds included);
                - {"shape": [N, ...], "object": [elements, row-major]}: a numpy
                  object-dtype array (ragged polygons, dicts), elements encoded as any
                  value; decoded back to ``np.ndarray(dtype=object)``, not a list.
  metadata    map (``detections.metadata``), values encoded as any value

Decoding checks that every column has N rows (N = xyxy's first dimension), that the
boxes are finite, class_id/tracker_id integers, the mask's bits the right length and its
sides at most 16384; errors are KindError naming the field
(``inputs.dets.confidence: expected 12 values, got 11``). Encoding applies the same
checks, so a block that returns a broken ``sv.Detections`` hears it with the output path.

A ``CompactMask`` (supervision >= 0.30) is sent as the dense mask it stands for and
comes back dense; a non-bool mask is sent as ``mask != 0``.

JSON: Roboflow's ``{"_type": "sv_detections", "image", "predictions": [...]}``, see
json_form.py (lossy by nature; CBOR is the lossless form).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import supervision as sv

from ..kind import Codec, KindError
from . import json_form
from .checks import (
    build,
    check_boxes,
    check_column,
    check_data_column,
    check_mask_shape,
    shape_text,
)

DETECTIONS_TAG = 61442
FIELDS = ("xyxy", "confidence", "class_id", "tracker_id", "mask", "data", "metadata")


def _encode_mask(mask: Any, n: int, path: str, codec: Codec) -> dict[str, Any] | None:
    if mask is None:
        return None
    dense = np.asarray(mask)  # a CompactMask turns dense here
    if dense.ndim != 3:
        raise KindError(path, f"expected shape [N, H, W], got {shape_text(dense.shape)}")
    shape = check_mask_shape([int(d) for d in dense.shape], n, f"{path}.shape")
    if dense.dtype != np.bool_:
        dense = dense != 0
    bits = np.packbits(dense.reshape(-1), bitorder="little")
    return {"shape": list(shape), "bits": codec.wrap_bytes(memoryview(bits))}


def _decode_mask(content: Any, n: int, path: str, codec: Codec) -> np.ndarray | None:
    if content is None:
        return None
    if not isinstance(content, Mapping) or set(content) != {"shape", "bits"}:
        raise KindError(path, "expected null or {shape: [N, H, W], bits: bytes}")
    shape = check_mask_shape(content["shape"], n, f"{path}.shape")
    pixels = shape[0] * shape[1] * shape[2]
    bits = np.frombuffer(codec.resolve_bytes(content["bits"], f"{path}.bits"), dtype=np.uint8)
    expected = math.ceil(pixels / 8)
    if bits.size != expected:
        raise KindError(
            f"{path}.bits",
            f"expected {expected} bytes for {shape[0]}×{shape[1]}×{shape[2]} pixels, got {bits.size}",
        )
    if pixels % 8 and bits[-1] >> (pixels % 8):
        raise KindError(f"{path}.bits", "the padding bits after the last pixel must be 0")
    return np.unpackbits(bits, count=pixels, bitorder="little").view(np.bool_).reshape(shape)


def _encode_data_column(value: Any, n: int, path: str, codec: Codec) -> Any:
    check_data_column(value, n, path)
    if isinstance(value, np.ndarray) and value.dtype == object:
        elements = [
            codec.encode_value(item, f"{path}[{i}]") for i, item in enumerate(value.reshape(-1))
        ]
        return {"shape": list(value.shape), "object": elements}
    return codec.encode_value(value, path)


def _decode_data_column(content: Any, n: int, path: str, codec: Codec) -> Any:
    if isinstance(content, Mapping):
        if set(content) != {"shape", "object"} or not isinstance(content["object"], (list, tuple)):
            raise KindError(
                path, "expected an ndarray, a list, or an object column {shape, object}"
            )
        shape = content["shape"]
        if not (
            isinstance(shape, (list, tuple))
            and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        ):
            raise KindError(
                f"{path}.shape", f"dimensions must be non-negative integers, got {shape!r}"
            )
        elements = content["object"]
        if math.prod(shape) != len(elements):
            raise KindError(
                f"{path}.object",
                f"shape {shape_text(shape)} needs {math.prod(shape)} values, got {len(elements)}",
            )
        column = np.empty(len(elements), dtype=object)
        for i, item in enumerate(
            elements
        ):  # one by one: numpy would turn nested lists into dimensions
            column[i] = codec.decode_value(item, f"{path}.object[{i}]")
        column = column.reshape(shape)
    elif isinstance(content, (list, tuple)):
        column = codec.decode_value(list(content), path)
    else:
        column = codec.decode_value(content, path)
        if not isinstance(column, np.ndarray):
            raise KindError(
                path,
                f"expected an ndarray, a list, or an object column, got {type(column).__name__}",
            )
    check_data_column(column, n, path)
    return column


def _decode_array(content: Any, path: str, codec: Codec) -> Any:
    return None if content is None else codec.decode_value(content, path)


class DetectionsKind:
    name: ClassVar[str] = "detections"
    tags: ClassVar[tuple[int, ...]] = (DETECTIONS_TAG,)
    json_type: ClassVar[str] = json_form.JSON_TYPE
    python_types: ClassVar[tuple[type, ...]] = (sv.Detections,)

    def from_cbor(self, tag: int, content: Any, path: str, codec: Codec) -> sv.Detections:
        if not isinstance(content, Mapping):
            raise KindError(path, f"tag {DETECTIONS_TAG} must hold a map of columns")
        for key in content:
            if key not in FIELDS:
                raise KindError(path, f"unknown field {key!r} (fields: {', '.join(FIELDS)})")
        if "xyxy" not in content:
            raise KindError(f"{path}.xyxy", "missing: detections need their boxes")
        xyxy = codec.decode_value(content["xyxy"], f"{path}.xyxy")
        n = check_boxes(xyxy, f"{path}.xyxy")
        columns = {}
        for field in ("confidence", "class_id", "tracker_id"):
            columns[field] = _decode_array(content.get(field), f"{path}.{field}", codec)
            check_column(columns[field], n, f"{path}.{field}", integer=field != "confidence")
        mask = _decode_mask(content.get("mask"), n, f"{path}.mask", codec)
        data_content = content.get("data", {})
        if not isinstance(data_content, Mapping):
            raise KindError(f"{path}.data", f"expected a map, got {type(data_content).__name__}")
        data = {}
        for key, item in data_content.items():
            if not isinstance(key, str):
                raise KindError(f"{path}.data", f"keys must be strings, got {key!r}")
            data[key] = _decode_data_column(item, n, f"{path}.data.{key}", codec)
        metadata = codec.decode_value(content.get("metadata", {}), f"{path}.metadata")
        if not isinstance(metadata, dict):
            raise KindError(f"{path}.metadata", f"expected a map, got {type(metadata).__name__}")
        return build(xyxy, mask, columns, data, metadata, path)

    def to_cbor(self, value: sv.Detections, path: str, codec: Codec) -> dict[str, Any]:
        xyxy = np.asarray(value.xyxy)
        n = check_boxes(xyxy, f"{path}.xyxy")
        out: dict[str, Any] = {"xyxy": codec.encode_value(xyxy, f"{path}.xyxy")}
        for field in ("confidence", "class_id", "tracker_id"):
            column = getattr(value, field)
            check_column(column, n, f"{path}.{field}", integer=field != "confidence")
            out[field] = None if column is None else codec.encode_value(column, f"{path}.{field}")
        out["mask"] = _encode_mask(value.mask, n, f"{path}.mask", codec)
        data = {}
        for key, column in value.data.items():
            if not isinstance(key, str):
                raise KindError(f"{path}.data", f"keys must be strings, got {key!r}")
            data[key] = _encode_data_column(column, n, f"{path}.data.{key}", codec)
        out["data"] = data
        metadata = value.metadata if value.metadata is not None else {}
        out["metadata"] = codec.encode_value(dict(metadata), f"{path}.metadata")
        return out

    def from_json(self, obj: dict[str, Any], path: str, codec: Codec) -> sv.Detections:
        return json_form.from_json(obj, path, codec)

    def to_json(self, value: sv.Detections, path: str, codec: Codec) -> dict[str, Any]:
        return json_form.to_json(value, path, codec)


KIND = DetectionsKind()
