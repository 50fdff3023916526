"""Serialization throughput in Python: CBOR through the serializer registry as a worker
does it (frames with sidecar buffers, through a pipe stand-in), CBOR as one plain byte
string, and the JSON/base64 form, for the payloads of bench/payloads.ts. Prints one JSON
line per measurement (median of repeated runs).

    .venv/bin/python bench/serializers.py [--quick]
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
import numpy as np  # noqa: E402

from runtime.framing import frame_parts, read_frame  # noqa: E402
from serializers.registry import decode_inputs, encode_outputs  # noqa: E402


def payloads() -> list[tuple[str, int, object]]:
    rng = np.random.default_rng(1)
    hd = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    uhd = rng.integers(0, 256, (2160, 3840, 3), dtype=np.uint8)
    return [("1080p BGR frame (ndarray)", hd.nbytes, hd), ("4K BGR frame (ndarray)", uhd.nbytes, uhd)]


def cbor_round_trip(value: object) -> object:
    tree, _ = encode_outputs({"x": value})
    return decode_inputs(cbor2.loads(cbor2.dumps(tree)))["x"]


def frame_round_trip(value: object) -> object:
    # The worker's path: outputs into frame parts (large arrays as sidecar buffers, not
    # copied), one copy into the "pipe" (join), one copy out of it into the frame buffer
    # (read_frame), whose arrays are then views.
    tree, buffers = encode_outputs({"x": value}, sidecar=True)
    pipe = io.BytesIO(b"".join(frame_parts(tree, buffers)))
    frame = read_frame(pipe, 1 << 31)
    return decode_inputs(frame.message, frame.sidecar)["x"]


def json_round_trip(value: object) -> object:
    tree, _ = encode_outputs({"x": value}, mode="json-compact")
    return decode_inputs(json.loads(json.dumps(tree)))["x"]


def median_ms(run, value, repeats: int) -> float:
    run(value)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(value)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    repeats = 5 if "--quick" in sys.argv else 20
    for name, size, value in payloads():
        for form, run in (("cbor", frame_round_trip), ("cbor-no-sidecar", cbor_round_trip), ("json-base64", json_round_trip)):
            ms = median_ms(run, value, repeats)
            print(json.dumps({"payload": name, "form": form, "p50_ms": round(ms, 3), "mb_per_s": round(size / 1e6 / (ms / 1000))}))


if __name__ == "__main__":
    main()
