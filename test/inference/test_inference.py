"""The real Roboflow Inference client against a running blockgate.

Run by test/inference/run.ts (`npm run test:inference`) with the `inference-core` venv's
Python and Inference's own settings for remote execution already in the environment
(WORKFLOWS_CUSTOM_PYTHON_EXECUTION_MODE=modal, MODAL_TOKEN_ID/SECRET, MODAL_WEB_ENDPOINT_URL
pointing at blockgate). Each test runs a workflow definition with a custom Python block
through Inference's own execution engine and checks what Inference itself returns.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.request

import numpy as np
import pytest
import supervision as sv
from inference.core.workflows.execution_engine.core import ExecutionEngine
from inference.core.workflows.execution_engine.entities.base import WorkflowImageData

if __name__ != "__main__":
    assert os.environ.get("WORKFLOWS_CUSTOM_PYTHON_EXECUTION_MODE") == "modal", (
        "run through test/inference/run.ts"
    )


def workflow(
    block_type: str,
    code: str,
    inputs: dict,
    outputs: dict,
    *,
    parameters: list,
    step: str = "",
    **manifest,
) -> dict:
    """One custom Python block (defined inline, no Roboflow API), fed from workflow inputs."""
    step = step or block_type.lower()
    return {
        "version": "1.0",
        "inputs": parameters,
        "dynamic_blocks_definitions": [
            {
                "type": "DynamicBlockDefinition",
                "manifest": {
                    "type": "ManifestDescription",
                    "block_type": block_type,
                    "inputs": {
                        name: {"type": "DynamicInputDefinition", "selector_types": [selector]}
                        for name, selector in inputs.items()
                    },
                    "outputs": {
                        name: {"type": "DynamicOutputDefinition", "kind": kind}
                        for name, kind in outputs.items()
                    },
                    **manifest,
                },
                "code": {
                    "type": "PythonCode",
                    "run_function_code": textwrap.dedent(code).lstrip("\n"),
                },
            }
        ],
        "steps": [
            {"type": block_type, "name": step, **{name: f"$inputs.{name}" for name in inputs}}
        ],
        "outputs": [
            {"type": "JsonField", "name": name, "selector": f"$steps.{step}.{name}"}
            for name in outputs
        ],
    }


WEBSOCKET = os.environ.get("WEBEXEC_TRANSPORT") == "websocket"
websocket_only = pytest.mark.skipif(not WEBSOCKET, reason="a case of the websocket transport")


def relay_stats() -> dict:
    """What run.ts's front saw of the websocket traffic: connections, heartbeats, closes."""
    with urllib.request.urlopen(os.environ["BLOCKGATE_RELAY_STATS_URL"]) as response:
        return json.load(response)


def run(definition: dict, **parameters) -> list:
    engine = ExecutionEngine.init(
        workflow_definition=definition, init_parameters={"workflows_core.api_key": None}
    )
    return engine.run(runtime_parameters=parameters)


def sum_workflow(step: str = "") -> dict:
    return workflow(
        "Sum",
        """
        def run(self, a: float, b: float) -> BlockResult:
            return {"sum": a + b}
        """,
        {"a": "input_parameter", "b": "input_parameter"},
        {"sum": []},
        parameters=[
            {"type": "WorkflowParameter", "name": "a"},
            {"type": "WorkflowParameter", "name": "b"},
        ],
        step=step,
    )


def test_a_sum():
    assert run(sum_workflow(), a=10.5, b=20.3) == [{"sum": 30.8}]
    # The second run sends only the code's hash; blockgate still holds the code.
    assert run(sum_workflow(), a=1, b=2) == [{"sum": 3}]


def test_code_blockgate_does_not_hold_is_sent_again():
    # The same code, so Inference sends only its hash; run.ts serves the step `after_restart`
    # from a blockgate that has just restarted: UnknownCodeHash, and the client resends the code.
    before = relay_stats() if WEBSOCKET else None
    assert run(sum_workflow(step="after_restart"), a=2, b=3) == [{"sum": 5}]
    if WEBSOCKET:  # on the same socket, which the restart left open
        after = relay_stats()
        assert after["unknownCodeHash"] == before["unknownCodeHash"] + 1, (before, after)
        assert after["connections"] == before["connections"], (before, after)


