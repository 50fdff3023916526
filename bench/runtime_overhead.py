"""The Python half of a warm run, without the sandbox or the socket: a frame read, the
executor's handling, the post-run checks and the reply encoded, as a worker does them
(template/runtime/worker.py), in this process. The time it does not spend in the block is
the runtime's share of a run's overhead; the profile says where it goes.

    .venv/bin/python bench/runtime_overhead.py [--profile]

Blocks: the no-op block of the bench, and Inference's 640x480 brightness step with its
image as JPEG bytes (the websocket transport's form), whose block decodes the pixels.
"""

from __future__ import annotations

import cProfile
import hashlib
import io
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "template"), str(ROOT)]

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from runtime.executor import Executor  # noqa: E402
from runtime.framing import encode_frame, read_frame  # noqa: E402
from runtime.prelude import preload  # noqa: E402
from runtime.selfstat import SELF  # noqa: E402
from runtime.worker import _end_what_the_run_left, encode_reply  # noqa: E402

NOOP = 'def run(self, x):\n    return {"x": x}\n'
BRIGHTNESS = """
def run(self, image: WorkflowImageData) -> BlockResult:
    pixels = image.numpy_image
    return {"brightness": float(pixels.mean()), "height": pixels.shape[0]}
"""


def scene_jpeg() -> bytes:
    y, x = np.mgrid[0:480, 0:640]
    image = np.stack([x * 255 // 639, y * 255 // 479, (x + y) * 255 // 1118], axis=-1)
    image = image.astype(np.uint8)
    cv2.circle(image, (320, 240), 120, (30, 200, 90), -1)
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


def median_us(function, count: int) -> float:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1e6)
    return sorted(samples)[count // 2]


def main() -> None:
    preload()
    executor = Executor(
        cache_size=8, max_capture_bytes=1 << 20, sidecar_outputs=True, max_output_bytes=64 << 20
    )
    threads = SELF.threads()
    jpeg = scene_jpeg()
    cases = {
        "no-op": (NOOP, {"x": 1}, "cbor"),
        "inference-640x480": (
            BRIGHTNESS,
            {"image": {"_type": "workflow_image", "_jpeg_bytes": jpeg, "parent_id": "image"}},
            "msgpack-webexec",
        ),
    }
    for name, (code, inputs, output_format) in cases.items():
        block_hash = hashlib.sha256(code.encode()).hexdigest()
        loaded = executor.handle(
            {
                "op": "load",
                "hash": block_hash,
                "code": {
                    "run_function_code": code,
                    "run_function_name": "run",
                    "init_function_code": None,
                    "init_function_name": "init",
                    "imports": [],
                },
            }
        )
        assert loaded["ok"], loaded
        frame = encode_frame(
            {
                "op": "run",
                "hash": block_hash,
                "inputs": inputs,
                "context": {"step_name": "step", "workflow_execution_id": "bench"},
                "output_format": output_format,
            }
        )
        block_ms: list[float] = []

        def one(frame=frame, block_ms=block_ms) -> None:
            message = read_frame(io.BytesIO(frame), 64 << 20)
            reply = executor.handle(message.message, message.sidecar)
            _end_what_the_run_left(reply, threads)
            encode_reply(reply, 64 << 20)
            block_ms.append(reply["timings_ms"]["execute"])

        for _ in range(100):
            one()
        count = 2000 if name == "no-op" else 300
        block_ms.clear()
        total = median_us(one, count)
        block = sorted(block_ms)[len(block_ms) // 2] * 1000
        print(
            f"{name}: {total:.0f} µs per request, the block {block:.0f} µs, "
            f"the runtime {total - block:.0f} µs"
        )
        if "--profile" in sys.argv:
            profile = cProfile.Profile()
            profile.enable()
            for _ in range(count):
                one()
            profile.disable()
            pstats.Stats(profile).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
