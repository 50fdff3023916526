"""One mode of the Inference scenario (bench/inference.ts), run with the inference-core venv's
Python: a workflow with one custom Python block that takes a 640x480 image, run through
Inference's own ExecutionEngine, in local mode (in-process, as Inference runs it by
default) or remote mode over either transport (blockgate at MODAL_WEB_ENDPOINT_URL).

    python inference_driver.py local|http|websocket WARMUPS RUNS

Prints one JSON line: each measured run's wall time, and how much of it went to the
client's own steps (inputs serialized, the exchange with the server, the result read),
measured by wrapping the client's functions of those names.
"""

from __future__ import annotations

import json
import os
import sys
import time

MODE, WARMUPS, RUNS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
# Read at import time by Inference: set before it is imported.
os.environ["WORKFLOWS_CUSTOM_PYTHON_EXECUTION_MODE"] = "local" if MODE == "local" else "modal"
if MODE != "local":
    os.environ["WEBEXEC_TRANSPORT"] = MODE

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from inference.core.workflows.execution_engine.core import ExecutionEngine  # noqa: E402

BLOCK = """
def run(self, image: WorkflowImageData) -> BlockResult:
    pixels = image.numpy_image
    return {"brightness": float(pixels.mean()), "height": pixels.shape[0]}
"""

DEFINITION = {
    "version": "1.0",
    "inputs": [{"type": "WorkflowImage", "name": "image"}],
    "dynamic_blocks_definitions": [
        {
            "type": "DynamicBlockDefinition",
            "manifest": {
                "type": "ManifestDescription",
                "block_type": "Brightness",
                "inputs": {
                    "image": {"type": "DynamicInputDefinition", "selector_types": ["input_image"]}
                },
                "outputs": {
                    "brightness": {"type": "DynamicOutputDefinition", "kind": []},
                    "height": {"type": "DynamicOutputDefinition", "kind": []},
                },
            },
            "code": {"type": "PythonCode", "run_function_code": BLOCK},
        }
    ],
    "steps": [{"type": "Brightness", "name": "brightness", "image": "$inputs.image"}],
    "outputs": [
        {"type": "JsonField", "name": name, "selector": f"$steps.brightness.{name}"}
        for name in ("brightness", "height")
    ],
}


def scene() -> np.ndarray:
    """A 640x480 picture-like frame (gradients and shapes): it compresses as a photo does."""
    y, x = np.mgrid[0:480, 0:640]
    image = np.stack([x * 255 // 639, y * 255 // 479, (x + y) * 255 // 1118], axis=-1)
    image = image.astype(np.uint8)
    cv2.circle(image, (320, 240), 120, (30, 200, 90), -1)
    cv2.rectangle(image, (40, 300), (260, 440), (200, 40, 40), -1)
    return image


# The client's own steps, timed where it does them (per transport, by the functions' names).
STEPS = {
    "http": {
        "serialize": ("module", "serialize_for_modal_remote_execution"),
        "exchange": ("ModalExecutor", "_post_execute"),
        "read_result": ("module", "deserialize_for_modal_remote_execution"),
    },
    "websocket": {
        "serialize": ("module", "serialize_inputs_for_msgpack"),
        "exchange": ("WebSocketModalExecutor", "_send_recv_with_retry"),
        "read_result": ("module", "_deserialize_msgpack_result"),
    },
}
spent: dict[str, float] = {}


def timed(name, function):
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[name] = spent.get(name, 0.0) + (time.perf_counter() - started) * 1000

    return wrapper


if MODE in STEPS:
    from roboflow_workflows.execution_engine.v1.dynamic_blocks import modal_executor

    for name, (owner, attribute) in STEPS[MODE].items():
        target = modal_executor if owner == "module" else getattr(modal_executor, owner)
        setattr(target, attribute, timed(name, getattr(target, attribute)))

engine = ExecutionEngine.init(
    workflow_definition=DEFINITION, init_parameters={"workflows_core.api_key": None}
)
image = scene()
expected = float(image.mean())
runs_ms: list[float] = []
steps_ms: list[dict[str, float]] = []
for index in range(WARMUPS + RUNS):
    spent.clear()
    started = time.perf_counter()
    [result] = engine.run(runtime_parameters={"image": image})
    elapsed = (time.perf_counter() - started) * 1000
    # JPEG on the wire (remote modes): the brightness is close, not equal.
    assert abs(result["brightness"] - expected) < 2, result
    assert result["height"] == 480, result
    if index >= WARMUPS:
        runs_ms.append(elapsed)
        steps_ms.append(dict(spent))
print(json.dumps({"mode": MODE, "runs_ms": runs_ms, "steps_ms": steps_ms}))
