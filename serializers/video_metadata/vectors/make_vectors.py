"""Writes the video_metadata golden vectors. Run it only to add a vector on purpose:

    .venv/bin/python serializers/video_metadata/vectors/make_vectors.py

Each vector is ``<name>.cbor`` (the Python encoder's output) plus an entry in
``index.json``: the fields both languages must decode it to, the timestamp as its exact
RFC 3339 text and its UTC offset in minutes.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import cbor2

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))
from serializers.registry import encode_outputs  # noqa: E402
from serializers.video_metadata.entity import VideoMetadata  # noqa: E402


def zone(hours: int, minutes: int = 0) -> dt.timezone:
    sign = -1 if hours < 0 else 1
    return dt.timezone(sign * dt.timedelta(hours=abs(hours), minutes=minutes))


VECTORS = {
    # +05:30 must survive as +05:30 (not be turned into UTC); fps 30.0 travels as the integer 30.
    "ist-offset": VideoMetadata(
        "rtsp://cam-7/stream",
        42,
        dt.datetime(2024, 5, 1, 12, 34, 56, 789000, tzinfo=zone(5, 30)),
        fps=30.0,
        measured_fps=29.87,
        comes_from_video_file=False,
    ),
    "utc-minimal": VideoMetadata(
        "clip.mp4", 0, dt.datetime(2024, 1, 1, 0, 0, 0, tzinfo=dt.timezone.utc)
    ),
    # a frame number above 32 bits (a uint64 on the wire), a negative offset, microseconds.
    "negative-offset-large-frame": VideoMetadata(
        "üñí-stream",
        2**32 + 5,
        dt.datetime(1999, 12, 31, 23, 59, 59, 1, tzinfo=zone(-8)),
        fps=23.976,
        measured_fps=0.0,
        comes_from_video_file=True,
    ),
}


def describe(value: VideoMetadata) -> dict:
    offset = value.frame_timestamp.utcoffset()
    assert offset is not None
    return {
        "video_identifier": value.video_identifier,
        "frame_number": value.frame_number,
        "frame_timestamp": value.frame_timestamp.isoformat().replace(
            "+00:00", "Z"
        ),  # as cbor2 writes it
        "utc_offset_minutes": int(offset.total_seconds() // 60),
        "fps": value.fps,
        "measured_fps": value.measured_fps,
        "comes_from_video_file": value.comes_from_video_file,
    }


def main() -> None:
    index = []
    for name, value in VECTORS.items():
        tree, _ = encode_outputs(value)
        (HERE / f"{name}.cbor").write_bytes(cbor2.dumps(tree))
        index.append({"name": name, **describe(value)})
    (HERE / "index.json").write_text(json.dumps(index, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
