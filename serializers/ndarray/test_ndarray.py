"""ndarray, Python half: golden vectors, round trips of every dtype, validation, JSON forms."""

from __future__ import annotations

import json
from pathlib import Path

import cbor2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from serializers.kind import KindError
from serializers.registry import SIDECAR_TAG, decode_inputs, encode_outputs
from serializers.testing import cbor_round_trip

VECTORS = Path(__file__).parent / "vectors"
INDEX = json.loads((VECTORS / "index.json").read_text())


def expected_array(entry):
    if entry["dtype"] == "str":
        return np.array(entry["values"], dtype=str).reshape(entry["shape"])
    return np.frombuffer(
        bytes.fromhex(entry["hex"]), dtype=np.dtype(entry["dtype"]).newbyteorder("<")
    ).reshape(entry["shape"])


@pytest.mark.parametrize("entry", INDEX, ids=[e["name"] for e in INDEX])
def test_golden_vector_decodes_and_reencodes(entry):
    raw = (VECTORS / f"{entry['name']}.cbor").read_bytes()
    array = decode_inputs({"v": cbor2.loads(raw)})["v"]
    expected = expected_array(entry)
    assert array.dtype == expected.dtype
    assert array.shape == expected.shape
    np.testing.assert_array_equal(array, expected)
    tree, _ = encode_outputs(array)
    assert cbor2.dumps(tree).hex() == entry.get("reencoded_hex", raw.hex())


NUMERIC_DTYPES = [
    "bool",
    "uint8",
    "int8",
    "uint16",
    "int16",
    "uint32",
    "int32",
    "uint64",
    "int64",
    "float16",
    "float32",
    "float64",
]


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(
        dtype=st.sampled_from(NUMERIC_DTYPES).map(np.dtype),
        shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
    ),
    st.booleans(),
)
def test_every_dtype_round_trips_bit_exact(array, sidecar):
    back = cbor_round_trip(array, sidecar)
    assert back.dtype == array.dtype and back.shape == array.shape
    assert (
        back.tobytes() == np.ascontiguousarray(array).tobytes()
    )  # bit-exact, NaN payloads included
    assert back.flags.writeable


def test_non_contiguous_and_big_endian_outputs_are_made_contiguous_little_endian():
    strided = np.arange(24, dtype=np.int32).reshape(4, 6)[::2, 1::2]
    assert cbor_round_trip(strided).tolist() == strided.tolist()
    big = np.arange(5, dtype=">f8")
    back = cbor_round_trip(big)
    assert back.dtype == np.dtype("<f8") and back.tolist() == big.tolist()


