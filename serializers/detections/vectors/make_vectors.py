"""Writes the detections golden vectors. Run it only to add a vector on purpose:

    .venv/bin/python serializers/detections/vectors/make_vectors.py

Each vector is ``<name>.cbor`` (the canonical encoding of an ``sv.Detections``) plus an
entry in ``index.json`` saying, in a language-neutral way, what it must decode to:

    {"name", "n", "expect": {"xyxy", "confidence", "class_id", "tracker_id", "mask",
                             "data", "metadata"}}

where a numpy array is ``{"$ndarray": {"dtype", "shape", "hex"}}`` (little-endian
row-major element bytes) or ``{"$ndarray": {"dtype": "str", "shape", "values"}}``, an
object-dtype array is ``{"$object": {"shape", "values": [...]}}``, a mask is
``{"shape": [N, H, W], "set_pixels": [[i, y, x], ...]}``, and lists, maps and plain
values are themselves. Both languages' tests build this description from what they
decoded, compare it, and re-encode to the identical bytes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import cbor2
import numpy as np
import supervision as sv

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))
from serializers.registry import encode_outputs  # noqa: E402


def canonical(value: Any) -> bytes:
    tree, _ = encode_outputs(value)
    return cbor2.dumps(tree)


def describe_value(value: Any) -> Any:
    """The language-neutral description of a decoded value (see the module docstring)."""
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return {
                "$object": {
                    "shape": list(value.shape),
                    "values": [describe_value(v) for v in value.reshape(-1)],
                }
            }
        if value.dtype.kind == "U":
            return {
                "$ndarray": {
                    "dtype": "str",
                    "shape": list(value.shape),
                    "values": value.reshape(-1).tolist(),
                }
            }
        little = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<"))
        return {
            "$ndarray": {
                "dtype": value.dtype.name,
                "shape": list(value.shape),
                "hex": little.tobytes().hex(),
            }
        }
    if isinstance(value, (list, tuple)):
        return [describe_value(v) for v in value]
    if isinstance(value, dict):
        return {k: describe_value(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def describe(detections: sv.Detections) -> dict[str, Any]:
    mask = detections.mask
    return {
        "xyxy": describe_value(detections.xyxy),
        "confidence": describe_value(detections.confidence),
        "class_id": describe_value(detections.class_id),
        "tracker_id": describe_value(detections.tracker_id),
        "mask": None
        if mask is None
        else {"shape": list(mask.shape), "set_pixels": np.argwhere(mask).tolist()},
        "data": describe_value(dict(detections.data)),
        "metadata": describe_value(dict(detections.metadata)),
    }


def _masks() -> np.ndarray:
    # 2×5×7 = 70 pixels: 9 bytes, the last one with 2 pixels and 6 padding bits.
    mask = np.zeros((2, 5, 7), dtype=bool)
    mask[0, 1:4, 2:5] = True
    mask[1, 0, 0] = True
    mask[1, 4, 6] = True  # the very last pixel: bit 5 of byte 8
    return mask


def _objects(*items: Any) -> np.ndarray:
    column = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):  # one by one, so numpy does not read arrays as rows
        column[i] = item
    return column


VECTORS: dict[str, sv.Detections] = {
    "empty": sv.Detections.empty(),
    "boxes-classes": sv.Detections(
        xyxy=np.array(
            [[10, 20, 110, 220], [0.5, 1.5, 2.5, 3.5], [300, 40, 320, 90]], dtype=np.float32
        ),
        confidence=np.array([0.91, 0.5, 0.125], dtype=np.float32),
        class_id=np.array([2, 0, 2], dtype=np.int64),
        data={"class_name": np.array(["car", "person", "car"])},
    ),
    "tracked": sv.Detections(
        xyxy=np.array([[1.25, 2, 30, 40], [5, 6, 70, 80]], dtype=np.float64),
        confidence=np.array([0.75, 0.25], dtype=np.float64),
        class_id=np.array([1, 3], dtype=np.int32),
        tracker_id=np.array([17, 2**40], dtype=np.int64),
        data={"class_name": np.array(["dog", "cat"]), "detection_id": np.array(["a1", "b2"])},
    ),
    "integer-boxes": sv.Detections(
        xyxy=np.array([[0, 0, 4, 4]], dtype=np.int32),
        class_id=np.array([65535], dtype=np.uint16),
    ),
    "masks": sv.Detections(
        xyxy=np.array([[2, 1, 5, 4], [0, 0, 7, 5]], dtype=np.float32),
        confidence=np.array([0.5, 0.75], dtype=np.float32),
        class_id=np.array([0, 1], dtype=np.int64),
        mask=_masks(),
        data={"class_name": np.array(["a", "b"])},
    ),
    "mixed-data": sv.Detections(
        xyxy=np.array([[0, 0, 10, 10], [5, 5, 15, 15], [1, 2, 3, 4]], dtype=np.float32),
        confidence=np.array([0.5, 0.25, 1.0], dtype=np.float32),
        class_id=np.array([0, 1, 0], dtype=np.int64),
        data={
            "class_name": np.array(["bolt", "nut", "bolt"]),
            "area": np.array([100.5, 100.25, 4.0], dtype=np.float64),
            "velocity": np.array([[1, -1], [0, 2], [-3, 0]], dtype=np.int32),
            "ocr": [
                {"text": "A1", "score": 0.5},
                {"text": "", "score": 0.25},
                {"text": "Z", "lines": [1, 2]},
            ],
            "polygon": _objects(
                np.array([[0, 0], [1, 0], [1, 1]], dtype=np.int32), "none", {"k": [1, None]}
            ),
            "flags": np.array([True, False, True]),
        },
    ),
    "metadata": sv.Detections(
        xyxy=np.array([[1, 2, 3, 4]], dtype=np.float64),
        confidence=np.array([0.5], dtype=np.float64),
        class_id=np.array([7], dtype=np.int64),
        data={"class_name": np.array(["widget"])},
        metadata={
            "source": "camera-1",
            "frame": 12,
            "scores": [0.5, 0.25],
            "nested": {"a": None, "b": True},
            "roi": np.array([0, 0, 640, 480], dtype=np.int16),
        },
    ),
}


def main() -> None:
    index = []
    for name, detections in VECTORS.items():
        (HERE / f"{name}.cbor").write_bytes(canonical(detections))
        index.append({"name": name, "n": len(detections), "expect": describe(detections)})
    (HERE / "index.json").write_text(json.dumps(index, indent=2) + "\n")


if __name__ == "__main__":
    main()
