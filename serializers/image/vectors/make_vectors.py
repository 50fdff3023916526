"""Writes the image golden vectors. Run it only to add a vector on purpose:

    .venv/bin/python serializers/image/vectors/make_vectors.py

Each vector is ``<name>.cbor`` (the Python encoder's output) plus an entry in
``index.json``: what both languages must decode it to. ``source`` is ``pixels`` (dtype,
shape, little-endian bytes as hex) or ``encoded`` (format, the file's bytes as hex, and
for lossless formats the pixels it decodes to). The PNG and JPEG files were made with
cv2.imencode when the vectors were written; the committed bytes are the reference.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import cbor2
import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))
from serializers.image.entity import (
    ImageParentMetadata,
    OriginCoordinatesSystem,
    WorkflowImageData,
    image_format,
)  # noqa: E402
from serializers.registry import encode_outputs  # noqa: E402
from serializers.video_metadata.entity import VideoMetadata  # noqa: E402


def encoded(extension: str, pixels: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(extension, pixels)
    assert ok
    return buffer.tobytes()


def whole(parent_id: str, width: int, height: int) -> ImageParentMetadata:
    return ImageParentMetadata(parent_id, OriginCoordinatesSystem(0, 0, width, height))


PNG_PIXELS = np.arange(3 * 4 * 3, dtype=np.uint8).reshape(3, 4, 3) * 7
FRAME = WorkflowImageData(
    whole("frame", 1920, 1080), numpy_image=np.zeros((1080, 1920, 3), dtype=np.uint8)
)
FIRST_CROP = WorkflowImageData.create_crop(
    FRAME, "crop-a", np.zeros((400, 600, 3), dtype=np.uint8), offset_x=100, offset_y=50
)
IST = dt.timezone(dt.timedelta(hours=5, minutes=30))

VECTORS = {
    "pixels-bgr-2x3": WorkflowImageData(
        whole("image", 3, 2), numpy_image=np.arange(18, dtype=np.uint8).reshape(2, 3, 3)
    ),
    "pixels-gray-3x2": WorkflowImageData(
        ImageParentMetadata("gray"),
        numpy_image=np.array([[0, 255], [1, 254], [128, 127]], dtype=np.uint8),
    ),
    "pixels-bgra-2x2": WorkflowImageData(
        ImageParentMetadata("bgra"),
        numpy_image=np.array(
            [[[1, 2, 3, 0], [4, 5, 6, 128]], [[7, 8, 9, 255], [10, 11, 12, 64]]], dtype=np.uint8
        ),
    ),
    "pixels-uint16-gray-2x2": WorkflowImageData(
        ImageParentMetadata("depth"), numpy_image=np.array([[0, 1], [4095, 65535]], dtype=np.uint16)
    ),
    "encoded-png-with-reference": WorkflowImageData(
        ImageParentMetadata("frame-17"),
        image_reference="camera-1/frame-17.png",
        encoded_image=encoded(".png", PNG_PIXELS),
    ),
    "encoded-jpeg": WorkflowImageData(
        ImageParentMetadata("snapshot"),
        encoded_image=encoded(".jpg", np.full((8, 8, 3), 200, dtype=np.uint8)),
    ),
    # a crop of a crop: parent is the first crop, root the 1920×1080 frame, offsets summed.
    "crop-of-crop": WorkflowImageData.create_crop(
        FIRST_CROP, "crop-b", np.full((2, 2, 3), 9, dtype=np.uint8), offset_x=30, offset_y=40
    ),
    "with-video-metadata": WorkflowImageData(
        whole("stream-frame", 1, 1),
        numpy_image=np.array([[[255, 0, 7]]], dtype=np.uint8),
        video_metadata=VideoMetadata(
            "rtsp://cam-7/stream",
            1234,
            dt.datetime(2024, 5, 1, 12, 34, 56, 500000, tzinfo=IST),
            fps=25.0,
            measured_fps=24.9,
            comes_from_video_file=False,
        ),
    ),
}


def origin(metadata: ImageParentMetadata) -> dict | None:
    c = metadata.origin_coordinates
    return (
        None
        if c is None
        else {
            "offset_x": c.left_top_x,
            "offset_y": c.left_top_y,
            "width": c.origin_width,
            "height": c.origin_height,
        }
    )


def pixels_entry(pixels: np.ndarray) -> dict:
    little = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("<"))
    return {"dtype": pixels.dtype.name, "shape": list(pixels.shape), "hex": little.tobytes().hex()}


def describe(image: WorkflowImageData) -> dict:
    source = image.source_bytes()
    if source is None:
        entry: dict = {"source": "pixels", **pixels_entry(image.numpy_image)}
    else:
        entry = {"source": "encoded", "format": image_format(source), "hex": bytes(source).hex()}
        if entry["format"] == "png":
            entry["decoded"] = pixels_entry(
                cv2.imdecode(np.frombuffer(source, np.uint8), cv2.IMREAD_UNCHANGED)
            )
    video = image._video_metadata
    return {
        **entry,
        "parent_id": image._parent_metadata.parent_id,
        "parent_origin": origin(image._parent_metadata),
        "root_parent_id": image._workflow_root_ancestor_metadata.parent_id,
        "root_origin": origin(image._workflow_root_ancestor_metadata),
        "image_reference": image.image_reference,
        "video_metadata": None
        if video is None
        else {
            "video_identifier": video.video_identifier,
            "frame_number": video.frame_number,
            "frame_timestamp": video.frame_timestamp.isoformat().replace("+00:00", "Z"),
            "fps": video.fps,
            "measured_fps": video.measured_fps,
            "comes_from_video_file": video.comes_from_video_file,
        },
    }


def main() -> None:
    index = []
    for name, image in VECTORS.items():
        tree, _ = encode_outputs(image)
        (HERE / f"{name}.cbor").write_bytes(cbor2.dumps(tree))
        index.append({"name": name, **describe(image)})
    (HERE / "index.json").write_text(json.dumps(index, indent=2) + "\n")


if __name__ == "__main__":
    main()
