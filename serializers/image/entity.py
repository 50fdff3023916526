"""``WorkflowImageData`` and its metadata, behaving like Roboflow Inference's (same names,
same constructor, same lazy properties, ``copy_and_replace`` and ``create_crop``), without
Inference or torch.

One addition: an image may hold the encoded bytes it arrived as (``encoded_image=``, what
the CBOR ``encoded`` form gives). Pixels are decoded from them only when a block reads
``numpy_image``; ``base64_image`` is those bytes, base64'd, never a re-encode. Until a
block has read ``numpy_image`` the image goes back out as the same bytes.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime as dt
import io
import urllib.request
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np
from PIL import Image

from ..video_metadata.entity import VideoMetadata

# Pillow loads its common format readers on first use: here, so a forked worker has them.
Image.preinit()

Bytes = bytes | bytearray | memoryview

JPEG_QUALITY = 95  # what Inference encodes with when it must turn pixels into base64
_URL_TIMEOUT_S = 30


@dataclass(frozen=True)
class OriginCoordinatesSystem:
    """Where an image sits in its parent: left-top corner and the parent's size, in pixels."""

    left_top_x: int
    left_top_y: int
    origin_width: int
    origin_height: int


@dataclass(frozen=True)
class ImageParentMetadata:
    parent_id: str
    origin_coordinates: OriginCoordinatesSystem | None = None


def image_format(data: Bytes) -> str | None:
    """``jpeg``, ``png``, ``webp``, ``bmp`` or ``tiff`` by the magic bytes; None otherwise."""
    head = bytes(data[:12])
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith(b"BM"):
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    return None


def base64_payload(text: str) -> str:
    """The base64 part of ``text``, without a ``data:image/…;base64,`` prefix."""
    if text.startswith("data:") and "," in text:
        return text.split(",", 1)[1]
    return text


def decode_image_bytes(data: Bytes) -> np.ndarray:
    """Pixels as stored: BGR/BGRA/gray, uint8 or uint16 (cv2.IMREAD_UNCHANGED)."""
    pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise ValueError(
            f"could not decode the {image_format(data) or 'image'} bytes ({len(data)} bytes)"
        )
    return pixels


