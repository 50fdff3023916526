"""The payloads every scenario uses, built once here so TS and Python measure the same bytes.

    .venv/bin/python bench/payloads.py DIR      writes DIR/index.json and, per payload,
                                                <id>.cbor (CBOR kinds) and <id>.json (the
                                                JSON/base64 form: Roboflow's, as the seed sent)

Two sets: the payloads a block runs on, on every backend (with the block's code), and the
payloads the serialization scenario encodes and decodes.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "template")]

import cbor2  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import supervision as sv  # noqa: E402

from serializers.image.entity import ImageParentMetadata, WorkflowImageData  # noqa: E402
from serializers.registry import encode_outputs  # noqa: E402


@cache
def frame(height: int, width: int, seed: int) -> np.ndarray:
    # A smooth picture with some noise: what a camera gives, so JPEG sizes are realistic.
    rng = np.random.default_rng(seed)
    y, x = np.arange(height, dtype=np.int16)[:, None], np.arange(width, dtype=np.int32)[None, :]
    base = np.empty((height, width, 3), dtype=np.int16)
    base[..., 0] = x * 255 // width
    base[..., 1] = y * 255 // height
    base[..., 2] = (x + y) * 255 // (width + height)
    base += rng.integers(-8, 8, base.shape, dtype=np.int16)
    return np.clip(base, 0, 255).astype(np.uint8)


@cache
def detections(n: int, height: int, width: int, seed: int) -> sv.Detections:
    rng = np.random.default_rng(seed)
    x1 = rng.integers(0, width - 200, n)
    y1 = rng.integers(0, height - 200, n)
    sizes = rng.integers(20, 200, (n, 2))
    xyxy = np.stack([x1, y1, x1 + sizes[:, 0], y1 + sizes[:, 1]], axis=1).astype(np.float32)
    mask = np.zeros((n, height, width), dtype=bool)
    for i, (a, b, c, d) in enumerate(xyxy.astype(int)):
        cv2.ellipse(
            mask[i].view(np.uint8),
            ((a + c) // 2, (b + d) // 2),
            ((c - a) // 2, (d - b) // 2),
            0,
            0,
            360,
            1,
            -1,
        )
    return sv.Detections(
        xyxy=xyxy,
        mask=mask,
        confidence=rng.random(n).astype(np.float32),
        class_id=rng.integers(0, 80, n),
        data={
            "class_name": np.array([f"class_{i % 80}" for i in range(n)]),
            "detection_id": np.array([f"d{i}" for i in range(n)]),
        },
    )


def block_payloads() -> list[dict]:
    """What a block runs on, on every backend: its inputs, and a block that sends them back."""
    return [
        {
            "id": "no-op",
            "title": "no-op",
            "code": 'def run(self, x):\n    return {"x": x}\n',
            "inputs": {"x": 1},
        },
        {
            "id": "1080p-frame",
            "title": "1080p frame in and out (255 - image)",
            "code": 'def run(self, image):\n    return {"image": 255 - image}\n',
            "inputs": {"image": frame(1080, 1920, 1)},
        },
        {
            "id": "100-detections",
            "title": "100 detections with 1080p masks, in and out",
            "code": 'def run(self, detections):\n    return {"detections": detections}\n',
            "inputs": {"detections": detections(100, 1080, 1920, 3)},
        },
    ]


def serialization_payloads() -> list[tuple[str, int, object]]:
    """(name, bytes of data it carries, value): what MB/s is counted against."""
    hd, uhd = frame(1080, 1920, 1), frame(2160, 3840, 2)
    dets = detections(100, 1080, 1920, 3)
    return [
        ("1080p BGR frame (ndarray)", hd.nbytes, hd),
        (
            "1080p image (WorkflowImageData)",
            hd.nbytes,
            WorkflowImageData(ImageParentMetadata("frame"), numpy_image=hd),
        ),
        (
            "4K image (WorkflowImageData)",
            uhd.nbytes,
            WorkflowImageData(ImageParentMetadata("frame"), numpy_image=uhd),
        ),
        ("100 detections, 1080p masks", dets.mask.nbytes + dets.xyxy.nbytes, dets),
    ]


def _write_forms(directory: Path, name: str, value: object) -> None:
    tree, _ = encode_outputs(value)
    (directory / f"{name}.cbor").write_bytes(cbor2.dumps(tree))
    json_tree, _ = encode_outputs(value, mode="json-compact")
    (directory / f"{name}.json").write_text(json.dumps(json_tree))


def emit(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    blocks = []
    for payload in block_payloads():
        _write_forms(directory, f"block-{payload['id']}", payload["inputs"])
        blocks.append(
            {
                "id": payload["id"],
                "title": payload["title"],
                "code": payload["code"],
                "file": f"block-{payload['id']}",
            }
        )
    serialization = []
    for i, (name, size, value) in enumerate(serialization_payloads()):
        _write_forms(directory, f"serialization-{i}", value)
        serialization.append({"name": name, "bytes": size, "file": f"serialization-{i}"})
    (directory / "index.json").write_text(
        json.dumps({"blocks": blocks, "serialization": serialization})
    )


if __name__ == "__main__":
    emit(Path(sys.argv[1]))
