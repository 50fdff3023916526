"""The msgpack-webexec output mode (Inference's websocket transport): json-webexec's markers
in msgpack, every plain value keeping its type, bytes as msgpack bin, keys as text (the
client unpacks with strict_map_key=True); ints msgpack cannot carry named by path; the reply
limit counted as msgpack spends it. And the bytes marker read with its bytes raw."""

from __future__ import annotations

import base64
import datetime as dt
import json
import math

import cv2
import msgpack
import numpy as np
import pytest
import supervision as sv
from cbor2 import CBORTag
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from serializers.batch import Batch
from serializers.image.entity import ImageParentMetadata, OriginCoordinatesSystem, WorkflowImageData
from serializers.kind import KindError
from serializers.registry import (
    SIDECAR_TAG,
    Encoder,
    OutputLimitExceeded,
    decode_inputs,
    encode_document,
)
from serializers.video_metadata.entity import VideoMetadata

IST = dt.timezone(dt.timedelta(hours=5, minutes=30))


def unpack(document: list) -> object:
    """What Inference's client reads from the document."""
    [piece] = document
    return msgpack.unpackb(bytes(piece), raw=False, strict_map_key=True)


def as_msgpack(outputs, **options):
    return unpack(encode_document(outputs, "msgpack-webexec", **options))


def as_json_webexec(outputs):
    [piece] = encode_document(outputs, "json-webexec")
    return json.loads(bytes(piece))


def typed(node):
    """A tree whose leaves carry their type (2 != 2.0) and compare NaN and -0.0 as written."""
    if isinstance(node, dict):
        return {key: typed(item) for key, item in node.items()}
    if isinstance(node, list):
        return [typed(item) for item in node]
    return type(node).__name__, repr(node) if isinstance(node, float) else node


def test_every_plain_value_keeps_its_type():
    got = as_msgpack(
        {
            "whole_float": 2.0,
            "int": 2,
            "floats": [math.nan, math.inf, -math.inf, -0.0, 0.1, 1e308],
            "ints": [0, -1, 127, 128, -33, 2**32, 2**64 - 1, -(2**63), np.uint64(2**64 - 1)],
            "bool": True,
            "none": None,
            "text": "é ☃ 🙂",
            "bytes": b"\x00\xffraw",
            "bytearray": bytearray(b"ba"),
            "memoryview": memoryview(b"mv"),
            "keys": {1: "int", 2.5: "float", None: "none", (1, 2): "tuple"},
            "nested": [(1, (2.0, [b"x"])), {"a": ()}, set()],
            "numpy": [np.float32(0.5), np.int8(-3), np.bool_(True)],
            "date": dt.date(2024, 5, 1),
        }
    )
    assert typed(got) == typed(
        {
            "whole_float": 2.0,
            "int": 2,
            "floats": [math.nan, math.inf, -math.inf, -0.0, 0.1, 1e308],
            "ints": [0, -1, 127, 128, -33, 2**32, 2**64 - 1, -(2**63), 2**64 - 1],
            "bool": True,
            "none": None,
            "text": "é ☃ 🙂",
            "bytes": b"\x00\xffraw",
            "bytearray": b"ba",
            "memoryview": b"mv",
            "keys": {"1": "int", "2.5": "float", "None": "none", "(1, 2)": "tuple"},
            "nested": [[1, [2.0, [b"x"]]], {"a": []}, []],
            "numpy": [0.5, -3, True],
            "date": "2024-05-01",
        }
    )


def test_floats_are_float64_always():
    [document] = encode_document({"x": 0.1}, "msgpack-webexec")
    assert b"\xcb" + np.float64(0.1).tobytes()[::-1] in document  # float 64, big endian


def test_a_batch_of_dicts_is_a_list_of_maps():
    assert as_msgpack([{"y": 1}, {"y": 2.0}]) == [{"y": 1}, {"y": 2.0}]