@websocket_only
def test_an_idle_connection_heartbeats_and_stays_open():
    assert run(sum_workflow(), a=1, b=1) == [{"sum": 2}]
    before = relay_stats()
    # Longer than blockgate's idle timeout: only the client's heartbeats keep the socket.
    time.sleep(float(os.environ["BLOCKGATE_WS_IDLE_TIMEOUT_S"]) * 2.5)
    assert run(sum_workflow(), a=2, b=2) == [{"sum": 4}]
    after = relay_stats()
    assert after["heartbeats"] >= before["heartbeats"] + 2, (before, after)
    assert after["connections"] == before["connections"], (before, after)


@websocket_only
def test_a_server_close_mid_session_is_survived():
    assert run(sum_workflow(), a=1, b=2) == [{"sum": 3}]
    before = relay_stats()
    # run.ts has blockgate close this socket instead of answering (`closing`, 1000): the
    # client resends on a new connection, and the run still gives its answer.
    assert run(sum_workflow(step="server_closes"), a=3, b=4) == [{"sum": 7}]
    after = relay_stats()
    assert after["closedByServer"] == before["closedByServer"] + 1, (before, after)
    assert after["connections"] == before["connections"] + 1, (before, after)
    assert run(sum_workflow(), a=5, b=6) == [{"sum": 11}]


def test_an_image_inversion():
    definition = workflow(
        "Invert",
        """
        def run(self, image: WorkflowImageData) -> BlockResult:
            inverted = WorkflowImageData.copy_and_replace(origin_image_data=image, numpy_image=255 - image.numpy_image)
            return {"inverted": inverted, "shape": list(image.numpy_image.shape)}
        """,
        {"image": "input_image"},
        {"inverted": ["image"], "shape": []},
        parameters=[{"type": "WorkflowImage", "name": "image"}],
    )
    image = np.zeros((48, 64, 3), dtype=np.uint8)
    image[:, :32] = (200, 100, 50)
    image[:, 32:] = (10, 240, 128)
    [result] = run(definition, image=image)
    assert result["shape"] == [48, 64, 3]
    inverted = result["inverted"]
    assert isinstance(inverted, WorkflowImageData)
    assert inverted.numpy_image.shape == (48, 64, 3)
    # Inference's client sends the image as a JPEG (quality 95): exact but for a few levels,
    # except along the colour edge, which JPEG blurs.
    difference = np.abs(inverted.numpy_image.astype(int) - (255 - image.astype(int)))
    away_from_the_edge = np.concatenate([difference[:, :24], difference[:, 40:]], axis=1)
    assert away_from_the_edge.max() <= 4, away_from_the_edge.max()
    assert difference.mean() < 2, difference.mean()


def test_a_payload_over_one_mib_is_chunked_both_ways():
    definition = workflow(
        "Noise",
        """
        def run(self, image: WorkflowImageData, blob: str) -> BlockResult:
            inverted = WorkflowImageData.copy_and_replace(origin_image_data=image, numpy_image=255 - image.numpy_image)
            return {"inverted": inverted, "blob_back": blob, "blob_length": len(blob)}
        """,
        {"image": "input_image", "blob": "input_parameter"},
        {"inverted": ["image"], "blob_back": [], "blob_length": []},
        parameters=[
            {"type": "WorkflowImage", "name": "image"},
            {"type": "WorkflowParameter", "name": "blob"},
        ],
    )
    # Over 1 MiB each way (the text goes in and comes back); compressible, so its recording
    # stays small in git.
    image = np.random.default_rng(7).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    blob = "a" + "x" * (1_500_000 - 2) + "z"
    [result] = run(definition, image=image, blob=blob)
    assert result["blob_length"] == len(blob)
    assert result["blob_back"] == blob
    assert result["inverted"].numpy_image.shape == (64, 64, 3)


