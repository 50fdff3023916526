"""detections where supervision is not installed: the Python client without its
``supervision`` extra (the runtime always has it). The tag and the JSON marker are still
known, so a detections value is an error that says what to install, not an unknown tag.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..kind import Codec, KindError

_NEEDS = "detections need supervision: pip install 'blockgate[supervision]'"


class DetectionsUnavailable:
    name: ClassVar[str] = "detections"
    tags: ClassVar[tuple[int, ...]] = (61442,)  # DETECTIONS_TAG in codec.py
    json_type: ClassVar[str] = "sv_detections"
    python_types: ClassVar[tuple[type, ...]] = ()

    def from_cbor(self, tag: int, content: Any, path: str, codec: Codec) -> Any:
        raise KindError(path, _NEEDS)

    def to_cbor(self, value: Any, path: str, codec: Codec) -> Any:
        raise KindError(path, _NEEDS)

    def from_json(self, obj: dict[str, Any], path: str, codec: Codec) -> Any:
        raise KindError(path, _NEEDS)

    def to_json(self, value: Any, path: str, codec: Codec) -> dict[str, Any]:
        raise KindError(path, _NEEDS)


KIND = DetectionsUnavailable()
