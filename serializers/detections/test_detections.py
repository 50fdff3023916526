"""detections, Python half: golden vectors, bit-exact round trips, a block's filtering,
validation with paths, and the Roboflow JSON form."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cbor2
import numpy as np
import pytest
import supervision as sv
from cbor2 import CBORTag
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from serializers.detections.codec import DETECTIONS_TAG
from serializers.detections.vectors.make_vectors import describe
from serializers.kind import KindError
from serializers.registry import SIDECAR_TAG, decode_inputs, encode_outputs
from serializers.testing import cbor_round_trip

VECTORS = Path(__file__).parent / "vectors"
INDEX = json.loads((VECTORS / "index.json").read_text())


def cbor_bytes(value) -> bytes:
    tree, _ = encode_outputs(value)
    return cbor2.dumps(tree)


def assert_writable(detections: sv.Detections) -> None:
    for array in (
        detections.xyxy,
        detections.confidence,
        detections.class_id,
        detections.tracker_id,
        detections.mask,
    ):
        assert array is None or array.flags.writeable
    for column in detections.data.values():
        assert not isinstance(column, np.ndarray) or column.flags.writeable


# --- golden vectors ---------------------------------------------------------------------


@pytest.mark.parametrize("entry", INDEX, ids=[e["name"] for e in INDEX])
def test_golden_vector_decodes_and_reencodes(entry):
    raw = (VECTORS / f"{entry['name']}.cbor").read_bytes()
    detections = decode_inputs({"v": cbor2.loads(raw)})["v"]
    assert type(detections) is sv.Detections
    assert len(detections) == entry["n"]
    assert describe(detections) == entry["expect"]
    assert_writable(detections)
    assert cbor_bytes(detections).hex() == raw.hex()


def test_vectors_cover_what_the_contract_names():
    names = {e["name"] for e in INDEX}
    assert {"empty", "boxes-classes", "tracked", "masks", "mixed-data", "metadata"} <= names
    mixed = next(e for e in INDEX if e["name"] == "mixed-data")["expect"]["data"]
    assert {"$ndarray", "$object"} <= {next(iter(v)) for v in mixed.values() if isinstance(v, dict)}
    assert any(isinstance(v, list) for v in mixed.values())


def test_the_mask_vector_pins_bit_order_and_padding():
    raw = cbor2.loads((VECTORS / "masks.cbor").read_bytes())
    packed = raw.value["mask"]
    assert list(packed["shape"]) == [2, 5, 7] and len(packed["bits"]) == 9
    # pixel 69 (the last) is bit 5 of byte 8; the two bits above it are padding
    assert packed["bits"][8] == 0b0010_0000


# --- bit-exact round trips ----------------------------------------------------------------

FLOATS = ["float16", "float32", "float64"]
INTEGERS = ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"]
KEYS = st.text(alphabet="abcxyz_019", min_size=1, max_size=8).filter(lambda k: k != "_type")
PLAIN = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=5)
    | st.binary(max_size=4),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=3),
    max_leaves=6,
)


def _objects(items):
    column = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        column[i] = item
    return column


@st.composite
def data_columns(draw, n):
    kind = draw(st.sampled_from(["numeric", "numeric-2d", "str", "list", "object"]))
    if kind == "numeric":
        return draw(hnp.arrays(st.sampled_from(FLOATS + INTEGERS + ["bool"]), (n,)))
    if kind == "numeric-2d":
        return draw(hnp.arrays(st.sampled_from(FLOATS + INTEGERS), (n, draw(st.integers(0, 3)))))
    if kind == "str":
        return np.array(
            draw(st.lists(st.text(alphabet="ab cüZ", max_size=4), min_size=n, max_size=n)),
            dtype=str,
        )
    elements = st.lists(
        PLAIN
        | hnp.arrays(
            st.sampled_from(FLOATS + INTEGERS), hnp.array_shapes(min_dims=0, max_dims=2, max_side=3)
        ),
        min_size=n,
        max_size=n,
    )
    if kind == "list":
        return draw(st.lists(PLAIN, min_size=n, max_size=n))
    return _objects(draw(elements))


@st.composite
def random_detections(draw):
    n = draw(st.integers(0, 6))
    xyxy = draw(
        hnp.arrays(
            st.sampled_from(FLOATS + ["int32", "uint16"]),
            (n, 4),
            elements={"allow_nan": False, "allow_infinity": False},
        )
    )
    optional = lambda dtypes: st.none() | hnp.arrays(st.sampled_from(dtypes), (n,))  # noqa: E731
    mask = None
    if draw(st.booleans()):
        mask = draw(hnp.arrays(np.bool_, (n, draw(st.integers(0, 9)), draw(st.integers(0, 9)))))
    keys = draw(st.lists(KEYS, unique=True, max_size=4))
    return sv.Detections(
        xyxy=xyxy,
        confidence=draw(optional(FLOATS)),
        class_id=draw(optional(INTEGERS)),
        tracker_id=draw(optional(INTEGERS)),
        mask=mask,
        data={key: draw(data_columns(n)) for key in keys},
        metadata=draw(st.dictionaries(KEYS, PLAIN, max_size=3)),
    )


@settings(max_examples=300, deadline=None)
@given(random_detections(), st.booleans())
def test_random_detections_round_trip_bit_exact(detections, sidecar):
    back = cbor_round_trip(detections, sidecar)
    assert type(back) is sv.Detections
    # describe() holds dtypes, shapes and the element bytes (NaN payloads included),
    # and tells lists from object arrays.
    assert describe(back) == describe(detections)
    assert_writable(back)
    assert cbor_bytes(back) == cbor_bytes(detections)


def test_an_empty_str_column_keeps_its_dtype():
    empty = sv.Detections.empty()
    empty.data["class_name"] = np.array([], dtype=str)
    assert cbor_round_trip(empty).data["class_name"].dtype.kind == "U"


def test_large_masks_ride_in_the_sidecar_and_come_back_exact():
    rng = np.random.default_rng(1)
    mask = rng.random((3, 240, 321)) > 0.5  # 231120 pixels: 28890 bytes, not a multiple of 64
    detections = sv.Detections(xyxy=np.array([[0, 0, 1, 1]] * 3, dtype=np.float32), mask=mask)
    tree, buffers = encode_outputs({"d": detections}, sidecar=True)
    assert [b.nbytes for b in buffers] == [math.ceil(mask.size / 8)]
    bits = tree["d"].value["mask"]["bits"]
    assert isinstance(bits, CBORTag) and bits.tag == SIDECAR_TAG
    back = cbor_round_trip(detections, sidecar=True)
    np.testing.assert_array_equal(back.mask, mask)
    assert back.mask.dtype == np.bool_ and back.mask.flags.writeable


def test_packed_masks_are_eight_times_smaller_than_bool_bytes():
    mask = np.zeros((4, 64, 64), dtype=bool)
    detections = sv.Detections(xyxy=np.zeros((4, 4), dtype=np.float32), mask=mask)
    assert len(cbor2.loads(cbor_bytes(detections)).value["mask"]["bits"]) == mask.size // 8


def test_a_compact_mask_is_sent_dense():
    from supervision.detection.compact_mask import CompactMask

    dense = np.zeros((2, 5, 6), dtype=bool)
    dense[0, 1:3, 1:4] = True
    dense[1, 2:4, 2:5] = True
    compact = CompactMask.from_dense(
        dense, np.array([[0, 0, 6, 5]] * 2, dtype=float), image_shape=(5, 6)
    )
    back = cbor_round_trip(sv.Detections(xyxy=np.zeros((2, 4), dtype=np.float32), mask=compact))
    assert isinstance(back.mask, np.ndarray)
    np.testing.assert_array_equal(back.mask, dense)


# --- a block's view ----------------------------------------------------------------------


def test_a_block_filters_by_confidence_and_every_data_key_survives():
    entry = next(e for e in INDEX if e["name"] == "mixed-data")
    detections = decode_inputs({"dets": cbor2.loads((VECTORS / "mixed-data.cbor").read_bytes())})[
        "dets"
    ]

    def run(dets):  # what a Custom Python Block does
        return {"kept": dets[dets.confidence > 0.4]}

    kept = cbor_round_trip(run(detections)["kept"])
    assert len(kept) == 2
    assert set(kept.data) == set(entry["expect"]["data"])
    assert kept.data["class_name"].tolist() == ["bolt", "bolt"]
    assert kept.data["velocity"].tolist() == [[1, -1], [-3, 0]]
    assert kept.data["ocr"] == [{"text": "A1", "score": 0.5}, {"text": "Z", "lines": [1, 2]}]
    assert kept.data["polygon"].dtype == object and kept.data["polygon"][1] == {"k": [1, None]}
    np.testing.assert_array_equal(kept.data["polygon"][0], [[0, 0], [1, 0], [1, 1]])
    assert kept.data["flags"].tolist() == [True, True]
    assert kept.confidence.dtype == np.float32


def test_a_batch_of_detections_round_trips():
    batch = [sv.Detections.empty(), sv.Detections(xyxy=np.ones((1, 4)), class_id=np.array([3]))]
    back = cbor_round_trip(batch)
    assert [len(d) for d in back] == [0, 1] and back[1].class_id.tolist() == [3]


# --- validation --------------------------------------------------------------------------


def _tree(**overrides):
    """A valid 3-detection tag with some fields replaced (by already-encoded content)."""
    base = sv.Detections(
        xyxy=np.zeros((3, 4), dtype=np.float32),
        confidence=np.ones(3, dtype=np.float32),
        class_id=np.arange(3),
        mask=np.zeros((3, 2, 3), dtype=bool),
        data={"class_name": np.array(["a", "b", "c"])},
    )
    tree, _ = encode_outputs(base)
    content = dict(tree.value)
    for key, value in overrides.items():
        if value is _DROP:
            del content[key]
        else:
            content[key] = value
    return CBORTag(DETECTIONS_TAG, content)


_DROP = object()


def _array(array):
    tree, _ = encode_outputs(np.asarray(array))
    return tree


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        (
            _tree(confidence=_array(np.ones(2, dtype=np.float32))),
            r"^inputs\.dets\.confidence: expected 3 values, got 2$",
        ),
        (
            _tree(confidence=_array(np.array(["x", "y", "z"]))),
            r"^inputs\.dets\.confidence: expected a numeric dtype, got str$",
        ),
        (
            _tree(class_id=_array(np.ones(3, dtype=np.float32))),
            r"^inputs\.dets\.class_id: expected an integer dtype, got float32$",
        ),
        (
            _tree(tracker_id=_array(np.ones((3, 1), dtype=np.int64))),
            r"^inputs\.dets\.tracker_id: expected a 1-D array, got shape \[3, 1\]$",
        ),
        (
            _tree(tracker_id=[1, 2, 3]),
            r"^inputs\.dets\.tracker_id: expected an ndarray or null, got list$",
        ),
        (
            _tree(xyxy=_array(np.zeros((3, 3)))),
            r"^inputs\.dets\.xyxy: expected shape \[N, 4\], got \[3, 3\]$",
        ),
        (
            _tree(xyxy=_array(np.array([[0, 0, np.nan, 1]] * 3))),
            r"^inputs\.dets\.xyxy: coordinates must be finite",
        ),
        (
            _tree(xyxy=_array(np.array([[0, 0, np.inf, 1]] * 3, dtype=np.float16))),
            r"^inputs\.dets\.xyxy: coordinates must be finite",
        ),
        (_tree(xyxy=_DROP), r"^inputs\.dets\.xyxy: missing"),
        (_tree(boxes=1), r"^inputs\.dets: unknown field 'boxes'"),
        (CBORTag(DETECTIONS_TAG, [1, 2]), r"^inputs\.dets: tag 61442 must hold a map of columns$"),
        (
            _tree(mask={"shape": [2, 2, 3], "bits": b"\0"}),
            r"^inputs\.dets\.mask\.shape: expected 3 masks, got 2$",
        ),
        (
            _tree(mask={"shape": [3, 2, 3], "bits": b"\0\0"}),
            r"^inputs\.dets\.mask\.bits: expected 3 bytes for 3×2×3 pixels, got 2$",
        ),
        (
            _tree(mask={"shape": [3, 2, 3], "bits": b"\0\0\x80"}),
            r"^inputs\.dets\.mask\.bits: the padding bits after the last pixel must be 0$",
        ),
        (
            _tree(mask={"shape": [3, 16385, 1], "bits": b""}),
            r"^inputs\.dets\.mask\.shape: mask of 16385×1 pixels is over the limit of 16384 a side$",
        ),
        (
            _tree(mask={"shape": [3, 2], "bits": b""}),
            r"^inputs\.dets\.mask\.shape: expected \[N, H, W\]",
        ),
        (
            _tree(mask=b"\0"),
            r"^inputs\.dets\.mask: expected null or \{shape: \[N, H, W\], bits: bytes\}$",
        ),
        (
            _tree(mask={"shape": [3, 2, 3], "bits": CBORTag(SIDECAR_TAG, [0, 3])}),
            r"^inputs\.dets\.mask\.bits: tag 61440 is internal",
        ),
        (
            _tree(data={"score": _array(np.ones(4))}),
            r"^inputs\.dets\.data\.score: expected 3 rows, got 4$",
        ),
        (_tree(data={"ocr": ["a", "b"]}), r"^inputs\.dets\.data\.ocr: expected 3 rows, got 2$"),
        (
            _tree(data={"poly": {"shape": [3], "object": [1, 2]}}),
            r"^inputs\.dets\.data\.poly\.object: shape \[3\] needs 3 values, got 2$",
        ),
        (
            _tree(data={"poly": {"shape": [2], "object": [1, 2]}}),
            r"^inputs\.dets\.data\.poly: expected 3 rows, got 2$",
        ),
        (
            _tree(data={"note": "hello"}),
            r"^inputs\.dets\.data\.note: expected an ndarray, a list, or an object column, got str$",
        ),
        (
            _tree(data={"note": {"a": 1}}),
            r"^inputs\.dets\.data\.note: expected an ndarray, a list, or an object column \{shape, object\}$",
        ),
        (
            _tree(data={"score": CBORTag(40, [[3], CBORTag(85, b"\0" * 8)])}),
            r"^inputs\.dets\.data\.score: shape \[3\] of float32 needs 12 bytes, got 8$",
        ),
        (_tree(data=[1]), r"^inputs\.dets\.data: expected a map, got list$"),
        (_tree(metadata=[1]), r"^inputs\.dets\.metadata: expected a map, got list$"),
    ],
)
def test_bad_detections_name_the_path(tag, message):
    with pytest.raises(KindError, match=message):
        decode_inputs({"dets": tag})


def test_a_tag_inside_a_list_names_its_index():
    with pytest.raises(
        KindError, match=r"^inputs\.batch\[1\]\.confidence: expected 3 values, got 2$"
    ):
        decode_inputs({"batch": [_tree(), _tree(confidence=_array(np.ones(2, dtype=np.float32)))]})


def test_missing_optional_fields_read_as_empty():
    detections = decode_inputs({"d": CBORTag(DETECTIONS_TAG, {"xyxy": _array(np.ones((2, 4)))})})[
        "d"
    ]
    assert len(detections) == 2 and detections.confidence is None and detections.mask is None
    assert detections.data == {} and detections.metadata == {}


def test_broken_outputs_are_refused_with_the_output_path():
    detections = sv.Detections(xyxy=np.zeros((2, 4)), confidence=np.ones(2))
    detections.confidence = np.ones(3)  # a block mutating a column out of step
    with pytest.raises(KindError, match=r"^outputs\.dets\.confidence: expected 2 values, got 3$"):
        encode_outputs({"dets": detections})
    detections = sv.Detections(xyxy=np.zeros((2, 4)))
    detections.data["note"] = {"a": 1}
    with pytest.raises(
        KindError,
        match=r"^outputs\.dets\.data\.note: a data column must be a numpy array or a list, got dict$",
    ):
        encode_outputs({"dets": detections})
    detections = sv.Detections(xyxy=np.zeros((1, 4)), class_id=np.array([1.5]))
    with pytest.raises(
        KindError, match=r"^outputs\.dets\.class_id: expected an integer dtype, got float64$"
    ):
        encode_outputs({"dets": detections})


# --- JSON form (Roboflow) ----------------------------------------------------------------


def json_round_trip(value):
    tree, _ = encode_outputs({"x": value}, mode="json")
    return decode_inputs(json.loads(json.dumps(tree)))["x"], tree["x"]


def _square_mask(height=20, width=30):
    mask = np.zeros((2, height, width), dtype=bool)
    mask[0, 2:8, 3:10] = True
    mask[1, 10:18, 12:25] = True
    return mask


def test_json_form_carries_the_fields_inference_knows():
    detections = sv.Detections(
        xyxy=np.array([[3, 2, 10, 8], [12, 10, 25, 18]], dtype=np.float32),
        confidence=np.array([0.75, 0.5], dtype=np.float32),
        class_id=np.array([1, 4]),
        tracker_id=np.array([7, 9]),
        mask=_square_mask(),
        data={
            "class_name": np.array(["car", "bus"]),
            "detection_id": np.array(["d1", "d2"]),
            "parent_id": np.array(["image", "image"]),
            "image_dimensions": np.array([[20, 30], [20, 30]]),
            "time_in_zone": np.array([1.5, 0.0]),
            "velocity": np.array([[1.0, 2.0], [0.5, -1.0]]),
            "parent_coordinates": np.array([[0, 0], [0, 0]]),
            "parent_dimensions": np.array([[20, 30], [20, 30]]),
        },
        metadata={"camera": "north"},
    )
    back, form = json_round_trip(detections)
    assert form["_type"] == "sv_detections" and form["image"] == {"width": 30, "height": 20}
    first = form["predictions"][0]
    assert {k: first[k] for k in ("x", "y", "width", "height", "confidence", "class_id", "class", "detection_id", "tracker_id", "parent_id")} == {
        "x": 6.5, "y": 5.0, "width": 7.0, "height": 6.0, "confidence": 0.75, "class_id": 1, "class": "car", "detection_id": "d1", "tracker_id": 7, "parent_id": "image",
    }  # fmt: skip
    assert first["parent_origin"] == {"offset_x": 0, "offset_y": 0, "width": 30, "height": 20}
    assert len(first["points"]) >= 3 and first["velocity"] == [1.0, 2.0]

    np.testing.assert_array_equal(back.xyxy, detections.xyxy)
    np.testing.assert_allclose(back.confidence, detections.confidence)
    assert back.class_id.tolist() == [1, 4] and back.tracker_id.tolist() == [7, 9]
    np.testing.assert_array_equal(
        back.mask, detections.mask
    )  # rectangles survive a polygon exactly
    for key in (
        "class_name",
        "detection_id",
        "parent_id",
        "image_dimensions",
        "time_in_zone",
        "velocity",
        "parent_coordinates",
        "parent_dimensions",
    ):
        np.testing.assert_array_equal(back.data[key], detections.data[key], err_msg=key)
    assert back.metadata == {"camera": "north"}
    again, form_again = json_round_trip(back)
    assert form_again == form  # stable from the first trip on


def test_json_form_of_empty_detections():
    back, form = json_round_trip(sv.Detections.empty())
    assert form == {
        "_type": "sv_detections",
        "image": {"width": None, "height": None},
        "predictions": [],
    }
    assert type(back) is sv.Detections and len(back) == 0 and back.xyxy.shape == (0, 4)


def test_json_form_keeps_an_empty_mask_as_empty_points():
    mask = np.zeros((1, 4, 4), dtype=bool)
    back, form = json_round_trip(sv.Detections(xyxy=np.ones((1, 4)), mask=mask))
    assert form["predictions"][0]["points"] == [] and len(back) == 1
    assert back.mask.shape == (1, 4, 4) and not back.mask.any()


def test_json_keypoints_turn_into_inference_keypoint_columns_and_back():
    form = {
        "_type": "sv_detections",
        "image": {"width": 100, "height": 80},
        "predictions": [
            {"x": 50, "y": 40, "width": 20, "height": 10, "confidence": 0.9, "class_id": 0, "class": "person", "detection_id": "p1",
             "keypoints": [{"x": 1, "y": 2, "confidence": 0.5, "class_id": 0, "class": "nose"}, {"x": 3, "y": 4, "confidence": 0.25, "class_id": 1, "class": "eye"}]},
            {"x": 10, "y": 10, "width": 4, "height": 4, "confidence": 0.8, "class_id": 0, "class": "person", "detection_id": "p2",
             "keypoints": [{"x": 5, "y": 6, "confidence": 1.0, "class_id": 0, "class": "nose"}]},
        ],
    }  # fmt: skip
    detections = decode_inputs({"k": form})["k"]
    assert detections.data["keypoints_xy"].shape == (2, 2, 2)
    assert detections.data["keypoints_class_name"].tolist() == [["nose", "eye"], ["nose", ""]]
    tree, _ = encode_outputs({"k": detections}, mode="json")
    assert [p["keypoints"] for p in tree["k"]["predictions"]] == [
        p["keypoints"] for p in form["predictions"]
    ]


# What an Inference server's Modal executor sends for an instance-segmentation result
# (serialise_sv_detections + the "_type" marker), trimmed to two predictions.
INFERENCE_SAMPLE = {
    "_type": "sv_detections",
    "image": {"width": 64, "height": 48},
    "predictions": [
        {
            "width": 20.0, "height": 10.0, "x": 20.0, "y": 15.0, "confidence": 0.87, "class_id": 2,
            "points": [{"x": 10.0, "y": 10.0}, {"x": 29.0, "y": 10.0}, {"x": 29.0, "y": 19.0}, {"x": 10.0, "y": 19.0}],
            "tracker_id": 5, "class": "car", "detection_id": "5b9e6c2a-0d6a-4a55-9f0e-3c6f2f1b2a10", "parent_id": "image",
            "time_in_zone": 2.5, "area_px": 200.0,
        },
        {
            "width": 8.0, "height": 8.0, "x": 50.0, "y": 30.0, "confidence": 0.42, "class_id": 0,
            "points": [{"x": 46.0, "y": 26.0}, {"x": 53.0, "y": 26.0}, {"x": 53.0, "y": 33.0}, {"x": 46.0, "y": 33.0}],
            "tracker_id": 6, "class": "person", "detection_id": "0c1d2e3f-4a5b-6c7d-8e9f-a0b1c2d3e4f5", "parent_id": "image",
            "root_parent_id": "image", "parent_origin": {"offset_x": 0, "offset_y": 0, "width": 64, "height": 48},
            "time_in_zone": 0.0, "area_px": 64.0,
        },
    ],
}  # fmt: skip


def test_an_inference_shaped_sample_decodes():
    detections = decode_inputs({"dets": json.loads(json.dumps(INFERENCE_SAMPLE))})["dets"]
    assert type(detections) is sv.Detections and len(detections) == 2
    np.testing.assert_array_equal(detections.xyxy, [[10, 10, 30, 20], [46, 26, 54, 34]])
    assert detections.confidence.tolist() == [0.87, 0.42] and detections.class_id.tolist() == [2, 0]
    assert detections.tracker_id.tolist() == [5, 6]
    assert detections.data["class_name"].tolist() == ["car", "person"]
    assert detections.data["detection_id"][0] == "5b9e6c2a-0d6a-4a55-9f0e-3c6f2f1b2a10"
    assert detections.data["image_dimensions"].tolist() == [[48, 64], [48, 64]]
    assert detections.data["parent_id"].tolist() == ["image", "image"]
    assert (
        detections.data["time_in_zone"].tolist() == [2.5, 0.0]
        and detections.data["area_px"].dtype == np.float64
    )
    # root_parent_id on one prediction only: kept, None where missing; parent_origin on one only: not a column
    assert detections.data["root_parent_id"].tolist() == [None, "image"]
    assert "parent_coordinates" not in detections.data
    assert detections.mask.shape == (2, 48, 64)
    assert (
        detections.mask[0].sum() == 20 * 10
        and detections.mask[0, 10, 10]
        and detections.mask[0, 19, 29]
    )
    assert detections.mask[1].sum() == 8 * 8
    # and it filters like any other Detections
    assert detections[detections.confidence > 0.5].data["class_name"].tolist() == ["car"]


def test_json_reader_fills_ids_and_drops_partial_tracker_ids_like_inference():
    form = {"_type": "sv_detections", "image": {"width": 10, "height": 10}, "predictions": [
        {"x": 1, "y": 1, "width": 2, "height": 2, "confidence": 0.5, "class_id": 0, "class": "a", "tracker_id": 3},
        {"x": 5, "y": 5, "width": 2, "height": 2, "confidence": 0.5, "class_id": 1, "class": "b"},
    ]}  # fmt: skip
    detections = decode_inputs({"d": form})["d"]
    assert detections.tracker_id is None
    assert all(len(i) == 36 for i in detections.data["detection_id"])


@pytest.mark.parametrize(
    ("form", "message"),
    [
        (
            {"_type": "sv_detections", "image": {}},
            r"^inputs\.d\.predictions: expected a list of predictions$",
        ),
        (
            {
                "_type": "sv_detections",
                "predictions": [{"x": 1, "y": "2", "width": 1, "height": 1}],
            },
            r"^inputs\.d\.predictions\[0\]\.y: expected a number, got str$",
        ),
        (
            {
                "_type": "sv_detections",
                "predictions": [{"x": 1, "y": 1, "width": 1, "height": 1, "class_id": 1.5}],
            },
            r"^inputs\.d\.predictions\[0\]\.class_id: expected an integer, got float$",
        ),
        (
            {
                "_type": "sv_detections",
                "predictions": [
                    {"x": 1, "y": 1, "width": 1, "height": 1, "class_id": 1},
                    {"x": 1, "y": 1, "width": 1, "height": 1},
                ],
            },
            r"^inputs\.d\.predictions\[1\]\.class_id: missing, while other predictions have a class_id$",
        ),
        (
            {
                "_type": "sv_detections",
                "image": {"width": None, "height": None},
                "predictions": [
                    {"x": 1, "y": 1, "width": 1, "height": 1, "points": [{"x": 0, "y": 0}] * 3}
                ],
            },
            r"^inputs\.d\.image: width and height are needed",
        ),
        (
            {
                "_type": "sv_detections",
                "image": {"width": 20000, "height": 10},
                "predictions": [{"x": 1, "y": 1, "width": 1, "height": 1, "points": []}],
            },
            r"^inputs\.d\.image: mask of 10×20000 pixels is over the limit",
        ),
        (
            {"_type": "sv_detections", "image": {"width": -1, "height": 10}, "predictions": []},
            r"^inputs\.d\.image\.width: must be a positive number of pixels, got -1$",
        ),
        (
            {
                "_type": "sv_detections",
                "image": {"width": 9, "height": 9},
                "predictions": [{"x": 1, "y": 1, "width": 1, "height": 1, "points": [{"x": 0}]}],
            },
            r"^inputs\.d\.predictions\[0\]\.points\[0\]\.y: expected a number, got null$",
        ),
        (
            {"_type": "sv_detections", "predictions": ["box"]},
            r"^inputs\.d\.predictions\[0\]: expected a map, got str$",
        ),
    ],
)
def test_bad_json_forms_name_the_path(form, message):
    with pytest.raises(KindError, match=message):
        decode_inputs({"d": form})
