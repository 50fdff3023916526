"""The worker: the serve loop in process, then the real ``python -m runtime.worker`` over pipes."""

from __future__ import annotations

import io
import json
import mmap
import os
import select
import struct
import subprocess
import sys
from typing import Any

import cbor2
import pytest
from conftest import TEMPLATE_DIR, code

import runtime
from runtime.executor import Executor
from runtime.framing import encode_frame, read_frame
from runtime.worker import serve

LIMIT = 1 << 20


def with_outputs(frame) -> dict[str, Any]:
    """The reply, with the finished outputs document the worker sent decoded as `outputs`."""
    message = frame.message
    document = message.get("outputs_document")
    if document is not None:
        raw = b"".join(
            bytes(frame.sidecar[p.value[0] : p.value[0] + p.value[1]])
            if isinstance(p, cbor2.CBORTag)
            else bytes(p)
            for p in document["pieces"]
        )
        message["outputs"] = cbor2.loads(raw) if document["format"] == "cbor" else json.loads(raw)
    return message


def serve_frames(frames: bytes, max_frame_bytes: int = LIMIT) -> tuple[int, list[dict[str, Any]]]:
    """Run the serve loop over ``frames``; return its exit code and every frame it wrote."""
    out = io.BytesIO()
    status = serve(
        io.BytesIO(frames), out, Executor(cache_size=4, max_capture_bytes=4096), max_frame_bytes
    )
    out.seek(0)
    replies = []
    while (frame := read_frame(out, LIMIT)) is not None:
        replies.append(with_outputs(frame))
    return status, replies


def test_serve_answers_in_order_and_exits_zero_on_eof():
    status, replies = serve_frames(
        encode_frame(
            {
                "op": "load",
                "hash": "h",
                "code": code("def run(self, a, b):\n    return {'sum': a + b}\n"),
            }
        )
        + encode_frame({"op": "run", "hash": "h", "inputs": {"a": 10.5, "b": 20.3}, "context": {}})
    )
    assert status == 0
    ready, loaded, ran = replies
    assert ready == {"op": "ready", "version": runtime.__version__, "pid": os.getpid()}
    assert loaded["ok"] and loaded["hash"] == "h"
    assert ran["ok"] and ran["outputs"] == {"sum": 30.8}


def test_objects_of_no_kind_go_back_as_roboflows_object_marker_and_serving_continues():
    status, replies = serve_frames(
        encode_frame(
            {
                "op": "load",
                "hash": "h",
                "code": code(
                    "class Foo:\n    def __str__(self):\n        return 'a Foo'\ndef run(self):\n    print('made a Foo')\n    return {'result': [1, 2, Foo()]}\n"
                ),
            }
        )
        + encode_frame({"op": "run", "hash": "h", "inputs": {}, "context": {}})
        + encode_frame({"op": "ping"})
    )
    assert status == 0
    assert replies[2]["ok"] is True
    assert replies[2]["outputs"] == {
        "result": [1, 2, {"_type": "object", "class": "Foo", "value": "a Foo"}]
    }
    assert replies[2]["stdout"] == "made a Foo\n"
    assert replies[3] == {"ok": True, "version": runtime.__version__}


def test_oversized_outputs_are_refused_with_the_limit():
    status, replies = serve_frames(
        encode_frame(
            {
                "op": "load",
                "hash": "h",
                "code": code("def run(self):\n    return {'blob': b'x' * 5000}\n"),
            }
        )
        + encode_frame({"op": "run", "hash": "h", "inputs": {}, "context": {}}),
        max_frame_bytes=4096,
    )
    assert status == 0
    error = replies[2]["error"]
    assert error["type"] == "OutputTooLarge"
    assert "over the frame limit of 4096 bytes" in error["message"]


def test_outputs_in_the_shared_region_count_against_the_frame_limit():
    # The proxy charges region references to the frame's budget: a reply over it must be
    # refused here, as OutputTooLarge, not sent (the proxy would take it for a forged frame).
    region = mmap.mmap(-1, 8 << 20)
    executor = Executor(cache_size=4, max_capture_bytes=4096, sidecar_outputs=True, region=region)
    big = code("def run(self, n):\n    return {'a': np.zeros(n, dtype=np.uint8)}\n")
    out = io.BytesIO()
    frames = encode_frame({"op": "load", "hash": "big", "code": big})
    for n in (1 << 20, 3 << 20):
        frames += encode_frame({"op": "run", "hash": "big", "inputs": {"n": n}, "context": {}})
    assert serve(io.BytesIO(frames), out, executor, 2 << 20) == 0
    out.seek(0)
    replies = []
    while (frame := read_frame(out, LIMIT)) is not None:
        replies.append(frame.message)
    assert replies[2]["ok"] is True  # 1 MiB through the region: within the 2 MiB limit
    assert replies[3]["ok"] is False and replies[3]["error"]["type"] == "OutputTooLarge"


def test_bad_cbor_frame_is_a_bad_request_and_serving_continues():
    status, replies = serve_frames(
        struct.pack(">I", 5) + struct.pack(">I", 1) + b"\xff" + encode_frame({"op": "ping"})
    )
    assert status == 0
    assert replies[1]["error"]["type"] == "BadRequest"
    assert replies[1]["error"]["message"].startswith("frame: invalid CBOR")
    assert replies[2]["ok"] is True


