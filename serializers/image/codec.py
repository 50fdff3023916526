"""image, Python half (twin of index.ts): ``WorkflowImageData`` <-> CBOR tag 61441.

CBOR: tag 61441 over a map, fields written in this order:

    pixels          ndarray (tag 40): H×W gray, or H×W×C with C = 1, 3 (BGR) or 4 (BGRA);
                    uint8 or uint16; H and W from 1 to 16384
      — or —
    encoded         byte string: the image file exactly as sent (JPEG, PNG, WebP, BMP or
                    TIFF, told by its magic bytes)
    parent_id       text
    parent_origin   {offset_x, offset_y, width, height}: where the image sits in its
                    parent; omitted when unknown (then (0, 0, W, H) once read)
    root_parent_id  text (read as parent_id when missing)
    root_origin     {offset_x, offset_y, width, height}, omitted when unknown
    image_reference text, omitted when none
    video_metadata  video_metadata kind (tag 61443), omitted when none

Exactly one of ``pixels`` and ``encoded``. Neither is re-encoded on the way: an image that
arrived encoded and whose ``numpy_image`` no block has read goes back as the same bytes;
otherwise its pixels go back, bit for bit. In worker frames a large ``encoded`` travels in
the sidecar, like ndarray bytes. Origin numbers are integers, offsets >= 0, sizes >= 1.

JSON: Roboflow's webexec form, ``{"_type": "workflow_image", "type": "base64", "value":
b64, "video_metadata"?, "parent_id", "parent_origin"?, "root_parent_id"?,
"root_parent_origin"?}``. It is lossy where CBOR is not: an image whose pixels must be
written is JPEG-encoded (quality 95; PNG for BGRA and 16-bit images); the original bytes
are written, unchanged, when the image still has them. Read: ``value`` as base64 (a
``data:`` URI too) or as an ndarray form, or, instead of ``type`` and ``value``, the
image file's bytes themselves as ``_jpeg_bytes`` (the form Inference's msgpack websocket
transport sends; kept as they are, like base64's); ``parent_id`` defaults to the input's
name, the root to the parent, as Inference reads it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from ..kind import Codec, KindError
from ..video_metadata.codec import KIND as VIDEO_METADATA
from ..video_metadata.codec import describe
from ..video_metadata.codec import fields_to_json as video_metadata_fields_to_json
from ..video_metadata.entity import VideoMetadata
from .entity import (
    ImageParentMetadata,
    OriginCoordinatesSystem,
    WorkflowImageData,
    base64_payload,
    encode_pixels,
    image_format,
)

IMAGE_TAG = 61441
FIELDS = (
    "pixels",
    "encoded",
    "parent_id",
    "parent_origin",
    "root_parent_id",
    "root_origin",
    "image_reference",
    "video_metadata",
)
ORIGIN_FIELDS = ("offset_x", "offset_y", "width", "height")
MAX_SIDE = 16384
CHANNELS = (1, 3, 4)
DTYPES = ("uint8", "uint16")
MAX_COORDINATE = 2**31 - 1
FORMATS = ("jpeg", "png", "webp", "bmp", "tiff")


def check_pixels(pixels: Any, path: str) -> np.ndarray:
    """``pixels`` if it is an image array, else KindError at ``path.shape`` / ``path.dtype``."""
    if not isinstance(pixels, np.ndarray):
        raise KindError(path, f"must be an ndarray (tag 40), got {describe(pixels)}")
    shape = list(pixels.shape)
    if pixels.ndim not in (2, 3):
        raise KindError(
            f"{path}.shape", f"an image is H×W or H×W×C, got {pixels.ndim} dimensions {shape}"
        )
    if not all(1 <= side <= MAX_SIDE for side in shape[:2]):
        raise KindError(f"{path}.shape", f"height and width must be 1 to {MAX_SIDE}, got {shape}")
    if pixels.ndim == 3 and shape[2] not in CHANNELS:
        raise KindError(f"{path}.shape", f"channels must be 1, 3 (BGR) or 4 (BGRA), got {shape[2]}")
    if pixels.dtype.name not in DTYPES:
        raise KindError(f"{path}.dtype", f"an image is uint8 (or uint16), got {pixels.dtype}")
    return pixels


def check_encoded(data: Any, path: str) -> str:
    """The format of the encoded image bytes ``data``, else KindError at ``path``."""
    if len(data) == 0:
        raise KindError(path, "the encoded image is empty")
    found = image_format(data)
    if found is None:
        raise KindError(
            path, f"not a JPEG, PNG, WebP, BMP or TIFF file (starts with {bytes(data[:8]).hex()})"
        )
    return found


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_text(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise KindError(path, f"must be text, got {describe(value)}")
    return value


def _read_origin(content: Any, path: str) -> OriginCoordinatesSystem:
    if not isinstance(content, Mapping):
        raise KindError(
            path, f"must be a map {{{', '.join(ORIGIN_FIELDS)}}}, got {describe(content)}"
        )
    for key in content:
        if key not in ORIGIN_FIELDS:
            raise KindError(path, f"unknown field {key!r} (fields: {', '.join(ORIGIN_FIELDS)})")
    values = []
    for key in ORIGIN_FIELDS:
        if key not in content:
            raise KindError(path, f"missing field {key!r}")
        values.append(content[key])
    origin = OriginCoordinatesSystem(*values)
    _check_origin(origin, path)
    return origin


def _check_origin(origin: Any, path: str) -> None:
    if not isinstance(origin, OriginCoordinatesSystem):
        raise KindError(path, f"must be an OriginCoordinatesSystem, got {describe(origin)}")
    for key, value, least in zip(ORIGIN_FIELDS, _origin_values(origin), (0, 0, 1, 1)):
        if not _is_int(value) or not least <= value <= MAX_COORDINATE:
            raise KindError(
                f"{path}.{key}",
                f"must be an integer from {least} to {MAX_COORDINATE}, got {value!r}",
            )


def _origin_values(origin: OriginCoordinatesSystem) -> tuple[Any, Any, Any, Any]:
    return origin.left_top_x, origin.left_top_y, origin.origin_width, origin.origin_height


def _origin_map(origin: OriginCoordinatesSystem) -> dict[str, int]:
    return dict(zip(ORIGIN_FIELDS, _origin_values(origin)))


def _check_parent(parent: Any, path: str, id_field: str, origin_field: str) -> None:
    if not isinstance(parent, ImageParentMetadata):
        raise KindError(
            f"{path}.{id_field}",
            f"the metadata holding it must be an ImageParentMetadata, got {describe(parent)}",
        )
    _check_text(parent.parent_id, f"{path}.{id_field}")
    if parent.origin_coordinates is not None:
        _check_origin(parent.origin_coordinates, f"{path}.{origin_field}")


def _parameter_name(path: str) -> str:
    # Inference names an image's parent after the input it came in: "inputs.image[0]" -> "image".
    last = re.sub(r"\[[^\]]*\]", "", path).split(".")[-1]
    return last or "image"


def _metadata(
    parent_id: str,
    origin: OriginCoordinatesSystem | None,
    root_id: str | None,
    root_origin: OriginCoordinatesSystem | None,
) -> tuple[ImageParentMetadata, ImageParentMetadata | None]:
    parent = ImageParentMetadata(parent_id=parent_id, origin_coordinates=origin)
    root = (
        None
        if root_id is None
        else ImageParentMetadata(parent_id=root_id, origin_coordinates=root_origin)
    )
    return parent, root


class ImageKind:
    name: ClassVar[str] = "image"
    tags: ClassVar[tuple[int, ...]] = (IMAGE_TAG,)
    json_type: ClassVar[str] = "workflow_image"
    python_types: ClassVar[tuple[type, ...]] = (WorkflowImageData,)

    def from_cbor(self, tag: int, content: Any, path: str, codec: Codec) -> WorkflowImageData:
        if not isinstance(content, Mapping):
            raise KindError(
                path, f"tag {tag} must hold a map of the image fields, got {describe(content)}"
            )
        for key in content:
            if key not in FIELDS:
                raise KindError(path, f"unknown field {key!r} (fields: {', '.join(FIELDS)})")
        if ("pixels" in content) == ("encoded" in content):
            raise KindError(
                path,
                "needs exactly one of 'pixels' (an ndarray) and 'encoded' (the image file's bytes)",
            )
        pixels = encoded = None
        if "pixels" in content:
            pixels = check_pixels(
                codec.decode_value(content["pixels"], f"{path}.pixels"), f"{path}.pixels"
            )
        else:
            encoded = codec.resolve_bytes(content["encoded"], f"{path}.encoded")
            check_encoded(encoded, f"{path}.encoded")
        if "parent_id" not in content:
            raise KindError(path, "missing field 'parent_id'")
        parent_id = _check_text(content["parent_id"], f"{path}.parent_id")
        origin = self._optional(content, "parent_origin", path, _read_origin)
        root_id = self._optional(content, "root_parent_id", path, _check_text)
        root_origin = self._optional(content, "root_origin", path, _read_origin)
        if root_id is None and root_origin is not None:
            raise KindError(f"{path}.root_origin", "given without root_parent_id")
        reference = self._optional(content, "image_reference", path, _check_text)
        video_metadata = self._optional(
            content,
            "video_metadata",
            path,
            lambda value, at: self._video_metadata(value, at, codec),
        )
        parent, root = _metadata(parent_id, origin, root_id, root_origin)
        return WorkflowImageData(
            parent_metadata=parent,
            workflow_root_ancestor_metadata=root,
            image_reference=reference,
            numpy_image=pixels,
            video_metadata=video_metadata,
            encoded_image=encoded,
        )

    @staticmethod
    def _optional(content: Mapping[Any, Any], key: str, path: str, read: Any) -> Any:
        value = content.get(key)
        return None if value is None else read(value, f"{path}.{key}")

    @staticmethod
    def _video_metadata(value: Any, path: str, codec: Codec) -> VideoMetadata:
        decoded = codec.decode_value(value, path)
        if not isinstance(decoded, VideoMetadata):
            raise KindError(
                path,
                f"must be a video_metadata (tag {VIDEO_METADATA.tags[0]}), got {describe(decoded)}",
            )
        return decoded

    def to_cbor(self, value: WorkflowImageData, path: str, codec: Codec) -> dict[str, Any]:
        parent, root = value._parent_metadata, value._workflow_root_ancestor_metadata
        _check_parent(parent, path, "parent_id", "parent_origin")
        _check_parent(root, path, "root_parent_id", "root_origin")
        content: dict[str, Any] = {}
        source = value.source_bytes()
        if source is not None:
            content["encoded"] = codec.wrap_bytes(memoryview(source).cast("B"))
        else:
            pixels = check_pixels(value.numpy_image, f"{path}.pixels")
            content["pixels"] = codec.encode_value(pixels, f"{path}.pixels")
        content["parent_id"] = parent.parent_id
        if parent.origin_coordinates is not None:
            content["parent_origin"] = _origin_map(parent.origin_coordinates)
        content["root_parent_id"] = root.parent_id
        if root.origin_coordinates is not None:
            content["root_origin"] = _origin_map(root.origin_coordinates)
        if value._image_reference is not None:
            content["image_reference"] = _check_text(
                value._image_reference, f"{path}.image_reference"
            )
        if value._video_metadata is not None:
            if not isinstance(value._video_metadata, VideoMetadata):
                raise KindError(
                    f"{path}.video_metadata",
                    f"must be a VideoMetadata, got {describe(value._video_metadata)}",
                )
            content["video_metadata"] = codec.encode_value(
                value._video_metadata, f"{path}.video_metadata"
            )
        return content

    def from_json(self, obj: dict[str, Any], path: str, codec: Codec) -> WorkflowImageData:
        kind = obj.get("type", "base64")
        if kind != "base64":
            raise KindError(
                f"{path}.type",
                f"only base64 images are read, got {kind!r} (a sandbox does not fetch URLs or files)",
            )
        pixels = encoded = None
        raw = obj.get("value")
        if "_jpeg_bytes" in obj:
            if "value" in obj:
                raise KindError(path, "has both '_jpeg_bytes' and 'value': one image, one form")
            encoded = codec.resolve_bytes(obj["_jpeg_bytes"], f"{path}._jpeg_bytes")
            check_encoded(encoded, f"{path}._jpeg_bytes")
        elif isinstance(raw, str):
            try:
                encoded = base64.b64decode(base64_payload(raw), validate=True)
            except (binascii.Error, ValueError):
                raise KindError(f"{path}.value", "not valid base64") from None
            check_encoded(encoded, f"{path}.value")
        elif isinstance(raw, Mapping):
            pixels = check_pixels(codec.decode_value(raw, f"{path}.value"), f"{path}.value")
        else:
            raise KindError(f"{path}.value", f"must be a base64 string, got {describe(raw)}")
        parent_id = obj.get("parent_id") or _parameter_name(path)
        _check_text(parent_id, f"{path}.parent_id")
        origin = (
            _read_origin(obj["parent_origin"], f"{path}.parent_origin")
            if obj.get("parent_origin")
            else None
        )
        root_id = obj.get("root_parent_id") or None
        root_origin = None
        if root_id is not None:
            _check_text(root_id, f"{path}.root_parent_id")
            if obj.get("root_parent_origin"):
                root_origin = _read_origin(obj["root_parent_origin"], f"{path}.root_parent_origin")
        video_metadata = None
        if obj.get("video_metadata") is not None:
            video_metadata = self._json_video_metadata(
                obj["video_metadata"], f"{path}.video_metadata", codec
            )
        parent, root = _metadata(parent_id, origin, root_id, root_origin)
        return WorkflowImageData(
            parent_metadata=parent,
            workflow_root_ancestor_metadata=root,
            numpy_image=pixels,
            video_metadata=video_metadata,
            encoded_image=encoded,
        )

    @staticmethod
    def _json_video_metadata(value: Any, path: str, codec: Codec) -> VideoMetadata:
        if not isinstance(value, Mapping):
            raise KindError(path, f"must be an object, got {describe(value)}")
        if "_type" in value:  # Inference's msgpack transport marks it; its JSON does not
            return ImageKind._video_metadata(value, path, codec)
        return VIDEO_METADATA.from_json(value, path, codec)

    def to_json(self, value: WorkflowImageData, path: str, codec: Codec) -> dict[str, Any]:
        parent, root = value._parent_metadata, value._workflow_root_ancestor_metadata
        _check_parent(parent, path, "parent_id", "parent_origin")
        _check_parent(root, path, "root_parent_id", "root_parent_origin")
        source = value.source_bytes()
        if source is None:
            source = encode_pixels(check_pixels(value.numpy_image, f"{path}.pixels"))
        out: dict[str, Any] = {
            "_type": "workflow_image",
            "type": "base64",
            "value": base64.b64encode(source).decode("ascii"),
        }
        if value._video_metadata is not None:
            if not isinstance(value._video_metadata, VideoMetadata):
                raise KindError(
                    f"{path}.video_metadata",
                    f"must be a VideoMetadata, got {describe(value._video_metadata)}",
                )
            out["video_metadata"] = video_metadata_fields_to_json(
                value._video_metadata, f"{path}.video_metadata"
            )
        out["parent_id"] = parent.parent_id
        if parent.origin_coordinates is not None:
            out["parent_origin"] = _origin_map(parent.origin_coordinates)
        if root is not parent and root != parent:
            out["root_parent_id"] = root.parent_id
            if root.origin_coordinates is not None:
                out["root_parent_origin"] = _origin_map(root.origin_coordinates)
        return out


KIND = ImageKind()
