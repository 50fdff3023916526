"""video_metadata, Python half (twin of index.ts): ``VideoMetadata`` <-> CBOR tag 61443.

CBOR: tag 61443 over a map of every field, always written in this order:

    video_identifier       text
    frame_number           uint (0 .. 2**53-1)
    frame_timestamp        tag 0, RFC 3339 text with its UTC offset ("…+05:30", "…Z")
    fps                    number >= 0, finite, or null
    measured_fps           number >= 0, finite, or null
    comes_from_video_file  bool or null

A number field holding an integral value in the uint32 range is written as a CBOR integer
(30.0 -> 30): that is how cbor-x writes a JS number, so both halves produce the same
bytes; any number is read back as a float. Reading, the last three fields may be missing
(null); unknown fields are refused.

JSON: Roboflow's webexec form, ``{"_type": "video_metadata", <the six fields>}`` with the
timestamp as ``{"_type": "datetime", "value": isoformat}``; an ISO string is read too,
and, since Inference stamps frames with naive local times, a timestamp without offset is
accepted there (it stays naive; CBOR writes a naive timestamp as UTC).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any, ClassVar

from ..kind import Codec, KindError
from .entity import VideoMetadata

VIDEO_METADATA_TAG = 61443
FIELDS = (
    "video_identifier",
    "frame_number",
    "frame_timestamp",
    "fps",
    "measured_fps",
    "comes_from_video_file",
)
REQUIRED = FIELDS[:3]
MAX_FRAME_NUMBER = 2**53 - 1  # what a JS number holds exactly
_UINT32_MAX = 2**32 - 1


def describe(value: Any) -> str:
    """A value as a message names it, in CBOR's terms (the TS half says the same)."""
    if value is None or isinstance(value, (bool, int, float)):
        return "null" if value is None else repr(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 80 else value[:80] + "…")
    names = (
        (Mapping, "a map"),
        ((list, tuple), "an array"),
        ((bytes, bytearray, memoryview), "a byte string"),
        (dt.datetime, "a date"),
    )
    for types, name in names:
        if isinstance(value, types):
            return name
    return type(value).__name__


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_frame_number(value: Any, path: str) -> int:
    if not _is_int(value) or not 0 <= value <= MAX_FRAME_NUMBER:
        raise KindError(path, f"must be an integer from 0 to {MAX_FRAME_NUMBER}, got {value!r}")
    return value


def _check_rate(value: Any, path: str) -> float | None:
    if value is None:
        return None
    try:
        number = (
            float(value)
            if isinstance(value, (int, float)) and not isinstance(value, bool)
            else math.nan
        )
    except OverflowError:  # an int beyond float range
        number = math.inf
    if not math.isfinite(number) or number < 0:
        raise KindError(path, f"must be a finite number >= 0 or null, got {value!r}")
    return number


def _check_timestamp(value: Any, path: str, naive_ok: bool) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise KindError(
            path,
            f"must be a date (CBOR tag 0, RFC 3339 text with a UTC offset), got {describe(value)}",
        )
    offset = value.utcoffset()
    if offset is None:
        if not naive_ok:
            raise KindError(path, "needs a UTC offset")
    elif offset % dt.timedelta(minutes=1):
        raise KindError(
            path, f"UTC offset {offset} is not a whole number of minutes (RFC 3339 cannot write it)"
        )
    return value


def check_video_metadata(value: VideoMetadata, path: str, naive_ok: bool = True) -> None:
    """Raises KindError naming the first bad field of ``value``."""
    if not isinstance(value.video_identifier, str):
        raise KindError(
            f"{path}.video_identifier", f"must be text, got {describe(value.video_identifier)}"
        )
    _check_frame_number(value.frame_number, f"{path}.frame_number")
    _check_timestamp(value.frame_timestamp, f"{path}.frame_timestamp", naive_ok)
    _check_rate(value.fps, f"{path}.fps")
    _check_rate(value.measured_fps, f"{path}.measured_fps")
    if value.comes_from_video_file is not None and not isinstance(
        value.comes_from_video_file, bool
    ):
        raise KindError(
            f"{path}.comes_from_video_file",
            f"must be a bool or null, got {value.comes_from_video_file!r}",
        )