def _kinds() -> dict:
    jpeg = cv2.imencode(".jpg", np.full((6, 8, 3), 90, np.uint8))[1].tobytes()
    frame = WorkflowImageData(
        ImageParentMetadata("frame", OriginCoordinatesSystem(0, 0, 40, 30)),
        numpy_image=np.zeros((30, 40, 3), np.uint8),
    )
    crop = WorkflowImageData.create_crop(frame, "crop-1", np.full((4, 4, 3), 50, np.uint8), 3, 5)
    video = VideoMetadata("cam", 2, dt.datetime(2024, 5, 1, 12, tzinfo=IST), fps=30.0)
    mask = np.zeros((2, 20, 30), dtype=bool)
    mask[0, 2:8, 3:10] = mask[1, 10:18, 12:25] = True
    detections = sv.Detections(
        xyxy=np.array([[3, 2, 10, 8], [12, 10, 25, 18]], dtype=np.float32),
        confidence=np.array([0.75, 0.5], dtype=np.float32),
        class_id=np.array([1, 4]),
        mask=mask,
        data={"class_name": np.array(["car", "bus"]), "score": np.array([1.0, 2.5])},
        metadata={"source": "cam", 3: [1, 2.0]},
    )
    return {
        "array": np.array([[1.5, 2.0], [3.0, -0.0]], dtype=np.float32),
        "ints": np.array([0, 2**63 - 1, -(2**63)], dtype=np.int64),
        "uint64": np.array([2**64 - 1], dtype=np.uint64),
        "strings": np.array(["a", "bc"]),
        "encoded_image": WorkflowImageData(ImageParentMetadata("cam"), encoded_image=jpeg),
        "crop": WorkflowImageData.copy_and_replace(crop, video_metadata=video),
        "video": video,
        "detections": detections,
        "batch": Batch([np.arange(2), video]),
        "datetime": dt.datetime(2024, 5, 1, 12, 30, tzinfo=IST),
        "naive_datetime": dt.datetime(2024, 5, 1),
        "object": complex(1, 2),
    }


@pytest.mark.parametrize("name", list(_kinds()))
def test_each_kind_has_its_json_webexec_marker_form(name):
    value = _kinds()[name]
    got = as_msgpack({"x": value})
    assert typed(got) == typed(as_json_webexec({"x": value}))
    assert isinstance(got["x"], list if name == "batch" else dict)


def test_an_image_goes_back_as_base64_text_not_bytes():
    png = cv2.imencode(".png", np.zeros((2, 2, 3), np.uint8))[1].tobytes()
    got = as_msgpack({"image": WorkflowImageData(ImageParentMetadata("cam"), encoded_image=png)})
    assert got["image"] == {
        "_type": "workflow_image",
        "type": "base64",
        "value": base64.b64encode(png).decode(),
        "parent_id": "cam",
    }


def test_bytes_stay_bytes_inside_kinds_too():
    detections = sv.Detections(xyxy=np.zeros((1, 4)), data={"blob": [b"\x01"]})
    detections.metadata["raw"] = b"\x02"
    got = as_msgpack({"d": detections})["d"]
    assert got["predictions"][0]["blob"] == b"\x01" and got["metadata"]["raw"] == b"\x02"
    as_json = as_json_webexec({"d": detections})["d"]
    assert as_json["metadata"]["raw"] == {
        "_type": "bytes",
        "value": base64.b64encode(b"\x02").decode(),
    }


@pytest.mark.parametrize(
    ("outputs", "path"),
    [
        ({"x": 2**64}, "outputs.x"),
        ({"x": {"y": [1, -(2**63) - 1]}}, r"outputs.x.y\[1\]"),
        ({"x": 10**5000}, "outputs.x"),
        (
            {"d": sv.Detections(xyxy=np.zeros((1, 4)), metadata={"n": 2**70})},
            "outputs.d.metadata.n",
        ),
    ],
)
def test_an_int_outside_msgpacks_range_names_its_path(outputs, path):
    with pytest.raises(KindError, match=rf"^{path}: an integer outside msgpack's range"):
        encode_document(outputs, "msgpack-webexec")


def test_an_int_key_of_any_size_is_text():
    assert as_msgpack({"x": {2**64: 1, -(2**70): 2}}) == {"x": {str(2**64): 1, str(-(2**70)): 2}}


