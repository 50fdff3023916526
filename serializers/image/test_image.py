"""image, Python half: golden vectors, bit-exact round trips (pixels and encoded bytes,
sidecar or not), what a block does with an image, Roboflow's semantics, validation with
paths, the webexec JSON form."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import cbor2
import cv2
import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from runtime import entities
from runtime.entities import Batch
from serializers.image.codec import IMAGE_TAG
from serializers.image.entity import ImageParentMetadata, OriginCoordinatesSystem, WorkflowImageData
from serializers.kind import KindError
from serializers.registry import SIDECAR_TAG, decode_inputs, encode_document, encode_outputs
from serializers.testing import cbor_round_trip
from serializers.video_metadata.codec import VIDEO_METADATA_TAG
from serializers.video_metadata.entity import VideoMetadata

VECTORS = Path(__file__).parent / "vectors"
INDEX = json.loads((VECTORS / "index.json").read_text())
IST = dt.timezone(dt.timedelta(hours=5, minutes=30))


def encode(value) -> bytes:
    tree, _ = encode_outputs(value)
    return cbor2.dumps(tree)


def decode(raw: bytes):
    return decode_inputs({"image": cbor2.loads(raw)})["image"]


def imencode(extension: str, pixels: np.ndarray, *params: int) -> bytes:
    ok, buffer = cv2.imencode(extension, pixels, list(params))
    assert ok
    return buffer.tobytes()


def origin_of(metadata: ImageParentMetadata):
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


def pixels_of(entry) -> np.ndarray:
    dtype = np.dtype(entry["dtype"]).newbyteorder("<")
    return np.frombuffer(bytes.fromhex(entry["hex"]), dtype=dtype).reshape(entry["shape"])


# --- golden vectors ------------------------------------------------------------------


@pytest.mark.parametrize("entry", INDEX, ids=[e["name"] for e in INDEX])
def test_golden_vector_decodes_and_reencodes(entry):
    raw = (VECTORS / f"{entry['name']}.cbor").read_bytes()
    image = decode(raw)
    assert isinstance(image, WorkflowImageData)
    # Re-encode before reading numpy_image: reading it makes an encoded image go back as pixels.
    assert encode(image).hex() == raw.hex()
    assert image._parent_metadata.parent_id == entry["parent_id"]
    assert origin_of(image._parent_metadata) == entry["parent_origin"]
    assert image._workflow_root_ancestor_metadata.parent_id == entry["root_parent_id"]
    assert origin_of(image._workflow_root_ancestor_metadata) == entry["root_origin"]
    assert image.image_reference == entry["image_reference"]
    video, expected = image._video_metadata, entry["video_metadata"]
    if expected is None:
        assert video is None
    else:
        assert (
            video.video_identifier == expected["video_identifier"]
            and video.frame_number == expected["frame_number"]
        )
        assert (
            video.frame_timestamp.isoformat().replace("+00:00", "Z") == expected["frame_timestamp"]
        )
        assert (video.fps, video.measured_fps, video.comes_from_video_file) == (
            expected["fps"],
            expected["measured_fps"],
            expected["comes_from_video_file"],
        )
    if entry["source"] == "pixels":
        assert image.numpy_image.dtype == np.dtype(entry["dtype"])
        np.testing.assert_array_equal(image.numpy_image, pixels_of(entry))
    else:
        assert bytes(image.source_bytes()).hex() == entry["hex"]
        assert (
            base64.b64decode(image.base64_image).hex() == entry["hex"]
        )  # the same bytes, not a re-encode
        if "decoded" in entry:
            np.testing.assert_array_equal(image.numpy_image, pixels_of(entry["decoded"]))


# --- round trips ---------------------------------------------------------------------

parent_ids = st.text(max_size=12)
origins = st.one_of(
    st.none(),
    st.builds(
        OriginCoordinatesSystem,
        st.integers(0, 2**31 - 1),
        st.integers(0, 2**31 - 1),
        st.integers(1, 2**31 - 1),
        st.integers(1, 2**31 - 1),
    ),
)
metadata = st.builds(ImageParentMetadata, parent_ids, origins)
timestamps = st.builds(
    lambda naive, minutes: naive.replace(tzinfo=dt.timezone(dt.timedelta(minutes=minutes))),
    st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)),
    st.integers(-(23 * 60 + 59), 23 * 60 + 59),
)
videos = st.one_of(
    st.none(),
    st.builds(
        VideoMetadata,
        st.text(max_size=12),
        st.integers(0, 2**53 - 1),
        timestamps,
        st.one_of(st.none(), st.floats(0, 1e9)),
        st.none(),
        st.one_of(st.none(), st.booleans()),
    ),
)
image_arrays = st.one_of(
    hnp.arrays(
        st.sampled_from([np.uint8, np.uint16]),
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=40),
    ),
    st.tuples(
        st.integers(1, 40),
        st.integers(1, 40),
        st.sampled_from([1, 3, 4]),
        st.sampled_from([np.uint8, np.uint16]),
    ).flatmap(lambda s: hnp.arrays(s[3], s[:3])),
)


@st.composite
def images(draw):
    parent = draw(metadata)
    root = draw(st.one_of(st.none(), metadata))
    reference = draw(st.one_of(st.none(), st.text(max_size=20)))
    video = draw(videos)
    if draw(st.booleans()):
        return WorkflowImageData(
            parent,
            root,
            image_reference=reference,
            numpy_image=draw(image_arrays),
            video_metadata=video,
        )
    # Encoded bytes travel as they are: a real PNG (large enough for the sidecar at times)
    # or any bytes behind a known magic, since nothing decodes them on the way.
    if draw(st.booleans()):
        data = imencode(".png", draw(image_arrays))
    else:
        magic = draw(
            st.sampled_from(
                [
                    b"\xff\xd8\xff",
                    b"\x89PNG\r\n\x1a\n",
                    b"RIFF\0\0\0\0WEBP",
                    b"BM",
                    b"II*\0",
                    b"MM\0*",
                ]
            )
        )
        data = magic + draw(st.binary(max_size=5000))
    return WorkflowImageData(
        parent, root, image_reference=reference, video_metadata=video, encoded_image=data
    )


def assert_same_image(back: WorkflowImageData, sent: WorkflowImageData):
    assert back._parent_metadata == sent._parent_metadata
    assert back._workflow_root_ancestor_metadata == sent._workflow_root_ancestor_metadata
    assert back.image_reference == sent.image_reference
    assert back._video_metadata == sent._video_metadata
    if sent._video_metadata is not None:
        assert (
            back._video_metadata.frame_timestamp.utcoffset()
            == sent._video_metadata.frame_timestamp.utcoffset()
        )
    if sent._numpy_image is None:
        assert back._numpy_image is None and bytes(back.source_bytes()) == bytes(
            sent._encoded_image
        )
    else:
        got, want = back.numpy_image, sent.numpy_image
        assert (got.dtype, got.shape) == (
            want.dtype,
            want.shape,
        ) and got.tobytes() == want.tobytes()
        assert got.flags.writeable


@settings(max_examples=200, deadline=None)
@given(images(), st.booleans())
def test_images_round_trip_bit_exact(image, sidecar):
    back = cbor_round_trip(image, sidecar)
    assert_same_image(back, image)
    assert encode(back) == encode(image)


def test_large_payloads_ride_in_the_sidecar():
    pixels = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    png = imencode(".png", pixels)
    assert len(png) > 4096
    for image, field in [
        (WorkflowImageData(ImageParentMetadata("a"), encoded_image=png), "encoded"),
        (WorkflowImageData(ImageParentMetadata("a"), numpy_image=pixels), "pixels"),
    ]:
        tree, buffers = encode_outputs(image, sidecar=True)
        assert len(buffers) == 1
        content = tree.value[field]
        reference = content if field == "encoded" else content.value[1].value
        assert reference.tag == SIDECAR_TAG
        back = cbor_round_trip(image, sidecar=True)
        np.testing.assert_array_equal(back.numpy_image, pixels)


def test_a_batch_of_images_round_trips():
    batch = Batch(
        [
            WorkflowImageData(ImageParentMetadata("a"), numpy_image=np.full((2, 2), 5, np.uint8)),
            WorkflowImageData(
                ImageParentMetadata("b"),
                encoded_image=imencode(".png", np.zeros((3, 3, 3), np.uint8)),
            ),
        ]
    )
    back = cbor_round_trip({"images": batch})["images"]
    assert [type(i) for i in back] == [WorkflowImageData, WorkflowImageData]
    assert [i.parent_metadata.parent_id for i in back] == ["a", "b"]
    assert back[0].numpy_image.tolist() == [[5, 5], [5, 5]]
    assert back[1]._numpy_image is None and bytes(back[1].source_bytes()) == batch[1]._encoded_image


# --- what blocks do ------------------------------------------------------------------


def block_inverts(image: WorkflowImageData) -> WorkflowImageData:
    return WorkflowImageData.copy_and_replace(image, numpy_image=255 - image.numpy_image)


@pytest.mark.parametrize("arrives_as", ["pixels", "png"])
def test_a_block_inverting_128s_returns_exactly_127s(arrives_as):
    grey = np.full((10, 10, 3), 128, dtype=np.uint8)
    sent = (
        WorkflowImageData(ImageParentMetadata("image"), numpy_image=grey)
        if arrives_as == "pixels"
        else WorkflowImageData(ImageParentMetadata("image"), encoded_image=imencode(".png", grey))
    )
    received = decode(encode(sent))
    returned = decode(encode(block_inverts(received)))
    assert returned.numpy_image.dtype == np.uint8 and returned.numpy_image.shape == (10, 10, 3)
    assert (returned.numpy_image == 127).all()


def test_an_encoded_jpeg_returned_untouched_is_byte_identical():
    jpeg = imencode(
        ".jpg",
        np.random.default_rng(2).integers(0, 256, (48, 64, 3), dtype=np.uint8),
        cv2.IMWRITE_JPEG_QUALITY,
        80,
    )
    sent = encode(WorkflowImageData(ImageParentMetadata("cam"), encoded_image=jpeg))
    received = decode(sent)
    returned = {
        "same": received,
        "new_metadata": WorkflowImageData.copy_and_replace(
            received, video_metadata=VideoMetadata("v", 1, dt.datetime(2024, 1, 1, tzinfo=IST))
        ),
    }
    out = decode_inputs(cbor2.loads(encode(returned)))
    assert encode(out["same"]) == sent  # the whole image, bit for bit
    assert bytes(out["new_metadata"].source_bytes()) == jpeg
    assert (
        base64.b64decode(received.base64_image) == jpeg
    )  # reading base64_image does not re-encode either
    assert received.parent_metadata.parent_id == "cam"


def test_a_block_drawing_in_place_gets_its_pixels_back():
    png = imencode(".png", np.zeros((4, 4, 3), np.uint8))
    received = decode(encode(WorkflowImageData(ImageParentMetadata("cam"), encoded_image=png)))
    received.numpy_image[1, 2] = (1, 2, 3)  # cv2.rectangle and friends draw in place
    tree, _ = encode_outputs(received)
    assert "pixels" in tree.value and "encoded" not in tree.value
    assert decode(cbor2.dumps(tree)).numpy_image[1, 2].tolist() == [1, 2, 3]


def test_numpy_image_is_decoded_lazily_and_unchanged():
    bgra = np.random.default_rng(3).integers(0, 256, (5, 6, 4), dtype=np.uint8)
    gray16 = np.random.default_rng(4).integers(0, 65536, (5, 6), dtype=np.uint16)
    for pixels in (bgra, gray16):
        image = decode(
            encode(
                WorkflowImageData(ImageParentMetadata("p"), encoded_image=imencode(".png", pixels))
            )
        )
        assert image._numpy_image is None
        np.testing.assert_array_equal(
            image.numpy_image, pixels
        )  # IMREAD_UNCHANGED: alpha, gray and 16 bits kept
        assert image.numpy_image.dtype == pixels.dtype


def test_reading_metadata_of_an_encoded_image_keeps_it_encoded():
    png = imencode(".png", np.zeros((3, 5, 3), np.uint8))
    image = decode(encode(WorkflowImageData(ImageParentMetadata("p"), encoded_image=png)))
    assert image.parent_metadata.origin_coordinates == OriginCoordinatesSystem(0, 0, 5, 3)
    assert image.workflow_root_ancestor_metadata.origin_coordinates == OriginCoordinatesSystem(
        0, 0, 5, 3
    )
    tree, _ = encode_outputs(image)
    assert bytes(tree.value["encoded"]) == png


@pytest.mark.parametrize("extension", [".jpg", ".png", ".webp", ".bmp", ".tiff"])
def test_an_encoded_images_size_comes_from_its_header_without_a_decode(extension):
    data = imencode(extension, np.zeros((7, 11, 3), np.uint8))
    image = WorkflowImageData(ImageParentMetadata("p"), encoded_image=data)
    assert image.parent_metadata.origin_coordinates == OriginCoordinatesSystem(0, 0, 11, 7)
    assert image._decoded is None and image._numpy_image is None  # no pixels were made
    assert image.numpy_image.shape[:2] == (7, 11)


def test_a_header_pillow_cannot_read_falls_back_to_the_decode(monkeypatch):
    data = imencode(".png", np.zeros((4, 6, 3), np.uint8))
    monkeypatch.setattr("serializers.image.entity.encoded_size", lambda _: None)
    image = WorkflowImageData(ImageParentMetadata("p"), encoded_image=data)
    assert image.parent_metadata.origin_coordinates == OriginCoordinatesSystem(0, 0, 6, 4)
    assert image._decoded is not None


def test_base64_image_of_pixels_is_a_jpeg():
    image = WorkflowImageData(
        ImageParentMetadata("p"), numpy_image=np.full((8, 8, 3), 100, np.uint8)
    )
    data = base64.b64decode(image.base64_image)
    assert data[:3] == b"\xff\xd8\xff"
    assert (
        np.abs(
            cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED).astype(int) - 100
        ).max()
        <= 2
    )


def test_video_metadata_defaults_like_inference_and_is_not_sent():
    image = WorkflowImageData(ImageParentMetadata("cam-3"), numpy_image=np.zeros((2, 2), np.uint8))
    default = image.video_metadata
    assert (
        default.video_identifier,
        default.frame_number,
        default.fps,
        default.comes_from_video_file,
    ) == ("cam-3", 0, 30.0, None)
    tree, _ = encode_outputs(image)
    assert "video_metadata" not in tree.value


def test_video_metadata_nests_as_its_own_kind():
    video = VideoMetadata("rtsp://x", 9, dt.datetime(2024, 5, 1, 12, tzinfo=IST), fps=25.0)
    tree, _ = encode_outputs(
        WorkflowImageData(
            ImageParentMetadata("p"), numpy_image=np.zeros((1, 1), np.uint8), video_metadata=video
        )
    )
    assert tree.tag == IMAGE_TAG and tree.value["video_metadata"].tag == VIDEO_METADATA_TAG
    back = cbor_round_trip(
        WorkflowImageData(
            ImageParentMetadata("p"), numpy_image=np.zeros((1, 1), np.uint8), video_metadata=video
        )
    )
    assert (
        back.video_metadata == video
        and back.video_metadata.frame_timestamp.utcoffset() == dt.timedelta(hours=5, minutes=30)
    )


# --- Roboflow semantics --------------------------------------------------------------


def test_create_crop_sets_parent_and_shifts_root():
    root = WorkflowImageData(
        ImageParentMetadata("frame", OriginCoordinatesSystem(0, 0, 1920, 1080)),
        numpy_image=np.zeros((1080, 1920, 3), np.uint8),
    )
    crop = WorkflowImageData.create_crop(
        root, "crop-1", np.zeros((100, 200, 3), np.uint8), offset_x=10, offset_y=20
    )
    assert crop.parent_metadata == ImageParentMetadata(
        "crop-1", OriginCoordinatesSystem(10, 20, 1920, 1080)
    )
    assert crop.workflow_root_ancestor_metadata == ImageParentMetadata(
        "frame", OriginCoordinatesSystem(10, 20, 1920, 1080)
    )
    nested = WorkflowImageData.create_crop(
        crop, "crop-2", np.zeros((10, 10, 3), np.uint8), offset_x=5, offset_y=7
    )
    assert nested.parent_metadata == ImageParentMetadata(
        "crop-2", OriginCoordinatesSystem(5, 7, 200, 100)
    )
    assert nested.workflow_root_ancestor_metadata == ImageParentMetadata(
        "frame", OriginCoordinatesSystem(15, 27, 1920, 1080)
    )
    assert nested._video_metadata is None


def test_create_crop_keeps_video_metadata_only_when_asked():
    video = VideoMetadata("cam", 4, dt.datetime(2024, 1, 1, tzinfo=IST))
    origin = WorkflowImageData(
        ImageParentMetadata("frame"), numpy_image=np.zeros((10, 10), np.uint8), video_metadata=video
    )
    kept = WorkflowImageData.create_crop(
        origin, "c", np.zeros((2, 2), np.uint8), 1, 1, preserve_video_metadata=True
    )
    assert (
        kept.video_metadata.video_identifier == "cam | crop: c"
        and kept.video_metadata.frame_number == 4
    )
    assert video.video_identifier == "cam"  # the origin's is a copy, untouched
    dropped = WorkflowImageData.create_crop(origin, "c", np.zeros((2, 2), np.uint8), 1, 1)
    assert dropped._video_metadata is None and dropped.video_metadata.video_identifier == "c"
    # an origin without known coordinates is taken as (0, 0, W, H)
    assert dropped.workflow_root_ancestor_metadata == ImageParentMetadata(
        "frame", OriginCoordinatesSystem(1, 1, 10, 10)
    )


def test_copy_and_replace():
    png = imencode(".png", np.zeros((2, 2, 3), np.uint8))
    parent = ImageParentMetadata("p", OriginCoordinatesSystem(0, 0, 2, 2))
    image = WorkflowImageData(parent, image_reference="ref", encoded_image=png)
    replaced = WorkflowImageData.copy_and_replace(image, numpy_image=np.ones((2, 2), np.uint8))
    assert (
        replaced.image_reference is None and replaced.source_bytes() is None
    )  # a new image drops the old sources
    assert replaced.parent_metadata is parent
    # the image was its own root: a new parent is its new root too
    new_parent = ImageParentMetadata("q")
    moved = WorkflowImageData.copy_and_replace(image, parent_metadata=new_parent)
    assert (
        moved.workflow_root_ancestor_metadata.parent_id == "q"
        and bytes(moved.source_bytes()) == png
    )
    both = WorkflowImageData.copy_and_replace(
        image, parent_metadata=new_parent, workflow_root_ancestor_metadata=ImageParentMetadata("r")
    )
    assert (both._parent_metadata.parent_id, both._workflow_root_ancestor_metadata.parent_id) == (
        "q",
        "r",
    )
    with pytest.raises(TypeError, match="unexpected fields: colour"):
        WorkflowImageData.copy_and_replace(image, colour="red")
    with pytest.raises(ValueError, match="needs an image"):
        WorkflowImageData.copy_and_replace(image, numpy_image=None)


def test_declare_numpy_image_mutated_drops_the_original_bytes():
    image = WorkflowImageData(
        ImageParentMetadata("p"), encoded_image=imencode(".png", np.zeros((2, 2), np.uint8))
    )
    with pytest.raises(ValueError):
        image.declare_numpy_image_mutated()
    image.numpy_image[0, 0] = 9
    image.declare_numpy_image_mutated()
    assert (
        image.source_bytes() is None
        and cv2.imdecode(
            np.frombuffer(base64.b64decode(image.base64_image), np.uint8), cv2.IMREAD_UNCHANGED
        )[0, 0]
        >= 5
    )


def test_runtime_entities_re_exports_these_classes():
    assert entities.WorkflowImageData is WorkflowImageData
    assert entities.ImageParentMetadata is ImageParentMetadata
    assert entities.OriginCoordinatesSystem is OriginCoordinatesSystem
    assert entities.VideoMetadata is VideoMetadata


# --- validation ----------------------------------------------------------------------


def ndarray(array: np.ndarray) -> cbor2.CBORTag:
    tree, _ = encode_outputs(array)
    return tree


PNG = imencode(".png", np.zeros((1, 1), np.uint8))


def image_tag(**fields) -> cbor2.CBORTag:
    content = {"pixels": ndarray(np.zeros((2, 2, 3), np.uint8)), "parent_id": "p"}
    content.update(fields)
    return cbor2.CBORTag(IMAGE_TAG, {k: v for k, v in content.items() if v is not DROP})


DROP = object()
ORIGIN = {"offset_x": 0, "offset_y": 0, "width": 2, "height": 2}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            image_tag(pixels=ndarray(np.zeros((1, 2, 2, 3), np.uint8))),
            r"^inputs\.image\.pixels\.shape: an image is H×W or H×W×C, got 4 dimensions \[1, 2, 2, 3\]$",
        ),
        (
            image_tag(pixels=ndarray(np.zeros(5, np.uint8))),
            r"^inputs\.image\.pixels\.shape: an image is H×W or H×W×C, got 1 dimensions",
        ),
        (
            image_tag(pixels=ndarray(np.zeros((2, 2, 2), np.uint8))),
            r"^inputs\.image\.pixels\.shape: channels must be 1, 3 \(BGR\) or 4 \(BGRA\), got 2$",
        ),
        (
            image_tag(pixels=ndarray(np.zeros((0, 3), np.uint8))),
            r"^inputs\.image\.pixels\.shape: height and width must be 1 to 16384, got \[0, 3\]$",
        ),
        (
            image_tag(pixels=ndarray(np.zeros((1, 16385), np.uint8))),
            r"^inputs\.image\.pixels\.shape: height and width must be 1 to 16384",
        ),
        (
            image_tag(pixels=ndarray(np.zeros((2, 2), np.float32))),
            r"^inputs\.image\.pixels\.dtype: an image is uint8 \(or uint16\), got float32$",
        ),
        (
            image_tag(pixels=[[1, 2], [3, 4]]),
            r"^inputs\.image\.pixels: must be an ndarray \(tag 40\), got an array$",
        ),
        (
            image_tag(pixels=cbor2.CBORTag(40, [[2, 2], cbor2.CBORTag(64, b"\0" * 3)])),
            r"^inputs\.image\.pixels: shape \[2, 2\] of uint8 needs 4 bytes, got 3$",
        ),
        (
            image_tag(encoded=PNG),
            r"^inputs\.image: needs exactly one of 'pixels' \(an ndarray\) and 'encoded'",
        ),
        (image_tag(pixels=DROP), r"^inputs\.image: needs exactly one of"),
        (
            image_tag(pixels=DROP, encoded=b""),
            r"^inputs\.image\.encoded: the encoded image is empty$",
        ),
        (
            image_tag(pixels=DROP, encoded=b"GIF89a\x01\x00"),
            r"^inputs\.image\.encoded: not a JPEG, PNG, WebP, BMP or TIFF file \(starts with 4749463839610100\)$",
        ),
        (
            image_tag(pixels=DROP, encoded="iVBORw0KGgo="),
            r"^inputs\.image\.encoded: expected a byte string",
        ),
        (image_tag(parent_id=DROP), r"^inputs\.image: missing field 'parent_id'$"),
        (image_tag(parent_id=5), r"^inputs\.image\.parent_id: must be text, got 5$"),
        (
            image_tag(parent_origin={**ORIGIN, "offset_x": -1}),
            r"^inputs\.image\.parent_origin\.offset_x: must be an integer from 0 to 2147483647, got -1$",
        ),
        (
            image_tag(parent_origin={**ORIGIN, "offset_y": 1.5}),
            r"^inputs\.image\.parent_origin\.offset_y: must be an integer",
        ),
        (
            image_tag(parent_origin={**ORIGIN, "width": 0}),
            r"^inputs\.image\.parent_origin\.width: must be an integer from 1",
        ),
        (
            image_tag(parent_origin={**ORIGIN, "height": True}),
            r"^inputs\.image\.parent_origin\.height: must be an integer",
        ),
        (
            image_tag(parent_origin={"offset_x": 0, "offset_y": 0, "width": 2}),
            r"^inputs\.image\.parent_origin: missing field 'height'$",
        ),
        (
            image_tag(parent_origin={**ORIGIN, "depth": 1}),
            r"^inputs\.image\.parent_origin: unknown field 'depth'",
        ),
        (
            image_tag(parent_origin=[0, 0, 2, 2]),
            r"^inputs\.image\.parent_origin: must be a map \{offset_x, offset_y, width, height\}, got an array$",
        ),
        (
            image_tag(root_parent_id="r", root_origin={**ORIGIN, "width": -3}),
            r"^inputs\.image\.root_origin\.width: must be an integer from 1",
        ),
        (
            image_tag(root_origin=ORIGIN),
            r"^inputs\.image\.root_origin: given without root_parent_id$",
        ),
        (image_tag(image_reference=3), r"^inputs\.image\.image_reference: must be text"),
        (
            image_tag(video_metadata={"video_identifier": "v"}),
            r"^inputs\.image\.video_metadata: must be a video_metadata \(tag 61443\), got a map$",
        ),
        (
            image_tag(
                video_metadata=cbor2.CBORTag(
                    VIDEO_METADATA_TAG,
                    {
                        "video_identifier": "v",
                        "frame_number": -2,
                        "frame_timestamp": dt.datetime(2024, 1, 1, tzinfo=IST),
                    },
                )
            ),
            r"^inputs\.image\.video_metadata\.frame_number: must be an integer",
        ),
        (image_tag(colour="red"), r"^inputs\.image: unknown field 'colour'"),
        (
            cbor2.CBORTag(IMAGE_TAG, b"\xff\xd8\xff"),
            r"^inputs\.image: tag 61441 must hold a map of the image fields, got a byte string$",
        ),
    ],
)
def test_bad_images_name_the_path(content, message):
    with pytest.raises(KindError, match=message):
        decode(cbor2.dumps(content))


def test_root_parent_id_missing_means_the_image_is_its_own_root():
    image = decode(cbor2.dumps(image_tag(parent_origin=ORIGIN)))
    assert image.workflow_root_ancestor_metadata is image.parent_metadata


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (
            WorkflowImageData(
                ImageParentMetadata("p"), numpy_image=np.zeros((2, 2, 3), np.float32)
            ),
            r"^outputs\.image\.pixels\.dtype: an image is uint8 \(or uint16\), got float32$",
        ),
        (
            WorkflowImageData(ImageParentMetadata("p"), numpy_image=np.zeros((2, 2, 5), np.uint8)),
            r"^outputs\.image\.pixels\.shape: channels must be 1, 3",
        ),
        (
            WorkflowImageData(
                ImageParentMetadata("p", OriginCoordinatesSystem(-4, 0, 2, 2)),
                numpy_image=np.zeros((2, 2), np.uint8),
            ),
            r"^outputs\.image\.parent_origin\.offset_x: must be an integer from 0",
        ),
        (
            WorkflowImageData(ImageParentMetadata(7), numpy_image=np.zeros((2, 2), np.uint8)),
            r"^outputs\.image\.parent_id: must be text, got 7$",
        ),  # type: ignore[arg-type]
        (
            WorkflowImageData(
                ImageParentMetadata("p"),
                numpy_image=np.zeros((2, 2), np.uint8),
                video_metadata={"fps": 3},
            ),
            r"^outputs\.image\.video_metadata: must be a VideoMetadata",
        ),  # type: ignore[arg-type]
    ],
)
def test_bad_output_images_name_the_path(image, message):
    with pytest.raises(KindError, match=message):
        encode_outputs({"image": image})


# --- JSON (Roboflow webexec) ---------------------------------------------------------


def to_json(value):
    tree, _ = encode_outputs({"image": value}, mode="json")
    return json.loads(json.dumps(tree))["image"]


def from_json(form):
    return decode_inputs({"image": form})["image"]


def test_json_of_an_encoded_image_is_its_bytes():
    png = imencode(".png", np.arange(12, dtype=np.uint8).reshape(2, 2, 3))
    form = to_json(WorkflowImageData(ImageParentMetadata("cam"), encoded_image=png))
    assert form == {
        "_type": "workflow_image",
        "type": "base64",
        "value": base64.b64encode(png).decode(),
        "parent_id": "cam",
    }
    back = from_json(form)
    assert bytes(back.source_bytes()) == png and back.parent_metadata.parent_id == "cam"


def test_json_of_a_crop_carries_inferences_keys_and_video_metadata():
    root = WorkflowImageData(
        ImageParentMetadata("frame", OriginCoordinatesSystem(0, 0, 40, 30)),
        numpy_image=np.zeros((30, 40, 3), np.uint8),
    )
    crop = WorkflowImageData.create_crop(root, "crop-1", np.full((4, 4, 3), 50, np.uint8), 3, 5)
    crop = WorkflowImageData.copy_and_replace(
        crop,
        video_metadata=VideoMetadata("cam", 2, dt.datetime(2024, 5, 1, 12, tzinfo=IST), fps=30.0),
    )
    form = to_json(crop)
    assert form["_type"] == "workflow_image" and form["type"] == "base64"
    assert (
        base64.b64decode(form["value"])[:3] == b"\xff\xd8\xff"
    )  # pixels are JPEG-encoded on the JSON path
    assert form["video_metadata"] == {
        "video_identifier": "cam",
        "frame_number": 2,
        "frame_timestamp": {"_type": "datetime", "value": "2024-05-01T12:00:00+05:30"},
        "fps": 30.0,
        "measured_fps": None,
        "comes_from_video_file": None,
    }
    assert (form["parent_id"], form["parent_origin"]) == (
        "crop-1",
        {"offset_x": 3, "offset_y": 5, "width": 40, "height": 30},
    )
    assert (form["root_parent_id"], form["root_parent_origin"]) == (
        "frame",
        {"offset_x": 3, "offset_y": 5, "width": 40, "height": 30},
    )
    back = from_json(form)
    assert (
        back.parent_metadata == crop.parent_metadata
        and back.workflow_root_ancestor_metadata == crop.workflow_root_ancestor_metadata
    )
    assert back.video_metadata == crop.video_metadata
    assert np.abs(back.numpy_image.astype(int) - 50).max() <= 2  # lossy, but close


def test_json_of_bgra_pixels_is_a_lossless_png():
    bgra = np.random.default_rng(5).integers(0, 256, (3, 3, 4), dtype=np.uint8)
    back = from_json(to_json(WorkflowImageData(ImageParentMetadata("p"), numpy_image=bgra)))
    np.testing.assert_array_equal(back.numpy_image, bgra)


def test_json_as_inference_sends_it():
    png = imencode(".png", np.zeros((2, 3, 3), np.uint8))
    image = from_json(
        {
            "_type": "workflow_image",
            "type": "base64",
            "value": base64.b64encode(png).decode(),
            "video_metadata": {
                "video_identifier": "cam",
                "frame_number": 1,
                "frame_timestamp": {"_type": "datetime", "value": "2024-05-01T12:00:00"},
                "fps": 30,
                "measured_fps": None,
                "comes_from_video_file": None,
            },
        }
    )
    assert image.parent_metadata == ImageParentMetadata(
        "image", OriginCoordinatesSystem(0, 0, 3, 2)
    )  # parent named after the input
    assert image.workflow_root_ancestor_metadata.parent_id == "image"
    assert (
        image.video_metadata.frame_timestamp == dt.datetime(2024, 5, 1, 12)
        and image.video_metadata.fps == 30.0
    )
    data_uri = from_json(
        {
            "_type": "workflow_image",
            "type": "base64",
            "value": "data:image/png;base64," + base64.b64encode(png).decode(),
            "video_metadata": None,
        }
    )
    assert bytes(data_uri.source_bytes()) == png and data_uri._video_metadata is None


def test_msgpack_form_as_inference_sends_it():
    jpeg = imencode(
        ".jpg",
        np.random.default_rng(6).integers(0, 256, (24, 32, 3), dtype=np.uint8),
        cv2.IMWRITE_JPEG_QUALITY,
        80,
    )
    form = {
        "_type": "workflow_image",
        "_jpeg_bytes": jpeg,
        "parent_id": "crop-1",
        "parent_origin": {"offset_x": 3, "offset_y": 5, "width": 40, "height": 30},
        "root_parent_id": "frame",
        "root_parent_origin": {"offset_x": 3, "offset_y": 5, "width": 40, "height": 30},
        "video_metadata": {
            "_type": "video_metadata",
            "video_identifier": "cam",
            "frame_number": 2,
            "frame_timestamp": {"_type": "datetime", "value": "2024-05-01T12:00:00+05:30"},
            "fps": 30.0,
            "measured_fps": None,
            "comes_from_video_file": None,
        },
    }
    image = decode_inputs(cbor2.loads(cbor2.dumps({"image": form})))["image"]
    assert image.parent_metadata == ImageParentMetadata(
        "crop-1", OriginCoordinatesSystem(3, 5, 40, 30)
    )
    assert image.workflow_root_ancestor_metadata == ImageParentMetadata(
        "frame", OriginCoordinatesSystem(3, 5, 40, 30)
    )
    assert image.video_metadata == VideoMetadata(
        "cam", 2, dt.datetime(2024, 5, 1, 12, tzinfo=IST), fps=30.0
    )
    # Sent back untouched: the same bytes, as base64 text (what Inference's client reads back).
    assert (
        bytes(image.source_bytes()) == jpeg
        and to_json(image)["value"] == base64.b64encode(jpeg).decode()
    )
    [document] = encode_document({"image": image}, "msgpack-webexec")
    back = msgpack.unpackb(document, raw=False, strict_map_key=True)["image"]
    assert "_jpeg_bytes" not in back and back["value"] == base64.b64encode(jpeg).decode()
    assert back["parent_id"] == "crop-1" and back["root_parent_id"] == "frame"
    assert image._numpy_image is None  # decoded only when read
    expected = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(image.numpy_image, expected)


def test_msgpack_form_of_any_format_with_only_its_bytes():
    png = imencode(".png", np.arange(12, dtype=np.uint8).reshape(2, 2, 3))
    image = from_json({"_type": "workflow_image", "_jpeg_bytes": png})
    assert image.parent_metadata == ImageParentMetadata(
        "image", OriginCoordinatesSystem(0, 0, 2, 2)
    )  # parent named after the input, as for base64
    assert bytes(image.source_bytes()) == png and image._video_metadata is None
    np.testing.assert_array_equal(image.numpy_image, np.arange(12, dtype=np.uint8).reshape(2, 2, 3))


def test_msgpack_form_bytes_may_ride_in_the_sidecar():
    sidecar = memoryview(b"\0" * 64 + PNG)
    image = decode_inputs(
        {
            "image": {
                "_type": "workflow_image",
                "_jpeg_bytes": cbor2.CBORTag(SIDECAR_TAG, [64, len(PNG)]),
                "parent_id": "p",
            }
        },
        sidecar=sidecar,
    )["image"]
    assert bytes(image.source_bytes()) == PNG


@pytest.mark.parametrize(
    ("form", "message"),
    [
        (
            {"_type": "workflow_image", "type": "url", "value": "http://x/y.jpg"},
            r"^inputs\.image\.type: only base64 images are read, got 'url'",
        ),
        (
            {"_type": "workflow_image", "type": "base64", "value": "%%%"},
            r"^inputs\.image\.value: not valid base64$",
        ),
        (
            {
                "_type": "workflow_image",
                "type": "base64",
                "value": base64.b64encode(b"hello").decode(),
            },
            r"^inputs\.image\.value: not a JPEG, PNG",
        ),
        (
            {"_type": "workflow_image", "type": "base64"},
            r"^inputs\.image\.value: must be a base64 string, got null$",
        ),
        (
            {
                "_type": "workflow_image",
                "value": base64.b64encode(PNG).decode(),
                "parent_origin": {"offset_x": -1, "offset_y": 0, "width": 1, "height": 1},
            },
            r"^inputs\.image\.parent_origin\.offset_x: must be an integer from 0",
        ),
        (
            {
                "_type": "workflow_image",
                "value": base64.b64encode(PNG).decode(),
                "video_metadata": {"video_identifier": "v"},
            },
            r"^inputs\.image\.video_metadata: missing field 'frame_number'$",
        ),
        (
            {
                "_type": "workflow_image",
                "value": {
                    "_type": "ndarray",
                    "dtype": "float32",
                    "shape": [1, 1],
                    "value": [[0.5]],
                },
            },
            r"^inputs\.image\.value\.dtype: an image is uint8",
        ),
        (
            {
                "_type": "workflow_image",
                "_jpeg_bytes": PNG,
                "value": base64.b64encode(PNG).decode(),
            },
            r"^inputs\.image: has both '_jpeg_bytes' and 'value'",
        ),
        (
            {"_type": "workflow_image", "_jpeg_bytes": base64.b64encode(PNG).decode()},
            r"^inputs\.image\._jpeg_bytes: expected a byte string, got str$",
        ),
        (
            {"_type": "workflow_image", "_jpeg_bytes": None},
            r"^inputs\.image\._jpeg_bytes: expected a byte string, got NoneType$",
        ),
        (
            {"_type": "workflow_image", "_jpeg_bytes": b"hello"},
            r"^inputs\.image\._jpeg_bytes: not a JPEG, PNG",
        ),
        (
            {"_type": "workflow_image", "_jpeg_bytes": b""},
            r"^inputs\.image\._jpeg_bytes: the encoded image is empty$",
        ),
        (
            {"_type": "workflow_image", "_jpeg_bytes": PNG, "parent_id": 7},
            r"^inputs\.image\.parent_id: must be text, got 7$",
        ),
        (
            {
                "_type": "workflow_image",
                "_jpeg_bytes": PNG,
                "root_parent_id": "r",
                "root_parent_origin": {"offset_x": 0},
            },
            r"^inputs\.image\.root_parent_origin: missing field 'offset_y'$",
        ),
        (
            {
                "_type": "workflow_image",
                "_jpeg_bytes": PNG,
                "video_metadata": {"_type": "video_metadata", "video_identifier": "v"},
            },
            r"^inputs\.image\.video_metadata: missing field 'frame_number'$",
        ),
    ],
)
def test_bad_json_images_name_the_path(form, message):
    with pytest.raises(KindError, match=message):
        from_json(form)
