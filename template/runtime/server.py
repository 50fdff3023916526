"""Server entry point: the worker's frames over HTTP, for a runtime inside an E2B sandbox.

    python -m runtime.server [--host 0.0.0.0] [--port 8000] [--unix-socket PATH]
                             [--max-capture-bytes N] [--block-cache-size N] [--max-frame-bytes N]

    GET  /health  → {"ok": true, "version", "pid"}; answers even while a run is busy
    POST /frame   → body: one worker frame (Content-Type protocol.FRAME_CONTENT_TYPE);
                    answer: the one reply frame runtime.worker would write for it

The modules a block sees are imported before the socket exists, so "listening" means "warm".
No hardening here: inside E2B the microVM is the boundary. Nothing from the environment is
ever put in an answer.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import socketserver
import stat
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, BinaryIO, TextIO

from . import __version__
from .errors import BadRequest
from .executor import Executor, failure_reply
from .framing import HEADER_BYTES, FrameError, read_frame
from .prelude import preload
from .protocol import (
    DEFAULT_BLOCK_CACHE_SIZE,
    DEFAULT_MAX_CAPTURE_BYTES,
    DEFAULT_MAX_FRAME_BYTES,
    FRAME_CONTENT_TYPE,
    RUNTIME_PORT,
)
from .task_id import assign_task_id
from .worker import _positive_int, encode_reply

DEFAULT_HOST = "0.0.0.0"
# Reply parts smaller than this are joined before sending: fewer syscalls and packets,
# while the large sidecar buffers still go out as they are, uncopied.
COALESCE_BELOW_BYTES = 64 * 1024
# A refused request's body up to this size is read and dropped, so the client (still
# sending it) hears the refusal instead of a broken pipe, and the connection stays usable.
DRAIN_REFUSED_BODIES_UP_TO = 1 << 20
DRAIN_CHUNK_BYTES = 64 * 1024

# The error "type" of each plain HTTP error this server answers with.
HTTP_ERROR_TYPES: dict[int, str] = {
    400: "BadRequest",
    404: "NotFound",
    405: "MethodNotAllowed",
    411: "LengthRequired",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
}


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0..65535, got {value}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m runtime.server",
        description="blockgate runtime server: worker frames over HTTP (POST /frame, GET /health).",
    )
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument(
        "--port", type=_port, default=RUNTIME_PORT, help="0 picks a free port (printed on stderr)"
    )
    parser.add_argument(
        "--unix-socket", metavar="PATH", help="listen on this Unix socket instead of TCP"
    )
    parser.add_argument(
        "--max-capture-bytes", type=_positive_int, default=DEFAULT_MAX_CAPTURE_BYTES
    )
    parser.add_argument("--block-cache-size", type=_positive_int, default=DEFAULT_BLOCK_CACHE_SIZE)
    parser.add_argument("--max-frame-bytes", type=_positive_int, default=DEFAULT_MAX_FRAME_BYTES)
    return parser.parse_args(argv)


class _Log:
    """The server's own lines, on a private copy of fd 2.

    The executor swaps sys.stderr while a block runs; a line logged by another thread
    then must not end up in that block's captured stderr.
    """

    def __init__(self) -> None:
        self._stream: TextIO = os.fdopen(os.dup(2), "w", buffering=1, errors="replace")
        self._lock = threading.Lock()

    def __call__(self, text: str) -> None:
        with self._lock:
            try:
                self._stream.write(f"blockgate server: {text}\n")
            except OSError:
                pass  # nobody reads stderr any more; serving matters more than logging


class FrameRunner:
    """The one Executor of this process, one message at a time (it is not thread-safe)."""

    def __init__(self, executor: Executor, max_frame_bytes: int) -> None:
        self.executor = executor
        self.max_frame_bytes = max_frame_bytes
        self._lock = threading.Lock()

    def reply_parts(self, message: Any, sidecar: memoryview) -> list[bytes | memoryview]:
        with self._lock:
            return encode_reply(self.executor.handle(message, sidecar), self.max_frame_bytes)

    def refusal_parts(self, reason: str) -> list[bytes | memoryview]:
        # The same reply the worker gives a frame it cannot read.
        return encode_reply(failure_reply(BadRequest(f"frame: {reason}")), self.max_frame_bytes)


class _BodyReader:
    """A request body as a stream that never reads past Content-Length.

    Frames are read straight from the socket into one buffer (runtime.framing), and the
    next request on a kept-alive connection stays unread.
    """

    def __init__(self, rfile: BinaryIO, length: int) -> None:
        self._rfile = rfile
        self.remaining = length
        self.client_gone = False

    def readinto(self, buffer: memoryview) -> int:
        if self.remaining == 0:
            return 0
        try:
            count = self._rfile.readinto(memoryview(buffer)[: self.remaining]) or 0
        except OSError:
            count = 0
        if count == 0:
            self.client_gone = True  # the connection ended inside the body
        self.remaining -= count
        return count

    def drain(self) -> None:
        scratch = memoryview(bytearray(min(self.remaining, DRAIN_CHUNK_BYTES)))
        while self.remaining and not self.client_gone:
            self.readinto(scratch)


def _coalesced(parts: list[bytes | memoryview]) -> list[bytes | memoryview]:
    out: list[bytes | memoryview] = []
    small: list[bytes | memoryview] = []
    for part in parts:
        if memoryview(part).nbytes < COALESCE_BELOW_BYTES:
            small.append(part)
            continue
        if small:
            out.append(b"".join(small))
            small = []
        out.append(part)
    if small:
        out.append(b"".join(small))
    return out


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


class RuntimeRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the proxy reuses one connection per sandbox
    default_request_version = "HTTP/1.0"  # so even a garbled request line gets a status line
    server_version = f"blockgate-runtime/{__version__}"
    sys_version = ""

    # Set on the handler class by make_server.
    runner: FrameRunner
    log: _Log

    def setup(self) -> None:
        super().setup()
        if self.connection.family in (socket.AF_INET, socket.AF_INET6):
            # Small answers must not wait for the client's delayed ACK.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # --- routes -----------------------------------------------------------------------

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send_json(HTTPStatus.OK, {"ok": True, "version": __version__, "pid": os.getpid()})
        elif self.path == "/frame":
            self._send_error(HTTPStatus.METHOD_NOT_ALLOWED, "/frame takes POST", allow="POST")
        else:
            self._send_error(HTTPStatus.NOT_FOUND, f"no route for GET {self.path}")

    def do_POST(self) -> None:
        if self.path != "/frame":
            if self.path == "/health":
                self._send_error(
                    HTTPStatus.METHOD_NOT_ALLOWED,
                    "/health takes GET",
                    allow="GET",
                    close=not self._drain_small_body(),
                )
            else:
                self._send_error(
                    HTTPStatus.NOT_FOUND,
                    f"no route for POST {self.path}",
                    close=not self._drain_small_body(),
                )
            return
        refusal = self._refusal()
        if refusal is not None:
            status, text = refusal
            # A body left unread puts the connection out of step: close it then.
            drained = status != HTTPStatus.REQUEST_ENTITY_TOO_LARGE and self._drain_small_body()
            self._send_error(status, text, close=not drained)
            return
        body = _BodyReader(self.rfile, int(self.headers["Content-Length"]))
        parts = self._handle_frame(body)
        if body.client_gone:
            self.close_connection = True
            return
        self._send_frame(parts)

    def _drain_small_body(self) -> bool:
        """Reads and drops a small body with a known length; False when it is left unread."""
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            return False
        if self.headers.get("Transfer-Encoding") or not 0 <= length <= DRAIN_REFUSED_BODIES_UP_TO:
            return False
        _BodyReader(self.rfile, length).drain()
        return True

    def handle_expect_100(self) -> bool:
        # A client that asks first learns about a refusal before sending the body.
        refusal = self._refusal() if self.command == "POST" and self.path == "/frame" else None
        if refusal is not None:
            status, text = refusal
            self._send_error(status, text, close=True)
            return False
        return super().handle_expect_100()

    # --- /frame -----------------------------------------------------------------------

    def _refusal(self) -> tuple[HTTPStatus, str] | None:
        """Why this POST /frame is refused before its body is read, if it is."""
        content_type = _media_type(self.headers.get("Content-Type"))
        if content_type != FRAME_CONTENT_TYPE:
            return (
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                f"Content-Type must be {FRAME_CONTENT_TYPE}, got {content_type or 'none'}",
            )
        length_header = self.headers.get("Content-Length")
        if length_header is None or self.headers.get("Transfer-Encoding"):
            return (
                HTTPStatus.LENGTH_REQUIRED,
                "a frame body needs a Content-Length (chunked bodies are not accepted)",
            )
        try:
            length = int(length_header)
        except ValueError:
            length = -1
        if length < 0:
            return (
                HTTPStatus.BAD_REQUEST,
                f"Content-Length must be a byte count, got {length_header!r}",
            )
        limit = self.runner.max_frame_bytes + HEADER_BYTES
        if length > limit:
            return (
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"a body of {length} bytes is over the limit of {limit} bytes (a frame of --max-frame-bytes and its length)",
            )
        return None

    def _handle_frame(self, body: _BodyReader) -> list[bytes | memoryview]:
        """Read the body as one frame and answer it the way a worker would."""
        try:
            frame = read_frame(body, self.runner.max_frame_bytes)  # type: ignore[arg-type]
        except FrameError as exc:  # undecodable, truncated, or announcing more than the limit
            body.drain()
            return self.runner.refusal_parts(str(exc))
        if frame is None:
            return self.runner.refusal_parts("the body is empty")
        if body.remaining:
            trailing = body.remaining
            body.drain()
            return self.runner.refusal_parts(f"{trailing} bytes follow the frame in the body")
        return self.runner.reply_parts(frame.message, frame.sidecar)

    def _send_frame(self, parts: list[bytes | memoryview]) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", FRAME_CONTENT_TYPE)
        self.send_header("Content-Length", str(sum(memoryview(part).nbytes for part in parts)))
        self.end_headers()
        for part in _coalesced(parts):
            self.wfile.write(part)

    # --- plain answers ----------------------------------------------------------------

    def _send_json(
        self,
        status: HTTPStatus,
        body: dict[str, Any],
        *,
        close: bool = False,
        allow: str | None = None,
    ) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if allow:
            self.send_header("Allow", allow)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def _send_error(
        self, status: HTTPStatus, message: str, *, close: bool = False, allow: str | None = None
    ) -> None:
        # A request line that did not parse leaves no command or path to name.
        self.log(f"{self.command or '-'} {getattr(self, 'path', '-')} → {status.value}: {message}")
        error_type = HTTP_ERROR_TYPES.get(status.value, status.phrase.replace(" ", ""))
        self._send_json(
            status, {"error": {"type": error_type, "message": message}}, close=close, allow=allow
        )

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server's own refusals (a bad request line, huge headers): JSON like ours.
        status = HTTPStatus(code)
        self._send_error(status, message or status.phrase, close=True)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request is noise; refusals and failures are logged where they happen


class _QuietErrors:
    """A connection that fails (a client gone mid-answer) is one terse line, not a traceback.

    socketserver would print the traceback to sys.stderr, which may be a run's capture.
    """

    log: _Log

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        self.log(f"connection ended: {type(error).__name__}: {error}")


class UnixThreadingHTTPServer(
    _QuietErrors, socketserver.ThreadingMixIn, socketserver.UnixStreamServer
):
    daemon_threads = True  # a busy run must not hold up the exit


class TCPThreadingHTTPServer(_QuietErrors, ThreadingHTTPServer):
    daemon_threads = True


def _bind_unix(path: str, handler: type[RuntimeRequestHandler]) -> UnixThreadingHTTPServer:
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)  # left over from an earlier server in this sandbox
    except FileNotFoundError:
        pass
    server = UnixThreadingHTTPServer(path, handler)
    # The peer (the stand-in's proxy side) may run as another user.
    os.chmod(path, 0o666)
    return server


def make_server(
    args: argparse.Namespace, runner: FrameRunner, log: _Log
) -> UnixThreadingHTTPServer | TCPThreadingHTTPServer:
    handler = type(
        "BoundRuntimeRequestHandler", (RuntimeRequestHandler,), {"runner": runner, "log": log}
    )
    server: UnixThreadingHTTPServer | TCPThreadingHTTPServer
    if args.unix_socket:
        server = _bind_unix(args.unix_socket, handler)
    else:
        server = TCPThreadingHTTPServer((args.host, args.port), handler)
    server.log = log
    return server


def _describe_address(server: socketserver.BaseServer) -> str:
    address = server.server_address
    if isinstance(address, (str, bytes)):
        return f"unix:{os.fsdecode(address)}"
    host, port = address[:2]
    return f"http://{host}:{port}"


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    # A second SIGTERM (a supervisor forwarding one more) must not break the exit under way.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log = _Log()
    assign_task_id()
    preload()
    executor = Executor(
        cache_size=args.block_cache_size,
        max_capture_bytes=args.max_capture_bytes,
        sidecar_outputs=True,
        max_output_bytes=args.max_frame_bytes,
    )
    runner = FrameRunner(executor, args.max_frame_bytes)
    server = make_server(args, runner, log)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    log(f"listening on {_describe_address(server)} (version {__version__}, pid {os.getpid()})")
    try:
        server.serve_forever()
    except (SystemExit, KeyboardInterrupt):
        pass
    finally:
        server.server_close()
        if args.unix_socket:
            try:
                os.unlink(args.unix_socket)
            except OSError:
                pass
        log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
