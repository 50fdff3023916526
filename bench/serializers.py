"""Serialization throughput in Python, and the payloads the TS half measures too.

    .venv/bin/python bench/serializers.py [--quick]       one JSON line per measurement
    .venv/bin/python bench/serializers.py --emit DIR      writes <payload>.cbor / .json for TS

Per payload: CBOR as a worker does it (frames with sidecar buffers, through a pipe
stand-in), CBOR as one plain byte string, and the JSON form a JSON client or Roboflow's
webexec path would send (compact base64 for arrays, base64 image files, predictions with
polygons). Encode + decode of one payload is one operation; medians of repeated runs.
"""

from __future__ import annotations

import io
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "template")]

import cbor2  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import supervision as sv  # noqa: E402

from runtime.framing import frame_parts, read_frame  # noqa: E402
from serializers.image.entity import ImageParentMetadata, WorkflowImageData  # noqa: E402
from serializers.registry import decode_inputs, encode_outputs  # noqa: E402


def _frame(height: int, width: int, seed: int) -> np.ndarray:
    # A smooth picture with some noise: what a camera gives, so JPEG sizes are realistic.
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([(x * 255 // width), (y * 255 // height), ((x + y) * 255 // (width + height))], axis=-1)
    return np.clip(base + rng.integers(-8, 8, base.shape), 0, 255).astype(np.uint8)


def _detections(n: int, height: int, width: int, seed: int) -> sv.Detections:
    rng = np.random.default_rng(seed)
    x1 = rng.integers(0, width - 200, n)
    y1 = rng.integers(0, height - 200, n)
    sizes = rng.integers(20, 200, (n, 2))
    xyxy = np.stack([x1, y1, x1 + sizes[:, 0], y1 + sizes[:, 1]], axis=1).astype(np.float32)
    mask = np.zeros((n, height, width), dtype=bool)
    for i, (a, b, c, d) in enumerate(xyxy.astype(int)):
        cv2.ellipse(mask[i].view(np.uint8), ((a + c) // 2, (b + d) // 2), ((c - a) // 2, (d - b) // 2), 0, 0, 360, 1, -1)
    return sv.Detections(
        xyxy=xyxy,
        mask=mask,
        confidence=rng.random(n).astype(np.float32),
        class_id=rng.integers(0, 80, n),
        data={"class_name": np.array([f"class_{i % 80}" for i in range(n)]), "detection_id": np.array([f"d{i}" for i in range(n)])},
    )


def payloads() -> list[tuple[str, int, object]]:
    """(name, bytes of data it carries, value)."""
    hd, uhd = _frame(1080, 1920, 1), _frame(2160, 3840, 2)
    dets = _detections(100, 1080, 1920, 3)
    return [
        ("1080p BGR frame (ndarray)", hd.nbytes, hd),
        ("1080p image (WorkflowImageData)", hd.nbytes, WorkflowImageData(ImageParentMetadata("frame"), numpy_image=hd)),
        ("4K image (WorkflowImageData)", uhd.nbytes, WorkflowImageData(ImageParentMetadata("frame"), numpy_image=uhd)),
        ("100 detections, 1080p masks", dets.mask.nbytes + dets.xyxy.nbytes, dets),
    ]


def frame_round_trip(value: object) -> object:
    # The worker's path: outputs into frame parts (large arrays as sidecar buffers, not
    # copied), one copy into the "pipe" (join), one copy out of it into the frame buffer
    # (read_frame), whose arrays are then views.
    tree, buffers = encode_outputs({"x": value}, sidecar=True)
    pipe = io.BytesIO(b"".join(frame_parts(tree, buffers)))
    frame = read_frame(pipe, 1 << 31)
    return decode_inputs(frame.message, frame.sidecar)["x"]


def cbor_round_trip(value: object) -> object:
    tree, _ = encode_outputs({"x": value})
    return decode_inputs(cbor2.loads(cbor2.dumps(tree)))["x"]


def json_round_trip(value: object) -> object:
    tree, _ = encode_outputs({"x": value}, mode="json-compact")
    return decode_inputs(json.loads(json.dumps(tree)))["x"]


def _touch(value: object) -> None:
    # An image decodes its pixels lazily: make both sides pay for the pixels.
    if isinstance(value, WorkflowImageData):
        value.numpy_image  # noqa: B018


def median_ms(run, value, repeats: int) -> float:
    _touch(run(value))  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        _touch(run(value))
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def emit(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    index = []
    for i, (name, size, value) in enumerate(payloads()):
        tree, _ = encode_outputs(value)
        (directory / f"{i}.cbor").write_bytes(cbor2.dumps(tree))
        json_tree, _ = encode_outputs(value, mode="json-compact")
        (directory / f"{i}.json").write_text(json.dumps(json_tree))
        index.append({"name": name, "bytes": size, "file": str(i)})
    (directory / "index.json").write_text(json.dumps(index))


def main() -> None:
    if "--emit" in sys.argv:
        emit(Path(sys.argv[sys.argv.index("--emit") + 1]))
        return
    repeats = 5 if "--quick" in sys.argv else 20
    for name, size, value in payloads():
        for form, run in (("cbor", frame_round_trip), ("cbor-no-sidecar", cbor_round_trip), ("json", json_round_trip)):
            ms = median_ms(run, value, repeats)
            print(json.dumps({"payload": name, "form": form, "p50_ms": round(ms, 3), "mb_per_s": round(size / 1e6 / (ms / 1000))}), flush=True)


if __name__ == "__main__":
    main()
