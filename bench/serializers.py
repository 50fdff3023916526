"""Serialization in Python, on the payloads bench/payloads.py builds (the TS half measures the same).

    .venv/bin/python bench/serializers.py [--quick]   one JSON line per payload and form:
                                                      {payload, form, bytes, rounds: [[ms, …], …]}

Per payload: CBOR as a worker does it (frames with sidecar buffers, through a pipe
stand-in), CBOR as one plain byte string, and the JSON form a JSON client or Roboflow's
webexec path would send (compact base64 for arrays, base64 image files, predictions with
polygons). Encode + decode of one payload is one operation; each round a few of them.
For detections also `packbits`: the masks packed to bits and back, nothing else (the floor
that bench/targets.ts holds the masks' round trip through blockgate to).
"""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "template"), str(ROOT / "bench")]

import cbor2  # noqa: E402
import numpy as np  # noqa: E402
import supervision as sv  # noqa: E402
from payloads import serialization_payloads  # noqa: E402

from runtime.framing import frame_parts, read_frame  # noqa: E402
from serializers.image.entity import WorkflowImageData  # noqa: E402
from serializers.registry import decode_inputs, encode_outputs  # noqa: E402


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


def packbits_round_trip(value: object) -> object:
    # The floor under moving masks: only packing the booleans to bits and back, in process.
    masks = value.mask
    packed = np.packbits(masks, axis=None)
    return np.unpackbits(packed, count=masks.size).reshape(masks.shape).view(bool)


def _touch(value: object) -> None:
    # An image decodes its pixels lazily: make both sides pay for the pixels.
    if isinstance(value, WorkflowImageData):
        value.numpy_image  # noqa: B018


def timed_rounds(run, value, rounds: int, repeats: int) -> list[list[float]]:
    _touch(run(value))  # warm-up, not counted
    samples = []
    for _ in range(rounds):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            _touch(run(value))
            times.append((time.perf_counter() - start) * 1000)
        samples.append(times)
    return samples


def main() -> None:
    quick = "--quick" in sys.argv
    rounds, repeats = (3, 3) if quick else (5, 8)
    for name, size, value in serialization_payloads():
        for form, run in (
            ("cbor", frame_round_trip),
            ("cbor-no-sidecar", cbor_round_trip),
            ("json-base64", json_round_trip),
        ):
            samples = timed_rounds(run, value, rounds, repeats)
            print(
                json.dumps({"payload": name, "form": form, "bytes": size, "rounds": samples}),
                flush=True,
            )
        if isinstance(value, sv.Detections):
            samples = timed_rounds(packbits_round_trip, value, rounds, repeats)
            print(
                json.dumps({"payload": name, "form": "packbits", "bytes": size, "rounds": samples}),
                flush=True,
            )


if __name__ == "__main__":
    main()
