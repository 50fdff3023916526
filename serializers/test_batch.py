"""Inference's ``_type: "batch"`` JSON marker (what its remote executor sends for a
batch-oriented input) decodes into a Batch of decoded elements, indices kept."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.entities import Batch as BlockBatch
from serializers.batch import Batch
from serializers.kind import KindError
from serializers.registry import decode_inputs, encode_outputs


def test_a_batch_marker_becomes_a_batch_of_decoded_elements_with_its_indices():
    array = {"_type": "ndarray", "dtype": "uint8", "shape": [2], "value": [1, 2]}
    got = decode_inputs(
        {"xs": {"_type": "batch", "value": [array, 7], "indices": [[0, 1], [0, 2]]}}
    )["xs"]
    assert isinstance(got, Batch)
    assert BlockBatch is Batch  # the name blocks see is this class
    assert got.indices == [(0, 1), (0, 2)]
    np.testing.assert_array_equal(got[0], np.array([1, 2], dtype=np.uint8))
    assert got[0].dtype == np.uint8
    assert got[1] == 7


def test_a_batch_without_indices_is_numbered():
    got = decode_inputs({"xs": {"_type": "batch", "value": ["a", "b"], "indices": None}})["xs"]
    assert list(got) == ["a", "b"]
    assert got.indices == [(0,), (1,)]


def test_nested_batches_decode_too():
    inner = {"_type": "batch", "value": [1], "indices": [[0, 0]]}
    got = decode_inputs({"xs": {"_type": "batch", "value": [inner], "indices": [[0]]}})["xs"]
    assert isinstance(got[0], Batch) and list(got[0]) == [1]


@pytest.mark.parametrize(
    ("marker", "path", "message"),
    [
        ({"_type": "batch", "value": "nope"}, "inputs.xs.value", "must be a list, got str"),
        (
            {"_type": "batch", "value": [1], "indices": [["0"]]},
            "inputs.xs.indices",
            "lists of integers",
        ),
        (
            {"_type": "batch", "value": [1, 2], "indices": [[0]]},
            "inputs.xs.indices",
            "1 entries for 2 elements",
        ),
    ],
)
def test_a_malformed_batch_names_its_path(marker, path, message):
    with pytest.raises(KindError) as error:
        decode_inputs({"xs": marker})
    assert path in str(error.value) and message in str(error.value)


def test_a_batch_output_goes_back_as_a_list():
    tree, _ = encode_outputs({"xs": Batch([1, np.int64(2)])}, "json")
    assert tree == {"xs": [1, 2]}
