"""Frames and the codec: length, head length, CBOR head, aligned sidecar buffers; bad values named."""

from __future__ import annotations

import io
import struct

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime import codec
from runtime.framing import (
    FrameDecodeError,
    FrameTooLarge,
    TruncatedFrame,
    encode_frame,
    read_frame,
    write_frame,
)

LIMIT = 1 << 20


class TrickleStream(io.RawIOBase):
    """Hands out at most ``step`` bytes per read, like a pipe under load."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = data
        self._pos = 0
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._data[self._pos : self._pos + min(len(buffer), self._step)]
        buffer[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


class CountingStream(io.BytesIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.flushes = 0

    def write(self, data) -> int:  # type: ignore[override]
        self.writes += 1
        return super().write(data)

    def flush(self) -> None:
        self.flushes += 1


def message(stream, limit=LIMIT):
    frame = read_frame(stream, limit)
    return None if frame is None else frame.message


def test_frame_layout_is_length_then_head_length_then_cbor():
    frame = encode_frame({"op": "ping"})
    head = cbor2.dumps({"op": "ping"})
    assert frame == struct.pack(">I", 4 + len(head)) + struct.pack(">I", len(head)) + head


def test_sidecar_buffers_follow_the_head_64_byte_aligned():
    big = memoryview(bytes(range(256)) * 40)
    small = memoryview(b"abc")
    frame = encode_frame({"refs": [0, 10304]}, [big, small])
    payload = frame[4:]
    (head_size,) = struct.unpack(">I", payload[:4])
    region_start = -(-(4 + head_size) // 64) * 64
    assert payload[region_start : region_start + big.nbytes] == big.tobytes()
    assert (
        payload[region_start + 10240 : region_start + 10243] == b"abc"
    )  # 10240 = big rounded up to 64
    read = read_frame(io.BytesIO(frame), LIMIT)
    assert read.message == {"refs": [0, 10304]}
    assert read.sidecar[:256].tobytes() == bytes(range(256))
    assert read.sidecar[10240:10243].tobytes() == b"abc"
    assert not read.sidecar.readonly  # arrays made from it are writable without a copy


def test_write_frame_writes_every_part_then_flushes_once():
    stream = CountingStream()
    write_frame(stream, {"op": "run", "inputs": {"a": 1}})
    assert stream.flushes == 1
    stream.seek(0)
    assert message(stream) == {"op": "run", "inputs": {"a": 1}}


def test_frames_in_sequence_then_clean_eof():
    stream = io.BytesIO(encode_frame({"n": 1}) + encode_frame({"n": 2}))
    assert message(stream) == {"n": 1}
    assert message(stream) == {"n": 2}
    assert read_frame(stream, LIMIT) is None


@pytest.mark.parametrize("cut", [1, 3])
def test_eof_inside_the_header_is_truncated(cut):
    with pytest.raises(TruncatedFrame, match=f"{cut} of 4 bytes"):
        read_frame(io.BytesIO(encode_frame({"a": 1})[:cut]), LIMIT)


def test_eof_inside_the_payload_is_truncated():
    frame = encode_frame({"a": "x" * 100})
    with pytest.raises(TruncatedFrame, match=r"\d+ of \d+ bytes"):
        read_frame(io.BytesIO(frame[:-10]), LIMIT)


def test_frame_over_the_limit_is_refused_before_reading_it():
    stream = io.BytesIO(struct.pack(">I", 5000) + b"\x00" * 5000)
    with pytest.raises(FrameTooLarge) as info:
        read_frame(stream, 4096)
    assert (info.value.size, info.value.limit) == (5000, 4096)
    assert "5000 bytes is over the limit of 4096 bytes" in str(info.value)
    assert stream.tell() == 4


def test_bad_cbor_consumes_the_frame_so_the_stream_stays_in_step():
    stream = io.BytesIO(
        struct.pack(">I", 6) + struct.pack(">I", 2) + b"\xff\xff" + encode_frame({"next": True})
    )
    with pytest.raises(FrameDecodeError, match="invalid CBOR"):
        read_frame(stream, LIMIT)
    assert message(stream) == {"next": True}


def test_a_head_longer_than_its_payload_is_refused_in_step():
    stream = io.BytesIO(
        struct.pack(">I", 6) + struct.pack(">I", 99) + b"\xa0\xa0" + encode_frame({"next": True})
    )
    with pytest.raises(FrameDecodeError, match="does not fit"):
        read_frame(stream, LIMIT)
    assert message(stream) == {"next": True}


json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(json_like, min_size=1, max_size=4), step=st.integers(min_value=1, max_value=7)
)
def test_frames_round_trip_through_a_trickling_pipe(values, step):
    data = b"".join(encode_frame(v) for v in values)
    # Unbuffered on purpose: read_frame itself must gather short reads.
    stream = TrickleStream(data, step)
    assert [message(stream) for _ in values] == values
    assert read_frame(stream, LIMIT) is None


class Foo:
    pass


def test_unencodable_value_names_its_path():
    with pytest.raises(codec.EncodeError) as info:
        codec.encode({"ok": True, "outputs": {"result": [1, 2, Foo()]}})
    assert str(info.value) == "outputs.result[2]: cannot encode object of type Foo"
    assert info.value.path == "outputs.result[2]"


def test_cycles_are_reported_not_recursed_forever():
    loop: list = []
    loop.append(loop)
    with pytest.raises(codec.EncodeError, match="cyclic"):
        codec.encode({"outputs": {"loop": loop}})


def test_decode_rejects_garbage():
    with pytest.raises(codec.DecodeError):
        codec.decode(b"\xff")
