"""The Python client against a live blockgate: every kind round trip, every error type,
async, retries and keys."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import threading
import time

import blockgate
import cv2
import numpy as np
import pytest
import supervision as sv
from blockgate import (
    AsyncClient,
    BadRequest,
    BlockCompileError,
    BlockRuntimeError,
    BlockTimeout,
    Client,
    Forbidden,
    OutputTooLarge,
    Overloaded,
    PayloadTooLarge,
    Unauthorized,
    VideoMetadata,
    WorkerCrashed,
    WorkflowImageData,
)

ECHO = "def run(self, value):\n    return {'value': value}\n"


@pytest.fixture(scope="module")
def client(server):
    with Client(server.url) as c:
        yield c


def test_the_packaged_codecs_are_the_runtimes_own():
    # The wheel carries the repository's serializers/ (one source), not a copy of its own.
    from blockgate.serializers import registry

    assert [kind.name for kind in registry.KINDS] == [
        "ndarray",
        "detections",
        "video_metadata",
        "image",
    ]


def test_plain_values_keep_their_types(client):
    value = {
        "float": 2.0,
        "negative_zero": -0.0,
        "nan": math.nan,
        "big": 2**70,
        "bytes": b"\x00\xff",
        "text": "é\u2603",
        "list": [1, None, True],
        "when": dt.datetime(2026, 11, 29, 3, 0, tzinfo=dt.timezone.utc),
    }
    result = client.run(ECHO, {"value": value})
    out = result.outputs["value"]
    assert type(out["float"]) is float and out["float"] == 2.0
    assert math.copysign(1, out["negative_zero"]) == -1
    assert math.isnan(out["nan"])
    assert out["big"] == 2**70
    assert out["bytes"] == b"\x00\xff"
    assert out["text"] == "é\u2603"
    assert out["list"] == [1, None, True]
    assert out["when"] == value["when"]
    assert result.backend == "local"
    assert set(result.timings_ms) >= {"queue", "acquire", "execute", "total"}


@pytest.mark.parametrize("dtype", ["uint8", "int64", "float16", "float32", "bool"])
def test_ndarray_round_trip(client, dtype):
    array = (np.arange(24).reshape(2, 3, 4) % 7).astype(dtype)
    out = client.run(ECHO, {"value": array}).outputs["value"]
    assert isinstance(out, np.ndarray)
    assert out.dtype == array.dtype and out.shape == array.shape
    assert np.array_equal(out, array)


def test_an_image_in_and_out_as_pixels_and_as_a_file(client):
    pixels = np.random.default_rng(1).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    code = (
        "def run(self, image):\n"
        "    flipped = WorkflowImageData.copy_and_replace(image, numpy_image=image.numpy_image[:, ::-1].copy())\n"
        "    return {'image': flipped, 'shape': list(image.numpy_image.shape)}\n"
    )
    result = client.run(code, {"image": blockgate.image(pixels, parent_id="camera-1")})
    out = result.outputs["image"]
    assert isinstance(out, WorkflowImageData)
    assert np.array_equal(out.numpy_image, pixels[:, ::-1])  # lossless: pixels, not a JPEG
    assert out.parent_metadata.parent_id == "camera-1"
    assert result.outputs["shape"] == [48, 64, 3]

    ok, png = cv2.imencode(".png", pixels)
    assert ok
    file_result = client.run(ECHO, {"value": blockgate.image(png.tobytes())})
    echoed = file_result.outputs["value"]
    assert np.array_equal(echoed.numpy_image, pixels)


def test_detections_round_trip(client):
    detections = sv.Detections(
        xyxy=np.array([[1.5, 2, 30, 40], [5, 6, 7, 8]], dtype=np.float32),
        confidence=np.array([0.9, 0.25], dtype=np.float32),
        class_id=np.array([0, 3]),
        mask=np.zeros((2, 10, 12), dtype=bool),
        data={"class_name": np.array(["cat", "dog"]), "score": np.array([1, 2])},
    )
    detections.mask[0, 2:5, 3:9] = True
    code = (
        "def run(self, detections):\n    return {'kept': detections[detections.confidence > 0.5]}\n"
    )
    kept = client.run(code, {"detections": detections}).outputs["kept"]
    assert isinstance(kept, sv.Detections)
    assert len(kept) == 1
    assert kept.xyxy.dtype == np.float32
    assert np.array_equal(kept.xyxy, detections.xyxy[:1])
    assert np.array_equal(kept.mask, detections.mask[:1])
    assert list(kept.data["class_name"]) == ["cat"]


def test_video_metadata_round_trip(client):
    metadata = VideoMetadata(
        video_identifier="cam-7",
        frame_number=42,
        frame_timestamp=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        fps=29.97,
        measured_fps=None,
        comes_from_video_file=False,
    )
    out = client.run(ECHO, {"value": metadata}).outputs["value"]
    assert isinstance(out, VideoMetadata)
    assert out.frame_timestamp == metadata.frame_timestamp
    assert out.frame_timestamp.utcoffset() == dt.timedelta(hours=2)
    assert (out.video_identifier, out.frame_number, out.fps) == ("cam-7", 42, 29.97)


def test_json_format_too(server):
    with Client(server.url, format="json") as c:
        result = c.run(ECHO, {"value": np.arange(6, dtype=np.int32).reshape(2, 3)})
    out = result.outputs["value"]
    assert isinstance(out, np.ndarray) and out.tolist() == [[0, 1, 2], [3, 4, 5]]


def test_init_code_stdout_and_debug_traces(client):
    result = client.run(
        "def run(self, x):\n    print('hello', x)\n    return {'y': self._init_results['base'] + x}\n",
        {"x": 2},
        init_code="def init():\n    return {'base': 40}\n",
    )
    assert result.outputs == {"y": 42}
    assert result.stdout == "hello 2\n"
    assert isinstance(result.cold_start, bool)
    assert result.debug_traces == []


def test_a_block_that_raises_says_where(client):
    code = "def run(self, x):\n    print('before')\n    y = x / 0\n    return {'y': y}\n"
    with pytest.raises(BlockRuntimeError) as caught:
        client.run(code, {"x": 1})
    error = caught.value
    assert error.status == 422
    assert error.line == 3
    assert error.function == "run"
    assert "x / 0" in error.snippet
    assert "ZeroDivisionError" in error.traceback
    assert error.stdout == "before\n"


def test_code_that_does_not_compile(client):
    with pytest.raises(BlockCompileError) as caught:
        client.run("def run(self:\n    return {}\n")
    assert caught.value.line == 1


def test_a_bad_request_names_the_field(client):
    with pytest.raises(BadRequest) as caught:
        client.run("def run(self):\n    return {}\n", workspace="no spaces allowed")
    assert caught.value.path == "workspace"


def test_a_timeout(client):
    with pytest.raises(BlockTimeout) as caught:
        client.run("def run(self):\n    while True: pass\n", timeout_ms=300)
    assert caught.value.status == 504


def test_a_crash(client):
    with pytest.raises(WorkerCrashed):
        client.run("import os\ndef run(self):\n    os._exit(3)\n")


@pytest.mark.parametrize("mib", [8.5, 12])  # blockgate's own 413, then Bun's bare one far over
def test_a_body_over_the_limit(server, mib):
    with Client(server.url) as c, pytest.raises(PayloadTooLarge) as caught:
        c.run(ECHO, {"value": np.zeros(int(mib * 1024 * 1024), dtype=np.uint8)})
    assert caught.value.status == 413


def test_outputs_over_the_limit(client):
    with pytest.raises(OutputTooLarge) as caught:
        client.run(
            "import numpy as np\ndef run(self):\n    return {'big': np.ones(10 * 2**20, np.uint8)}\n"
        )
    assert caught.value.status == 413
    assert client.run(ECHO, {"value": 1}).outputs == {"value": 1}  # the worker serves on


def test_async_client_runs_concurrently(server):
    async def main() -> list[int]:
        async with AsyncClient(server.url) as c:
            results = await asyncio.gather(
                *(c.run("def run(self, i):\n    return {'i': i * 2}\n", {"i": i}) for i in range(8))
            )
            with pytest.raises(BlockRuntimeError):
                await c.run("def run(self):\n    raise ValueError('async')\n")
        return [r.outputs["i"] for r in results]

    assert asyncio.run(main()) == [i * 2 for i in range(8)]


def test_keys_unauthorized_and_forbidden(keyed_server):
    with Client(keyed_server.url) as anonymous, pytest.raises(Unauthorized):
        anonymous.run(ECHO, {"value": 1})
    with Client(keyed_server.url, api_key="wrong") as wrong, pytest.raises(Unauthorized):
        wrong.run(ECHO, {"value": 1})
    with Client(keyed_server.url, api_key=keyed_server.key) as c:
        with pytest.raises(Forbidden):
            c.run(ECHO, {"value": 1}, workspace="not-mine")
        assert c.run(ECHO, {"value": 1}, workspace="tests").outputs == {"value": 1}


def test_overloaded_is_retried_after_retry_after(keyed_server):
    slow = "import time\ndef run(self, s):\n    time.sleep(s)\n    return {'slept': s}\n"
    with Client(keyed_server.url, api_key=keyed_server.key, retries=0) as c:
        c.run(slow, {"s": 0}, workspace="tests")  # warm: the block is loaded
        busy = threading.Thread(
            target=c.run, args=(slow, {"s": 1.5}), kwargs={"workspace": "tests"}
        )
        busy.start()
        time.sleep(0.3)
        with pytest.raises(Overloaded) as caught:
            c.run(ECHO, {"value": 1}, workspace="tests")
        assert caught.value.status == 429
        assert caught.value.retry_after >= 1
        busy.join()

    with Client(keyed_server.url, api_key=keyed_server.key, retries=3) as c:
        busy = threading.Thread(
            target=c.run, args=(slow, {"s": 1.0}), kwargs={"workspace": "tests"}
        )
        busy.start()
        time.sleep(0.3)
        started = time.monotonic()
        assert c.run(ECHO, {"value": 7}, workspace="tests").outputs == {"value": 7}
        assert time.monotonic() - started >= 0.9  # it waited out Retry-After at least once
        busy.join()


def test_retries_are_bounded(keyed_server):
    slow = "import time\ndef run(self, s):\n    time.sleep(s)\n    return {}\n"
    with Client(keyed_server.url, api_key=keyed_server.key, retries=1, max_retry_wait=0.2) as c:
        busy = threading.Thread(
            target=c.run, args=(slow, {"s": 2.0}), kwargs={"workspace": "tests"}
        )
        busy.start()
        time.sleep(0.3)
        started = time.monotonic()
        with pytest.raises(Overloaded):
            c.run(ECHO, {"value": 1}, workspace="tests")
        assert time.monotonic() - started < 1.5  # one retry after 0.2 s, then the error
        busy.join()