def _wire_rate(value: float | None) -> float | int | None:
    if value is None:
        return None
    value = float(value)
    return int(value) if value.is_integer() and 0 <= value <= _UINT32_MAX else value


def _build(fields: dict[str, Any], path: str, naive_ok: bool) -> VideoMetadata:
    missing = [name for name in REQUIRED if name not in fields]
    if missing:
        raise KindError(path, f"missing field {missing[0]!r}")
    for name in ("fps", "measured_fps"):  # checked before the constructor reads them as floats
        _check_rate(fields.get(name), f"{path}.{name}")
    value = VideoMetadata(
        video_identifier=fields["video_identifier"],
        frame_number=fields["frame_number"],
        frame_timestamp=fields["frame_timestamp"],
        fps=fields.get("fps"),
        measured_fps=fields.get("measured_fps"),
        comes_from_video_file=fields.get("comes_from_video_file"),
    )
    check_video_metadata(value, path, naive_ok)
    return value


class VideoMetadataKind:
    name: ClassVar[str] = "video_metadata"
    tags: ClassVar[tuple[int, ...]] = (VIDEO_METADATA_TAG,)
    json_type: ClassVar[str] = "video_metadata"
    python_types: ClassVar[tuple[type, ...]] = (VideoMetadata,)

    def from_cbor(self, tag: int, content: Any, path: str, codec: Codec) -> VideoMetadata:
        if not isinstance(content, Mapping):
            raise KindError(
                path,
                f"tag {tag} must hold a map of the video metadata fields, got {describe(content)}",
            )
        for key in content:
            if key not in FIELDS:
                raise KindError(path, f"unknown field {key!r} (fields: {', '.join(FIELDS)})")
        return _build(content, path, naive_ok=False)

    def to_cbor(self, value: VideoMetadata, path: str, codec: Codec) -> dict[str, Any]:
        check_video_metadata(value, path)
        timestamp = value.frame_timestamp
        if (
            timestamp.tzinfo is None
        ):  # datetime.now() in a block: read as UTC, as everywhere on the wire
            timestamp = timestamp.replace(tzinfo=dt.timezone.utc)
        return {
            "video_identifier": value.video_identifier,
            "frame_number": value.frame_number,
            "frame_timestamp": timestamp,
            "fps": _wire_rate(value.fps),
            "measured_fps": _wire_rate(value.measured_fps),
            "comes_from_video_file": value.comes_from_video_file,
        }

    def from_json(self, obj: dict[str, Any], path: str, codec: Codec) -> VideoMetadata:
        """Also reads the form nested in a workflow_image (no ``_type``); extra keys are ignored, as Inference does."""
        fields = {key: obj[key] for key in FIELDS if key in obj}
        if "frame_timestamp" in fields:
            at = f"{path}.frame_timestamp"
            timestamp = codec.decode_value(
                fields["frame_timestamp"], at
            )  # the {"_type": "datetime"} marker
            if isinstance(timestamp, str):
                try:
                    timestamp = dt.datetime.fromisoformat(timestamp)
                except ValueError:
                    raise KindError(at, f"not an ISO 8601 datetime: {timestamp!r}") from None
            fields["frame_timestamp"] = timestamp
        return _build(fields, path, naive_ok=True)

    def to_json(self, value: VideoMetadata, path: str, codec: Codec) -> dict[str, Any]:
        return {"_type": "video_metadata", **fields_to_json(value, path)}


def fields_to_json(value: VideoMetadata, path: str) -> dict[str, Any]:
    """The six fields as Inference's webexec JSON writes them (what a workflow_image nests)."""
    check_video_metadata(value, path)
    return {
        "video_identifier": value.video_identifier,
        "frame_number": value.frame_number,
        "frame_timestamp": {"_type": "datetime", "value": value.frame_timestamp.isoformat()},
        "fps": value.fps,
        "measured_fps": value.measured_fps,
        "comes_from_video_file": value.comes_from_video_file,
    }


KIND = VideoMetadataKind()