def test_a_detections_filter():
    definition = workflow(
        "KeepConfident",
        """
        def run(self, predictions: sv.Detections, threshold: float) -> BlockResult:
            kept = predictions[predictions.confidence >= threshold]
            return {"kept": kept, "count": len(kept)}
        """,
        {"predictions": "input_parameter", "threshold": "input_parameter"},
        {"kept": ["object_detection_prediction"], "count": []},
        parameters=[
            {
                "type": "WorkflowParameter",
                "name": "predictions",
                "kind": ["object_detection_prediction"],
            },
            {"type": "WorkflowParameter", "name": "threshold"},
        ],
    )
    detections = sv.Detections(
        xyxy=np.array([[10, 20, 30, 60], [5, 5, 15, 15], [40, 10, 90, 50]], dtype=float),
        confidence=np.array([0.9, 0.2, 0.75]),
        class_id=np.array([0, 1, 0]),
        data={
            "class_name": np.array(["dog", "cat", "dog"]),
            "detection_id": np.array(["d-1", "d-2", "d-3"]),
            "image_dimensions": np.array([[100, 120]] * 3),
        },
    )
    [result] = run(definition, predictions=detections, threshold=0.5)
    kept = result["kept"]
    assert isinstance(kept, sv.Detections)
    assert result["count"] == 2
    np.testing.assert_allclose(kept.xyxy, [[10, 20, 30, 60], [40, 10, 90, 50]])
    np.testing.assert_allclose(kept.confidence, [0.9, 0.75])
    assert kept.class_id.tolist() == [0, 0]
    assert kept.data["class_name"].tolist() == ["dog", "dog"]
    assert kept.data["detection_id"].tolist() == ["d-1", "d-3"]


RAISES = workflow(
    "Raiser",
    """
    def run(self, value: float) -> BlockResult:
        doubled = value * 2
        return {"ratio": doubled / (value - value)}
    """,
    {"value": "input_parameter"},
    {"ratio": []},
    parameters=[{"type": "WorkflowParameter", "name": "value"}],
)


def error_message(definition: dict, **parameters) -> str:
    with pytest.raises(Exception) as raised:
        run(definition, **parameters)
    return str(raised.value)


def test_a_block_that_raises_gives_inferences_own_message_and_line():
    message = error_message(RAISES, value=3)
    print("blockgate:", message)
    assert "Error in line 3, in run: ZeroDivisionError: division by zero" in message
    # The same workflow run by Inference itself, in-process (local mode), says the same.
    local = subprocess.run(
        [sys.executable, __file__, "--local-error"],
        env={**os.environ, "WORKFLOWS_CUSTOM_PYTHON_EXECUTION_MODE": "local"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert local.returncode == 0, local.stderr[-3000:]
    local_message = json.loads(local.stdout.strip().splitlines()[-1])
    print("inference local:", local_message)
    assert local_message == message


def test_init_in_the_run_code_and_batch_inputs():
    # Both fail on Modal: its sandbox gives no self._init_results and reads no Batch.
    definition = workflow(
        "BatchBrightness",
        """
        def init():
            return {"offset": 1000}

        def run(self, image: Batch[WorkflowImageData]) -> BlockResult:
            assert isinstance(image, Batch), type(image)
            return [
                {"brightness": round(float(element.numpy_image.mean())) + self._init_results["offset"], "index": list(index)}
                for index, element in zip(image.indices, image)
            ]
        """,
        {"image": "input_image"},
        {"brightness": [], "index": []},
        parameters=[{"type": "WorkflowImage", "name": "image"}],
        accepts_batch_input=True,
    )
    images = [np.full((16, 16, 3), 40, dtype=np.uint8), np.full((16, 16, 3), 90, dtype=np.uint8)]
    assert run(definition, image=images) == [
        {"brightness": 1040, "index": [0]},
        {"brightness": 1090, "index": [1]},
    ]


if __name__ == "__main__" and sys.argv[1:] == ["--local-error"]:
    try:
        run(RAISES, value=3)
    except Exception as error:  # noqa: BLE001 - the message is the point
        print(json.dumps(str(error)))
    else:
        sys.exit("the block did not raise")
