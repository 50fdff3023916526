"""Length-prefixed frames: a 4-byte unsigned big-endian length N, then N bytes of one CBOR item."""

from __future__ import annotations

import struct
from typing import Any, BinaryIO

from . import codec

_HEADER = struct.Struct(">I")
HEADER_BYTES = _HEADER.size
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
    """The frame was read whole but its payload is not valid CBOR; the stream is still in step."""


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    # A pipe may hand back fewer bytes than asked for; loop until all arrive or EOF.
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def read_frame(stream: BinaryIO, max_frame_bytes: int) -> Any | None:
    """The next decoded frame, or None on a clean EOF (between frames)."""
    header = _read_exact(stream, _HEADER.size)
    if not header:
        return None
    if len(header) < _HEADER.size:
        raise TruncatedFrame(f"stream ended inside a frame header ({len(header)} of 4 bytes)")
    (size,) = _HEADER.unpack(header)
    if size > max_frame_bytes:
        raise FrameTooLarge(size, max_frame_bytes)
    payload = _read_exact(stream, size)
    if len(payload) < size:
        raise TruncatedFrame(f"stream ended inside a frame ({len(payload)} of {size} bytes)")
    try:
        return codec.decode(payload)
    except codec.DecodeError as exc:
        raise FrameDecodeError(str(exc)) from None


def encode_frame(obj: Any) -> bytes:
    """Header and payload as one buffer; raises ``codec.EncodeError`` naming the bad path."""
    payload = codec.encode(obj)
    if len(payload) > MAX_FRAME_LIMIT:
        raise FrameTooLarge(len(payload), MAX_FRAME_LIMIT)
    return _HEADER.pack(len(payload)) + payload


def write_frame(stream: BinaryIO, obj: Any) -> None:
    # One write, so a frame is never interleaved or half-sent by a partial encode.
    stream.write(encode_frame(obj))
    stream.flush()
