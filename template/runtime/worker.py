"""Worker entry point: CBOR frames in on stdin, replies out on stdout, one message at a time.

python -m runtime.worker --max-capture-bytes N --block-cache-size N --max-frame-bytes N
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import BinaryIO

from . import __version__, confinement
from .capture import Captured
from .codec import EncodeError
from .errors import BadRequest, BlockRuntimeError, OutputTooLarge
from .executor import BUFFERS_KEY, REGION_BYTES_KEY, Executor, failure_reply
from .framing import FrameDecodeError, FrameError, FrameTooLarge, frame_parts, read_frame
from .prelude import preload
from .protocol import (
    DEFAULT_BLOCK_CACHE_SIZE,
    DEFAULT_MAX_CAPTURE_BYTES,
    DEFAULT_MAX_FRAME_BYTES,
    FailureReply,
    Reply,
    WorkerReady,
)
from .selfstat import SELF
from .task_id import assign_task_id


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m runtime.worker",
        description="blockgate worker: CBOR frames in on stdin, replies out on stdout.",
    )
    parser.add_argument(
        "--max-capture-bytes", type=_positive_int, default=DEFAULT_MAX_CAPTURE_BYTES
    )
    parser.add_argument("--block-cache-size", type=_positive_int, default=DEFAULT_BLOCK_CACHE_SIZE)
    parser.add_argument("--max-frame-bytes", type=_positive_int, default=DEFAULT_MAX_FRAME_BYTES)
    return parser.parse_args(argv)


def claim_channel(buffered: bool = True) -> tuple[BinaryIO, BinaryIO]:
    """Take private copies of fd 0/1 for frames, then point fd 0 at /dev/null and fd 1 at stderr.

    After this, a block that writes to fd 1 directly (os.write, a C library's printf)
    lands in the worker's stderr instead of corrupting the frame stream.
    """
    sys.stdout.flush()
    channel_in = os.dup(0)  # os.dup fds are non-inheritable: block subprocesses never get them
    channel_out = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    # Unbuffered input suits a reader that select()s on the fd: nothing hides in a buffer.
    return os.fdopen(channel_in, "rb", buffering=-1 if buffered else 0), os.fdopen(
        channel_out, "wb"
    )


def encode_reply(reply: Reply, max_frame_bytes: int) -> list[bytes | memoryview]:
    """The reply as frame parts; an unencodable or oversized reply becomes an error reply instead."""
    buffers = reply.pop(
        BUFFERS_KEY, []
    )  # a run reply's keys that are never framed (protocol.RunReply)
    region_bytes = reply.pop(REGION_BYTES_KEY, 0)
    try:
        parts = frame_parts(reply, buffers)
    except EncodeError as exc:
        parts = frame_parts(_replacement(reply, BlockRuntimeError(str(exc))))
    payload_bytes = region_bytes + sum(
        len(part) if isinstance(part, bytes) else part.nbytes for part in parts[1:]
    )
    if payload_bytes > max_frame_bytes:
        error = OutputTooLarge(
            f"outputs: the reply is {payload_bytes} bytes, over the frame limit of {max_frame_bytes} bytes"
        )
        parts = frame_parts(_replacement(reply, error))
    return parts


def _replacement(reply: Reply, error: BlockRuntimeError) -> FailureReply:
    # Keep what the block printed: it is often why the outputs are wrong.
    captured = Captured(
        stdout=reply.get("stdout", ""),
        stderr=reply.get("stderr", ""),
        stdout_truncated=reply.get("stdout_truncated", False),
        stderr_truncated=reply.get("stderr_truncated", False),
    )
    return failure_reply(error, captured)


def _send(channel_out: BinaryIO, parts: list[bytes | memoryview]) -> None:
    # Buffered writes then one flush: the reader sees whole frames, never a pending half.
    for part in parts:
        channel_out.write(part)
    channel_out.flush()


def _end_what_the_run_left(reply: Reply, threads_at_start: int) -> None:
    """Nothing a request started outlives it: stray processes end (when this worker is PID 1
    of its namespace), and a thread left running makes the proxy retire the worker."""
    ended = confinement.end_stray_processes()
    if ended:
        reply["stray_processes"] = ended
    if SELF.threads() > threads_at_start:
        reply["retire"] = "the block left a thread running"


def serve(
    channel_in: BinaryIO,
    channel_out: BinaryIO,
    executor: Executor,
    max_frame_bytes: int,
    greet: bool = True,
) -> int:
    """Read, handle, reply until EOF; returns the process exit code."""
    threads_at_start = SELF.threads()
    if greet:
        _send(
            channel_out, frame_parts(WorkerReady(op="ready", version=__version__, pid=os.getpid()))
        )
    while True:
        try:
            frame = read_frame(channel_in, max_frame_bytes)
        except FrameDecodeError as exc:
            # The whole frame was consumed, so the stream is still in step: answer and go on.
            _send(channel_out, frame_parts(failure_reply(BadRequest(f"frame: {exc}"))))
            continue
        except FrameTooLarge as exc:
            # The payload was not read, so the next bytes are not a header: stop cleanly.
            _send(channel_out, frame_parts(failure_reply(BadRequest(f"frame: {exc}"))))
            return 1
        except FrameError as exc:
            print(f"blockgate worker: {exc}", file=sys.stderr)
            return 1
        if frame is None:
            return 0
        reply = executor.handle(frame.message, frame.sidecar)
        _end_what_the_run_left(reply, threads_at_start)
        _send(channel_out, encode_reply(reply, max_frame_bytes))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    channel_in, channel_out = claim_channel()
    assign_task_id()
    preload()
    executor = Executor(
        cache_size=args.block_cache_size,
        max_capture_bytes=args.max_capture_bytes,
        sidecar_outputs=True,
        max_output_bytes=args.max_frame_bytes,
    )
    try:
        return serve(channel_in, channel_out, executor, args.max_frame_bytes)
    except BrokenPipeError:
        # The proxy went away mid-reply; nothing left to serve.
        return 1


if __name__ == "__main__":
    sys.exit(main())
