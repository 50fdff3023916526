"""The server entry point: the real ``python -m runtime.server`` on a Unix socket and on TCP."""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import TEMPLATE_DIR, code
from test_worker import WorkerProcess, with_outputs

import runtime
from runtime.framing import Frame, encode_frame, read_frame
from serializers.registry import decode_inputs, encode_outputs

FRAME_TYPE = "application/vnd.blockgate.frame"
MAX_FRAME_BYTES = 1 << 20
REPLY_LIMIT = 64 << 20


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix socket: the way the offline E2B stand-in reaches the server."""

    def __init__(self, path: str, timeout: float = 30.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


class ServerProcess:
    def __init__(self, tmp: Path, *args: str) -> None:
        self.stderr_path = tmp / "server.stderr"
        self.stderr = open(self.stderr_path, "wb")
        env = {**os.environ, "PYTHONPATH": f"{TEMPLATE_DIR}:{TEMPLATE_DIR.parent}"}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "runtime.server",
                "--max-capture-bytes",
                "4096",
                "--block-cache-size",
                "4",
                "--max-frame-bytes",
                str(MAX_FRAME_BYTES),
                *args,
            ],
            cwd=TEMPLATE_DIR,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.stderr,
            env=env,
        )

    def wait_for_line(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.stderr_path.read_text(errors="replace"))
            if match:
                return match
            assert self.proc.poll() is None, f"server exited: {self.stderr_path.read_text()}"
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} on the server's stderr in {timeout} s")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=10)
        finally:
            self.stderr.close()


def request(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes | None = None,
    content_type: str = FRAME_TYPE,
) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": content_type} if body is not None else {}
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


def post_frame(conn: http.client.HTTPConnection, frame: bytes) -> Frame:
    status, headers, body = request(conn, "POST", "/frame", frame)
    assert status == 200, body
    assert headers["content-type"] == FRAME_TYPE
    assert int(headers["content-length"]) == len(body)
    stream = io.BytesIO(body)
    reply = read_frame(stream, REPLY_LIMIT)
    assert reply is not None
    assert stream.read() == b"", "exactly one frame in the answer"
    return reply


def send(conn: http.client.HTTPConnection, message: dict[str, Any]) -> dict[str, Any]:
    return with_outputs(post_frame(conn, encode_frame(message)))


def without_timings(reply: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value
        for key, value in reply.items()
        if key not in ("timings_ms", "phases_ns", "rss_bytes")
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("server")
    path = str(tmp / "runtime.sock")
    process = ServerProcess(tmp, "--unix-socket", path)
    process.wait_for_line(r"listening on unix:")
    yield path
    assert process.stop() == 0


@pytest.fixture
def conn(server: str) -> Iterator[UnixHTTPConnection]:
    connection = UnixHTTPConnection(server)
    yield connection
    connection.close()


def test_health_says_version_and_pid(conn):
    status, headers, body = request(conn, "GET", "/health")
    assert status == 200 and headers["content-type"] == "application/json"
    health = json.loads(body)
    assert health["ok"] is True and health["version"] == runtime.__version__
    assert isinstance(health["pid"], int)
    assert set(health) == {
        "ok",
        "version",
        "pid",
    }  # nothing else: never anything of the environment


def test_load_and_run_give_the_reply_a_worker_gives(conn):
    messages = [
        {
            "op": "load",
            "hash": "sum",
            "code": code("def run(self, a, b):\n    print('adding')\n    return {'sum': a + b}\n"),
        },
        {
            "op": "run",
            "hash": "sum",
            "inputs": {"a": 10.5, "b": 20.3},
            "context": {"step_name": "s"},
        },
        {
            "op": "run",
            "hash": "sum",
            "inputs": {"a": 1, "b": 2},
            "context": {},
            "output_format": "json",
        },
        {"op": "ping"},
    ]
    worker = WorkerProcess()
    try:
        assert worker.receive()["op"] == "ready"
        for message in messages:
            from_worker = worker.send(message)
            from_server = send(conn, message)
            assert without_timings(from_server) == without_timings(from_worker)
    finally:
        worker.close()
    assert from_server == {"ok": True, "version": runtime.__version__}


def test_an_ndarray_round_trips_through_the_sidecar(conn):
    image = np.arange(200 * 300, dtype=np.float32).reshape(200, 300)
    inputs, buffers = encode_outputs({"image": image}, "cbor", sidecar=True)
    assert buffers, "a 240 kB array rides in the sidecar, not in the head"
    block = code(
        "def run(self, image):\n    return {'doubled': image * 2, 'dtype': str(image.dtype)}\n"
    )
    assert send(conn, {"op": "load", "hash": "double", "code": block})["ok"]
    reply = post_frame(
        conn,
        encode_frame({"op": "run", "hash": "double", "inputs": inputs, "context": {}}, buffers),
    )
    assert reply.sidecar.nbytes >= image.nbytes, (
        "the output array comes back in the reply's sidecar"
    )
    outputs = with_outputs(reply)["outputs"]
    assert outputs["dtype"] == "float32"
    doubled = decode_inputs({"doubled": outputs["doubled"]})["doubled"]
    assert doubled.dtype == np.float32 and np.array_equal(doubled, image * 2)


@pytest.mark.parametrize(
    "side", [4, 40, 400]
)  # 64 B inline, 6.4 kB joined with the head, 640 kB on its own
def test_outputs_of_every_size_and_layout_come_back_whole(conn, side):
    block = code(
        "def run(self, n):\n    a = np.arange(n * n, dtype=np.float32).reshape(n, n)\n    return {'a': a, 'strided': a[:, ::2]}\n"
    )
    assert send(conn, {"op": "load", "hash": f"sizes-{side}", "code": block})["ok"]
    outputs = send(
        conn, {"op": "run", "hash": f"sizes-{side}", "inputs": {"n": side}, "context": {}}
    )["outputs"]
    decoded = decode_inputs(outputs)
    expected = np.arange(side * side, dtype=np.float32).reshape(side, side)
    assert np.array_equal(decoded["a"], expected) and np.array_equal(
        decoded["strided"], expected[:, ::2]
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (struct.pack(">I", 5) + struct.pack(">I", 1) + b"\xff", "frame: invalid CBOR"),
        (b"", "frame: the body is empty"),
        (encode_frame({"op": "ping"}) + b"junk", "frame: 4 bytes follow the frame in the body"),
        (encode_frame({"op": "ping"})[:-1], "frame: stream ended inside a frame"),
        (
            struct.pack(">I", MAX_FRAME_BYTES + 1) + b"\x00" * 8,
            f"over the limit of {MAX_FRAME_BYTES} bytes",
        ),
    ],
)
def test_a_malformed_frame_gets_a_bad_request_reply_frame_and_the_connection_goes_on(
    conn, body, message
):
    reply = post_frame(conn, body).message
    assert reply["ok"] is False and reply["error"]["type"] == "BadRequest"
    assert message in reply["error"]["message"]
    assert send(conn, {"op": "ping"})["ok"] is True


def test_a_body_over_the_frame_limit_is_413_without_being_sent(server):
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(server)
        # Only the headers: the server must answer without waiting for the body.
        sock.sendall(
            f"POST /frame HTTP/1.1\r\nHost: x\r\nContent-Type: {FRAME_TYPE}\r\n"
            f"Content-Length: {MAX_FRAME_BYTES + 5}\r\n\r\n".encode()
        )
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 413
        assert response.getheader("Connection") == "close"
        error = json.loads(response.read())["error"]
    assert error["type"] == "PayloadTooLarge" and str(MAX_FRAME_BYTES + 5) in error["message"]


def test_a_client_that_expects_100_continue_hears_the_refusal_first(server):
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(server)
        sock.sendall(
            f"POST /frame HTTP/1.1\r\nHost: x\r\nContent-Type: {FRAME_TYPE}\r\nExpect: 100-continue\r\n"
            f"Content-Length: {MAX_FRAME_BYTES * 2}\r\n\r\n".encode()
        )
        assert sock.makefile("rb").readline().startswith(b"HTTP/1.1 413 ")


def test_a_request_line_that_does_not_parse_is_a_json_400(server):
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(server)
        sock.sendall(b"NONSENSE\r\n\r\n")
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 400
        assert json.loads(response.read())["error"]["type"] == "BadRequest"


def test_wrong_content_type_is_415(conn):
    status, headers, body = request(
        conn, "POST", "/frame", encode_frame({"op": "ping"}), content_type="application/cbor"
    )
    assert status == 415 and headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["type"] == "UnsupportedMediaType"


def test_a_content_type_with_parameters_is_accepted(conn):
    status, _, _ = request(
        conn, "POST", "/frame", encode_frame({"op": "ping"}), content_type=f"{FRAME_TYPE}; v=1"
    )
    assert status == 200


def test_unknown_paths_and_methods_are_json_errors(conn):
    status, _, body = request(conn, "GET", "/nope")
    assert status == 404 and json.loads(body)["error"]["type"] == "NotFound"
    status, headers, body = request(conn, "GET", "/frame")
    assert status == 405 and headers["allow"] == "POST"
    assert json.loads(body)["error"]["type"] == "MethodNotAllowed"


def test_health_answers_while_a_run_sleeps(server, conn):
    block = code("def run(self):\n    time.sleep(1.5)\n    return {'slept': True}\n")
    assert send(conn, {"op": "load", "hash": "sleepy", "code": block})["ok"]
    replies: list[dict[str, Any]] = []
    runner = threading.Thread(
        target=lambda: replies.append(
            send(conn, {"op": "run", "hash": "sleepy", "inputs": {}, "context": {}})
        )
    )
    started = time.monotonic()
    runner.start()
    time.sleep(0.3)  # the run is under way
    with closing(UnixHTTPConnection(server)) as other:
        status, _, _ = request(other, "GET", "/health")
    answered = time.monotonic() - started
    runner.join(timeout=30)
    assert status == 200 and answered < 1.2, f"health took {answered:.2f} s behind a 1.5 s run"
    assert replies and replies[0]["outputs"] == {"slept": True}


def test_an_error_in_run_is_a_block_runtime_error_in_the_users_lines(conn):
    block = code("def run(self, x):\n    print('before')\n    raise ValueError(f'bad x {x}')\n")
    assert send(conn, {"op": "load", "hash": "raises", "code": block})["ok"]
    reply = send(conn, {"op": "run", "hash": "raises", "inputs": {"x": 3}, "context": {}})
    assert reply["ok"] is False
    error = reply["error"]
    assert error["type"] == "BlockRuntimeError" and "bad x 3" in error["message"]
    assert error["line"] == 3 and error["function"] == "run"
    assert error["stdout"] == "before\n"


def test_two_requests_share_one_kept_alive_connection(conn):
    assert request(conn, "GET", "/health")[0] == 200
    first_socket = conn.sock
    assert first_socket is not None, "the connection stayed open after the first answer"
    assert send(conn, {"op": "ping"})["ok"] is True
    assert conn.sock is first_socket


# --- start and stop -----------------------------------------------------------------


def test_tcp_port_0_prints_the_bound_address_and_sigterm_exits_cleanly(tmp_path):
    process = ServerProcess(tmp_path, "--host", "127.0.0.1", "--port", "0")
    try:
        port = int(process.wait_for_line(r"listening on http://127\.0\.0\.1:(\d+)").group(1))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        status, _, body = request(conn, "GET", "/health")
        assert status == 200 and json.loads(body)["pid"] == process.proc.pid
        assert send(conn, {"op": "ping"})["ok"] is True
        conn.close()
    finally:
        assert process.stop() == 0
    assert "stopped" in process.stderr_path.read_text()


def test_a_stale_socket_is_replaced_made_0666_and_removed_on_exit(tmp_path):
    path = tmp_path / "runtime.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays behind, as after a crash
    process = ServerProcess(tmp_path, "--unix-socket", str(path))
    try:
        process.wait_for_line(r"listening on unix:")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o666
        with closing(UnixHTTPConnection(str(path))) as conn:
            assert request(conn, "GET", "/health")[0] == 200
    finally:
        assert process.stop() == 0
    assert not path.exists()
