"""Frames between the proxy and a worker.

    frame   := length (u32 BE) payload
    payload := head_length (u32 BE) head (one CBOR item) [padding] sidecar

The sidecar holds the bytes of large arrays, each 64-byte aligned, so they are read
straight into one buffer and become numpy arrays without a copy; the head refers to
them by [offset, length] (serializers.registry.SIDECAR_TAG). Small frames have none.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, BinaryIO, NamedTuple

from serializers.registry import SIDECAR_ALIGN

from . import codec

_U32 = struct.Struct(">I")
HEADER_BYTES = _U32.size
MAX_FRAME_LIMIT = 0xFFFFFFFF  # the most a 4-byte length can announce


class FrameError(Exception):
    """The frame channel is unusable or a frame is malformed."""


class TruncatedFrame(FrameError):
    """The stream ended inside a frame: the peer died or the channel is out of step."""


class FrameTooLarge(FrameError):
    """The announced length is over the limit; the payload was not read."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"frame of {size} bytes is over the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class FrameDecodeError(FrameError):
    """The frame was read whole but its payload is not valid; the stream is still in step."""


class Frame(NamedTuple):
    message: Any
    sidecar: memoryview


def _align(n: int) -> int:
    return (n + SIDECAR_ALIGN - 1) // SIDECAR_ALIGN * SIDECAR_ALIGN


def _read_into(stream: BinaryIO, buffer: memoryview) -> int:
    # A pipe may hand back fewer bytes than asked for; loop until full or EOF.
    filled = 0
    while filled < len(buffer):
        count = stream.readinto(buffer[filled:])
        if not count:
            break
        filled += count
    return filled


def read_frame(stream: BinaryIO, max_frame_bytes: int) -> Frame | None:
    """The next frame, or None on a clean EOF (between frames)."""
    header = bytearray(HEADER_BYTES)
    got = _read_into(stream, memoryview(header))
    if got == 0:
        return None
    if got < HEADER_BYTES:
        raise TruncatedFrame(f"stream ended inside a frame header ({got} of {HEADER_BYTES} bytes)")
    (size,) = _U32.unpack(header)
    if size > max_frame_bytes:
        raise FrameTooLarge(size, max_frame_bytes)
    # One buffer for the whole payload: sidecar arrays become writable views of it.
    payload = memoryview(bytearray(size))
    got = _read_into(stream, payload)
    if got < size:
        raise TruncatedFrame(f"stream ended inside a frame ({got} of {size} bytes)")
    if size < HEADER_BYTES:
        raise FrameDecodeError(f"payload of {size} bytes has no head length")
    (head_size,) = _U32.unpack_from(payload)
    if HEADER_BYTES + head_size > size:
        raise FrameDecodeError(f"head of {head_size} bytes does not fit a {size}-byte payload")
    try:
        message = codec.decode(payload[HEADER_BYTES : HEADER_BYTES + head_size])
    except codec.DecodeError as exc:
        raise FrameDecodeError(str(exc)) from None
    return Frame(message, payload[min(size, _align(HEADER_BYTES + head_size)) :])


def frame_parts(obj: Any, buffers: Sequence[memoryview] = ()) -> list[bytes | memoryview]:
    """The frame as pieces to write in order (large buffers are not copied into one)."""
    head = codec.encode(obj)
    parts: list[bytes | memoryview] = [b"", _U32.pack(len(head)), head]
    size = HEADER_BYTES + len(head)
    for buffer in buffers:
        start = _align(size)
        parts.append(bytes(start - size))
        parts.append(buffer)
        size = start + buffer.nbytes
    if size > MAX_FRAME_LIMIT:
        raise FrameTooLarge(size, MAX_FRAME_LIMIT)
    parts[0] = _U32.pack(size)
    return parts


def encode_frame(obj: Any, buffers: Sequence[memoryview] = ()) -> bytes:
    """The whole frame as one bytes object; raises ``codec.EncodeError`` naming a bad path."""
    return b"".join(bytes(part) for part in frame_parts(obj, buffers))


def write_frame(stream: BinaryIO, obj: Any, buffers: Sequence[memoryview] = ()) -> None:
    for part in frame_parts(obj, buffers):
        stream.write(part)
    stream.flush()