def encoded_size(data: Bytes) -> tuple[int, int] | None:
    """(height, width) from an image file's header alone (Pillow reads no pixels for it), or
    None when Pillow cannot tell. The size as stored, as cv2.IMREAD_UNCHANGED decodes it (EXIF
    orientation not applied)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Exception:  # noqa: BLE001 - any file Pillow does not read: decode it instead
        return None
    return height, width


def encode_pixels(pixels: np.ndarray) -> bytes:
    """JPEG (quality 95) for 8-bit gray or BGR; PNG where JPEG cannot hold it (BGRA, uint16)."""
    jpeg_fits = pixels.dtype == np.uint8 and (pixels.ndim == 2 or pixels.shape[2] in (1, 3))
    ok, buffer = (
        cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if jpeg_fits
        else cv2.imencode(".png", pixels)
    )
    if not ok:
        raise ValueError(
            f"could not encode an image of shape {pixels.shape} and dtype {pixels.dtype}"
        )
    return buffer.tobytes()


_IMAGE_SOURCES = ("numpy_image", "base64_image", "image_reference", "tensor_image")
_REPLACEABLE = (
    *_IMAGE_SOURCES,
    "parent_metadata",
    "workflow_root_ancestor_metadata",
    "video_metadata",
)


class WorkflowImageData:
    """An image in a workflow, with where it came from.

    ``numpy_image`` is HWC BGR (BGRA with 4 channels) or H×W gray, as cv2 uses. It is the
    buffer itself: blocks may draw on it in place. Once a block has read it, the image is
    sent back as those pixels, since the original bytes may no longer describe it.
    ``base64_image`` keeps returning the original bytes, as in Inference, until
    ``declare_numpy_image_mutated()`` is called.
    """

    def __init__(
        self,
        parent_metadata: ImageParentMetadata,
        workflow_root_ancestor_metadata: ImageParentMetadata | None = None,
        image_reference: str | None = None,
        base64_image: str | None = None,
        numpy_image: np.ndarray | None = None,
        video_metadata: VideoMetadata | None = None,
        *,
        encoded_image: Bytes | None = None,
    ) -> None:
        if encoded_image is not None and len(encoded_image) == 0:
            raise ValueError("encoded_image is empty")
        if (
            numpy_image is None
            and encoded_image is None
            and not base64_image
            and not image_reference
        ):
            raise ValueError(
                "WorkflowImageData needs an image: numpy_image, base64_image, image_reference or encoded_image"
            )
        self._parent_metadata = parent_metadata
        # No root given: this image is its own root (one shared object, as in Inference).
        self._workflow_root_ancestor_metadata = workflow_root_ancestor_metadata or parent_metadata
        self._image_reference = image_reference
        self._base64_image = base64_image
        self._numpy_image = numpy_image
        self._video_metadata = video_metadata
        self._encoded_image = encoded_image
        # Pixels decoded from a source for a shape read only: not handed to a block, so the
        # source bytes still describe the image.
        self._decoded: np.ndarray | None = None

    # --- derived copies ---------------------------------------------------------------

    @classmethod
    def copy_and_replace(
        cls, origin_image_data: WorkflowImageData, **kwargs: Any
    ) -> WorkflowImageData:
        """A new image like ``origin_image_data`` with the given fields replaced.

        Fields: numpy_image, base64_image, image_reference, tensor_image (giving any of
        these replaces the whole image: the others not given become None),
        parent_metadata, workflow_root_ancestor_metadata, video_metadata. When the origin
        is its own root, replacing one of parent or root replaces both.
        """
        unknown = set(kwargs) - set(_REPLACEABLE)
        if unknown:
            raise TypeError(
                f"copy_and_replace() got unexpected fields: {', '.join(sorted(unknown))}"
            )
        if kwargs.get("tensor_image") is not None:
            raise ValueError(
                "tensor_image is not supported here (no torch in the runtime): pass numpy_image"
            )
        origin = origin_image_data
        parent = kwargs.get("parent_metadata", origin._parent_metadata)
        root = kwargs.get(
            "workflow_root_ancestor_metadata", origin._workflow_root_ancestor_metadata
        )
        if origin._workflow_root_ancestor_metadata is origin._parent_metadata:
            if "parent_metadata" in kwargs and "workflow_root_ancestor_metadata" not in kwargs:
                root = parent
            elif "workflow_root_ancestor_metadata" in kwargs and "parent_metadata" not in kwargs:
                parent = root
        new_image = any(name in kwargs for name in _IMAGE_SOURCES)
        image = cls(
            parent_metadata=parent,
            workflow_root_ancestor_metadata=root,
            image_reference=kwargs.get("image_reference") if new_image else origin._image_reference,
            base64_image=kwargs.get("base64_image") if new_image else origin._base64_image,
            numpy_image=kwargs.get("numpy_image") if new_image else origin._numpy_image,
            video_metadata=kwargs.get("video_metadata", origin._video_metadata),
            encoded_image=None if new_image else origin._encoded_image,
        )
        if not new_image:
            image._decoded = origin._decoded
        return image

    @classmethod
    def create_crop(
        cls,
        origin_image_data: WorkflowImageData,
        crop_identifier: str,
        cropped_image: np.ndarray,
        offset_x: int,
        offset_y: int,
        preserve_video_metadata: bool = False,
    ) -> WorkflowImageData:
        """A crop of ``origin_image_data`` whose left-top corner is at (offset_x, offset_y).

        Its parent is the origin image (named ``crop_identifier``, sized like the origin);
        its root is the origin's root, the offset added to the root's coordinates. Video
        metadata is kept only with ``preserve_video_metadata``, its identifier then
        suffixed ``" | crop: <crop_identifier>"``.
        """
        height, width = origin_image_data._shape()
        parent = ImageParentMetadata(
            parent_id=crop_identifier,
            origin_coordinates=OriginCoordinatesSystem(
                left_top_x=offset_x, left_top_y=offset_y, origin_width=width, origin_height=height
            ),
        )
        origin_root = origin_image_data.workflow_root_ancestor_metadata
        root_origin = origin_root.origin_coordinates
        assert root_origin is not None  # the property fills it in
        root = ImageParentMetadata(
            parent_id=origin_root.parent_id,
            origin_coordinates=replace(
                root_origin,
                left_top_x=root_origin.left_top_x + offset_x,
                left_top_y=root_origin.left_top_y + offset_y,
            ),
        )
        video_metadata = None
        if preserve_video_metadata and origin_image_data._video_metadata is not None:
            video_metadata = copy.copy(origin_image_data._video_metadata)
            video_metadata.video_identifier = (
                f"{video_metadata.video_identifier} | crop: {crop_identifier}"
            )
        return cls(
            parent_metadata=parent,
            workflow_root_ancestor_metadata=root,
            numpy_image=cropped_image,
            video_metadata=video_metadata,
        )

    # --- metadata -----------------------------------------------------------------------

    @property
    def parent_metadata(self) -> ImageParentMetadata:
        """Without known coordinates, the image is taken as covering its parent: (0, 0, W, H)."""
        if self._parent_metadata.origin_coordinates is None:
            shared = self._workflow_root_ancestor_metadata is self._parent_metadata
            self._parent_metadata = replace(
                self._parent_metadata, origin_coordinates=self._whole_image()
            )
            if shared:
                self._workflow_root_ancestor_metadata = self._parent_metadata
        return self._parent_metadata

    @property
    def workflow_root_ancestor_metadata(self) -> ImageParentMetadata:
        if self._workflow_root_ancestor_metadata.origin_coordinates is None:
            shared = self._workflow_root_ancestor_metadata is self._parent_metadata
            self._workflow_root_ancestor_metadata = replace(
                self._workflow_root_ancestor_metadata, origin_coordinates=self._whole_image()
            )
            if shared:
                self._parent_metadata = self._workflow_root_ancestor_metadata
        return self._workflow_root_ancestor_metadata

    @property
    def video_metadata(self) -> VideoMetadata:
        """The frame's video metadata; an image that has none gets Inference's default
        (identifier = parent id, frame 0, now, 30 fps), which is not sent back out."""
        if self._video_metadata is not None:
            return self._video_metadata
        return VideoMetadata(
            video_identifier=self._parent_metadata.parent_id,
            frame_number=0,
            frame_timestamp=dt.datetime.now(),
            fps=30,
            comes_from_video_file=None,
        )

    @property
    def image_reference(self) -> str | None:
        return self._image_reference

    # --- pixels and bytes ---------------------------------------------------------------

    @property
    def numpy_image(self) -> np.ndarray:
        if self._numpy_image is None:
            self._numpy_image = self._decoded if self._decoded is not None else self._load_pixels()
            self._decoded = None
        return self._numpy_image

    @property
    def base64_image(self) -> str:
        """The original bytes, base64'd, when the image came encoded; else the pixels as
        JPEG (quality 95; PNG for BGRA or 16-bit pixels, which JPEG cannot hold)."""
        if self._base64_image is None:
            data = (
                self._encoded_image
                if self._encoded_image is not None
                else encode_pixels(self.numpy_image)
            )
            self._base64_image = base64.b64encode(data).decode("ascii")
        return self._base64_image

    def declare_numpy_image_mutated(self) -> None:
        """Says that ``numpy_image`` was changed in place: the original bytes, base64 and
        reference no longer describe the image, and are dropped."""
        if self._numpy_image is None:
            raise ValueError(
                "declare_numpy_image_mutated(): numpy_image was never read, so it cannot have been changed"
            )
        self._base64_image = None
        self._encoded_image = None
        self._image_reference = None

    def is_tensor_materialised(self) -> bool:
        return False  # no torch here: blocks take the numpy path

    def to_inference_format(self, numpy_preferred: bool = False) -> dict[str, Any]:
        if numpy_preferred:
            return {"type": "numpy_object", "value": self.numpy_image}
        if self._image_reference:
            kind = "url" if self._image_reference.startswith(("http://", "https://")) else "file"
            return {"type": kind, "value": self._image_reference}
        if self._base64_image or self._encoded_image is not None:
            return {"type": "base64", "value": self.base64_image}
        return {"type": "numpy_object", "value": self.numpy_image}

    def source_bytes(self) -> Bytes | None:
        """The encoded bytes that still describe this image exactly, if any: the bytes it
        arrived as (or its given base64, decoded), as long as no block has read
        ``numpy_image`` (it may have drawn on it). None otherwise."""
        if self._numpy_image is not None:
            return None
        if self._encoded_image is not None:
            return self._encoded_image
        if self._base64_image:
            try:
                data = base64.b64decode(base64_payload(self._base64_image), validate=True)
            except (binascii.Error, ValueError):
                return None
            return data if image_format(data) else None
        return None

    def _load_pixels(self) -> np.ndarray:
        if self._encoded_image is not None:
            return decode_image_bytes(self._encoded_image)
        if self._base64_image:
            return decode_image_bytes(base64.b64decode(base64_payload(self._base64_image)))
        reference = self._image_reference or ""
        if reference.startswith(("http://", "https://")):
            with urllib.request.urlopen(reference, timeout=_URL_TIMEOUT_S) as response:  # noqa: S310 - http(s) only
                return decode_image_bytes(response.read())
        pixels = cv2.imread(reference)
        if pixels is None:
            raise ValueError(f"could not read an image from {reference!r}")
        return pixels

    def _shape(self) -> tuple[int, int]:
        """(height, width): from the pixels, else an encoded file's header (a block that only
        asks for metadata costs no decode), else decoding the source without handing pixels out."""
        if self._numpy_image is not None:
            pixels = self._numpy_image
        elif (
            self._decoded is None
            and self._encoded_image is not None
            and (size := encoded_size(self._encoded_image))
        ):
            return size
        else:
            if self._decoded is None:
                self._decoded = self._load_pixels()
            pixels = self._decoded
        return int(pixels.shape[0]), int(pixels.shape[1])

    def _whole_image(self) -> OriginCoordinatesSystem:
        height, width = self._shape()
        return OriginCoordinatesSystem(
            left_top_x=0, left_top_y=0, origin_width=width, origin_height=height
        )

    def __repr__(self) -> str:
        if self._numpy_image is not None:
            held = f"numpy_image {self._numpy_image.shape} {self._numpy_image.dtype}"
        elif self._encoded_image is not None:
            held = f"{image_format(self._encoded_image) or 'encoded'} bytes ({len(self._encoded_image)})"
        elif self._base64_image:
            held = "base64_image"
        else:
            held = f"image_reference {self._image_reference!r}"
        return f"WorkflowImageData(parent_id={self._parent_metadata.parent_id!r}, {held})"
