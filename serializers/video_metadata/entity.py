"""``VideoMetadata``: which video a frame came from, and when. Roboflow Inference's fields
and defaults, as a plain dataclass (Inference's is a pydantic model; pydantic is not part
of the runtime), with the pydantic methods blocks tend to call (``dict``, ``model_dump``,
``model_copy``)."""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass
class VideoMetadata:
    video_identifier: str
    """Opaque name of the video or stream."""
    frame_number: int
    frame_timestamp: dt.datetime
    """When the frame was taken; CBOR keeps its UTC offset exactly."""
    fps: float | None = None
    """Frame rate of the source, when known."""
    measured_fps: float | None = None
    """Frame rate measured on a live stream."""
    comes_from_video_file: bool | None = None
    """True for a file, False for a stream, None when unknown."""

    def __post_init__(self) -> None:
        # Inference's pydantic model reads an int given for a float field as a float.
        for name in ("fps", "measured_fps"):
            value = getattr(self, name)
            if isinstance(value, int) and not isinstance(value, bool):
                setattr(self, name, float(value))

    def model_dump(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def dict(self) -> dict[str, Any]:  # pydantic v1 spelling, used by Inference's serializers
        return self.model_dump()

    def model_copy(self, update: dict[str, Any] | None = None, deep: bool = False) -> VideoMetadata:
        source = copy.deepcopy(self) if deep else self
        return replace(source, **(update or {}))