def test_large_arrays_ride_as_sidecar_views_writable_without_copy():
    image = np.random.default_rng(0).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    tree, buffers = encode_outputs({"image": image}, sidecar=True)
    assert len(buffers) == 1 and buffers[0].nbytes == image.nbytes
    typed = tree["image"].value[1]
    assert (
        typed.tag == 64
        and typed.value.tag == SIDECAR_TAG
        and typed.value.value == [0, image.nbytes]
    )
    region = bytearray(buffers[0])
    back = decode_inputs(cbor2.loads(cbor2.dumps(tree)), sidecar=memoryview(region))["image"]
    np.testing.assert_array_equal(back, image)
    back[0, 0, 0] = 7  # writable, and a view of the frame's bytes: no copy was made
    assert region[0] == 7


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            cbor2.CBORTag(40, [[2, 3], cbor2.CBORTag(85, b"\0" * 20)]),
            r"inputs\.x: shape \[2, 3\] of float32 needs 24 bytes, got 20",
        ),
        (
            cbor2.CBORTag(40, [[-1], cbor2.CBORTag(64, b"")]),
            r"inputs\.x\.shape: dimensions must be non-negative integers",
        ),
        (
            cbor2.CBORTag(40, [[2], cbor2.CBORTag(87, b"\0" * 32)]),
            r"typed-array tag 87 is not supported",
        ),
        (
            cbor2.CBORTag(40, [[3], cbor2.CBORTag(70, b"\0" * 10)]),
            r"10 bytes is not a whole number of uint32 elements",
        ),
        (
            cbor2.CBORTag(40, [[2], cbor2.CBORTag(68, b"\x01\x02")]),
            r"a bool array holds a byte other than 0 or 1",
        ),
        (cbor2.CBORTag(40, [[2], [1, "a"]]), r"only numbers, only booleans or only strings"),
        (cbor2.CBORTag(40, [[2], [1, 2, 3]]), r"shape \[2\] needs 2 values, got 3"),
        (cbor2.CBORTag(40, "nope"), r"tag 40 must hold \[dimensions, elements\]"),
        (
            cbor2.CBORTag(40, [[2**40, 2**40], cbor2.CBORTag(64, b"")]),
            r"more than 2147483648 elements",
        ),
        (
            cbor2.CBORTag(40, [[1] * 33, cbor2.CBORTag(64, b"\0")]),
            r"33 dimensions, over the limit of 32",
        ),
        (
            cbor2.CBORTag(40, [[1], cbor2.CBORTag(64, cbor2.CBORTag(SIDECAR_TAG, [0, 1]))]),
            r"internal to blockgate",
        ),
        (cbor2.CBORTag(999, 1), r"unknown CBOR tag 999"),
    ],
)
def test_bad_arrays_name_the_path(content, message):
    with pytest.raises(KindError, match=message):
        decode_inputs({"x": content})


def test_unsupported_output_dtypes_name_the_path():
    with pytest.raises(KindError, match=r"outputs\.z: dtype complex64 is not supported"):
        encode_outputs({"z": np.zeros(2, dtype=np.complex64)})


def test_roboflow_json_form_round_trips():
    array = np.array([[1.5, 2.0], [3.0, 4.25]], dtype=np.float32)
    tree, _ = encode_outputs({"a": array}, mode="json")
    assert tree["a"] == {
        "_type": "ndarray",
        "value": [[1.5, 2.0], [3.0, 4.25]],
        "dtype": "float32",
        "shape": [2, 2],
    }
    back = decode_inputs(json.loads(json.dumps(tree)))["a"]
    assert back.dtype == np.float32 and back.tolist() == array.tolist()


def test_compact_json_form_round_trips_exactly():
    array = np.array([[1, 2**40], [3, -4]], dtype=np.int64)
    tree, _ = encode_outputs({"a": array}, mode="json-compact")
    assert tree["a"]["encoding"] == "base64" and tree["a"]["dtype"] == "int64"
    back = decode_inputs(json.loads(json.dumps(tree)))["a"]
    assert back.dtype == np.int64 and back.tolist() == array.tolist()


@pytest.mark.parametrize(
    ("form", "message"),
    [
        (
            {"_type": "ndarray", "dtype": "float32", "shape": [3], "value": [1, 2]},
            r"inputs\.a\.value: holds 2 values, shape \[3\] needs 3",
        ),
        (
            {"_type": "ndarray", "dtype": "complex64", "shape": [1], "value": [1]},
            r"inputs\.a\.dtype: dtype 'complex64' is not supported",
        ),
        (
            {"_type": "ndarray", "dtype": "uint8", "shape": [1], "value": [300]},
            r"inputs\.a\.value: does not fit dtype uint8",
        ),
        (
            {
                "_type": "ndarray",
                "dtype": "uint8",
                "shape": [2],
                "encoding": "base64",
                "value": "!!",
            },
            r"inputs\.a\.value: not valid base64",
        ),
        (
            {
                "_type": "ndarray",
                "dtype": "int32",
                "shape": [2],
                "encoding": "base64",
                "value": "AAAAAAAAAAAAAAAA",
            },
            r"inputs\.a: shape \[2\] of int32 needs 8 bytes, got 12",
        ),
    ],
)
def test_bad_json_forms_name_the_path(form, message):
    with pytest.raises(KindError, match=message):
        decode_inputs({"a": form})
