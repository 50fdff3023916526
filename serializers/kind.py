"""What a serializer plugin is, Python side: the twin of serializers/serializer.ts.

A kind has CBOR tags it is carried under, a JSON form (Roboflow's ``_type`` markers)
and the Python types it is encoded from. Plugins call back into a ``Codec`` for values
nested inside them (an image's video metadata, a detection column), so the registry
keeps paths, depth caps and the frame's sidecar buffers in one place.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol


class KindError(ValueError):
    """A value that does not fit its kind; ``path`` says where (``inputs.dets.confidence``)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class Codec(Protocol):
    """What a plugin may ask of the registry while it decodes or encodes."""

    def decode_value(self, value: Any, path: str) -> Any:
        """Decode a nested value (kinds inside it included)."""

    def encode_value(self, value: Any, path: str) -> Any:
        """Encode a nested value in the current mode (``cbor`` or ``json``)."""

    def resolve_bytes(self, content: Any, path: str) -> bytes | memoryview:
        """The bytes of a byte string or of a reference into the frame's sidecar buffers."""

    def wrap_bytes(self, data: memoryview) -> Any:
        """CBOR content for a large byte payload: a sidecar reference when the frame has sidecars."""

    @property
    def mode(self) -> str:
        """``cbor`` or ``json``: the form outputs are encoded in."""


class Kind(Protocol):
    name: ClassVar[str]
    tags: ClassVar[tuple[int, ...]]
    """CBOR tags decoded as this kind; the first is the one it is encoded under."""
    json_type: ClassVar[str]
    """The ``_type`` marker of its JSON form."""
    python_types: ClassVar[tuple[type, ...]]
    """Values of these types are encoded as this kind."""

    def from_cbor(self, tag: int, content: Any, path: str, codec: Codec) -> Any: ...

    def to_cbor(self, value: Any, path: str, codec: Codec) -> Any:
        """The tag content (the registry adds the tag)."""

    def from_json(self, obj: dict[str, Any], path: str, codec: Codec) -> Any: ...

    def to_json(self, value: Any, path: str, codec: Codec) -> dict[str, Any]:
        """The JSON form, ``_type`` marker included."""