def test_the_reply_limit_counts_bytes_at_their_raw_size():
    assert as_msgpack({"x": b"x" * 900}, max_bytes=1000) == {"x": b"x" * 900}
    with pytest.raises(OutputLimitExceeded, match=r"^outputs\.x: the outputs are over"):
        encode_document({"x": b"x" * 1001}, "msgpack-webexec", max_bytes=1000)
    with pytest.raises(OutputLimitExceeded):  # base64: 1200 bytes
        encode_document({"x": b"x" * 900}, "json-webexec", max_bytes=1000)


@pytest.mark.parametrize(
    "outputs",
    [
        {"x": "é" * 1000},
        {"x": np.zeros(1001, np.uint8)},
        {"x": list(range(1001))},
        {"x": {str(i): None for i in range(400)}},
    ],
)
def test_outputs_past_the_limit_are_refused(outputs):
    with pytest.raises(OutputLimitExceeded, match=r"^outputs\.x"):
        encode_document(outputs, "msgpack-webexec", max_bytes=1000)


plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20)
    | hnp.arrays(
        st.sampled_from([np.uint8, np.int64, np.float32, np.bool_, "U3"]),
        hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
    ),
    lambda items: (
        st.lists(items, max_size=5)
        | st.dictionaries(st.text(max_size=5) | st.integers(), items, max_size=5)
    ),
    max_leaves=30,
)


def _keys_meet(value) -> bool:
    """Whether two keys of one map become the same text (``1`` and ``"1"``)."""
    if isinstance(value, dict):
        texts = [str(key) for key in value]
        return len(set(texts)) < len(texts) or any(_keys_meet(item) for item in value.values())
    return isinstance(value, list) and any(_keys_meet(item) for item in value)


@settings(max_examples=300, deadline=None)
@given(plain.filter(lambda value: not _keys_meet(value)))
def test_what_the_limit_counts_never_exceeds_the_document(value):
    # A lower bound: a document within the limit is never refused. (Keys that meet as text
    # are the one exception, below: the limit counts every entry the block returned.)
    encoder = Encoder("msgpack-webexec")
    tree = encoder.encode_value({"x": value}, "outputs")
    assert encoder.used_bytes <= len(msgpack.packb(tree, use_bin_type=True))


@pytest.mark.parametrize("form", ["msgpack-webexec", "json-webexec", "json"])
def test_keys_that_meet_as_text_keep_the_later_value_as_inference_does(form):
    # json.dumps writes both keys and Inference's json.loads keeps the later one: every
    # text form gives the block's caller that same map. The limit still counts both entries.
    outputs = {"x": {1: "a", "1": "b"}}
    encoder = Encoder(form)
    tree = encoder.encode_value(outputs, "outputs")
    assert tree == {"x": {"1": "b"}}
    assert json.loads(json.dumps(outputs)) == tree
    assert encoder.used_bytes > len(msgpack.packb(tree, use_bin_type=True))


# --- inputs: the bytes marker ------------------------------------------------------------


def test_a_bytes_marker_may_carry_the_bytes_themselves():
    got = decode_inputs(
        {
            "raw": {"_type": "bytes", "value": b"\x00\xff"},
            "text": {"_type": "bytes", "value": base64.b64encode(b"\x00\xff").decode()},
            "sidecar": {"_type": "bytes", "value": CBORTag(SIDECAR_TAG, [0, 2])},
        },
        sidecar=memoryview(b"\x01\x02"),
    )
    assert got == {"raw": b"\x00\xff", "text": b"\x00\xff", "sidecar": b"\x01\x02"}
    assert all(type(value) is bytes for value in got.values())


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("%%%", r"^inputs\.b\.value: not valid base64$"),
        (None, r"^inputs\.b\.value: must be base64 text or a byte string, got NoneType$"),
        (CBORTag(7, b""), r"^inputs\.b\.value: expected a byte string, got CBORTag$"),
    ],
)
def test_a_bad_bytes_marker_names_its_path(value, message):
    with pytest.raises(KindError, match=message):
        decode_inputs({"b": {"_type": "bytes", "value": value}})