def test_oversized_frame_is_answered_then_the_worker_stops():
    status, replies = serve_frames(
        struct.pack(">I", 10_000) + b"\x00" * 10_000, max_frame_bytes=1000
    )
    assert status == 1
    assert replies[1]["error"]["type"] == "BadRequest"
    assert "over the limit of 1000 bytes" in replies[1]["error"]["message"]


def test_a_block_that_leaves_a_thread_running_asks_to_retire_its_worker():
    leaves = code(
        "import threading, time\ndef run(self):\n    threading.Thread(target=time.sleep, args=(2,), daemon=True).start()\n    return {}\n"
    )
    status, replies = serve_frames(
        encode_frame({"op": "load", "hash": "t", "code": leaves})
        + encode_frame({"op": "run", "hash": "t", "inputs": {}, "context": {}})
    )
    assert status == 0
    assert "retire" not in replies[1]  # loading started nothing
    assert replies[2]["ok"] is True and replies[2]["retire"] == "the block left a thread running"


def test_truncated_stream_exits_nonzero():
    status, replies = serve_frames(encode_frame({"op": "ping"})[:-1])
    assert status == 1 and len(replies) == 1


# --- the real process ---------------------------------------------------------------


class WorkerProcess:
    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": f"{TEMPLATE_DIR}:{TEMPLATE_DIR.parent}"}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "runtime.worker",
                "--max-capture-bytes",
                "4096",
                "--block-cache-size",
                "4",
                "--max-frame-bytes",
                str(LIMIT),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )

    def receive(self, timeout: float = 30.0) -> dict[str, Any]:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, "worker sent no frame in time"
        frame = read_frame(self.proc.stdout, LIMIT)
        assert frame is not None, "worker closed its channel"
        return with_outputs(frame)

    def send(self, message: dict[str, Any]) -> dict[str, Any]:
        self.proc.stdin.write(encode_frame(message))
        self.proc.stdin.flush()
        return self.receive()

    def close(self) -> tuple[int, bytes]:
        self.proc.stdin.close()
        status = self.proc.wait(timeout=30)
        stderr = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return status, stderr


@pytest.fixture(scope="module")
def worker():
    process = WorkerProcess()
    ready = process.receive()
    assert ready["op"] == "ready" and ready["version"] == runtime.__version__
    assert ready["pid"] == process.proc.pid
    yield process
    if process.proc.poll() is None:
        process.proc.kill()
        process.proc.wait()


def test_worker_loads_and_runs(worker):
    loaded = worker.send(
        {
            "op": "load",
            "hash": "sum",
            "code": code("def run(self, a, b):\n    return {'sum': a + b}\n"),
        }
    )
    assert loaded["ok"] and loaded["evicted"] == []
    ran = worker.send(
        {
            "op": "run",
            "hash": "sum",
            "inputs": {"a": 10.5, "b": 20.3},
            "context": {"step_name": "s"},
        }
    )
    assert ran["ok"] and ran["outputs"] == {"sum": 30.8}


def test_writes_to_fd1_do_not_corrupt_the_channel(worker):
    junk = code(
        """
        import ctypes, subprocess
        def run(self):
            os.write(1, b"junk")
            os.write(1, b"\\x00\\x00\\x00\\x05more junk")  # even a plausible header
            libc = ctypes.CDLL(None)
            libc.printf(b"from C\\n")
            libc.fflush(None)
            subprocess.run(["echo", "child output"], check=True)
            print("captured")
            return {"fine": True}
        """
    )
    assert worker.send({"op": "load", "hash": "junk", "code": junk})["ok"]
    ran = worker.send({"op": "run", "hash": "junk", "inputs": {}, "context": {}})
    assert ran["ok"] and ran["outputs"] == {"fine": True}
    assert ran["stdout"] == "captured\n"
    assert worker.send({"op": "ping"}) == {"ok": True, "version": runtime.__version__}


def test_stdin_of_a_block_is_empty(worker):
    assert worker.send(
        {
            "op": "load",
            "hash": "stdin",
            "code": code("import sys\ndef run(self):\n    return {'read': sys.stdin.read()}\n"),
        }
    )["ok"]
    assert worker.send({"op": "run", "hash": "stdin", "inputs": {}, "context": {}})["outputs"] == {
        "read": ""
    }


def test_sys_exit_does_not_end_the_worker(worker):
    assert worker.send(
        {
            "op": "load",
            "hash": "exit",
            "code": code("import sys\ndef run(self):\n    sys.exit(1)\n"),
        }
    )["ok"]
    reply = worker.send({"op": "run", "hash": "exit", "inputs": {}, "context": {}})
    assert reply["ok"] is False and reply["error"]["message"] == "SystemExit: 1"
    assert worker.proc.poll() is None
    assert worker.send({"op": "ping"})["ok"] is True


def test_eof_ends_the_worker_with_status_zero():
    process = WorkerProcess()
    assert process.receive()["op"] == "ready"
    status, stderr = process.close()
    assert status == 0, stderr.decode(errors="replace")
