"""Names blocks get in scope: Batch, WorkflowImageData, debug_traces."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pytest

from runtime.entities import (
    Batch,
    ImageParentMetadata,
    OriginCoordinatesSystem,
    WorkflowImageData,
    debug_traces,
)
from runtime.traces import MAX_TRACE_ENTRIES, MAX_TRACE_VALUE_BYTES, collecting_traces


def test_batch_sequence_behaviour():
    batch = Batch(["a", "b", "c"], [(0,), (1,), (2,)])
    assert len(batch) == 3
    assert list(batch) == ["a", "b", "c"]
    assert batch[1] == "b" and batch[-1] == "c"
    assert list(batch.iter_with_indices()) == [((0,), "a"), ((1,), "b"), ((2,), "c")]
    assert "b" in batch


def test_batch_default_indices_and_slicing():
    batch = Batch([10, 20, 30])
    assert batch.indices == [(0,), (1,), (2,)]
    assert batch[1:] == Batch([20, 30], [(1,), (2,)])


def test_batch_remove_by_indices_returns_a_new_batch():
    batch = Batch(["a", "b", "c"], [(0, 0), (0, 1), (1, 0)])
    smaller = batch.remove_by_indices({(0, 1), (9, 9)})
    assert list(smaller.iter_with_indices()) == [((0, 0), "a"), ((1, 0), "c")]
    assert len(batch) == 3


def test_batch_rejects_mismatched_indices():
    with pytest.raises(ValueError, match="2 elements but 1 indices"):
        Batch([1, 2], [(0,)])


def test_the_workflow_image_data_in_scope_behaves_like_roboflows():
    image = WorkflowImageData(
        ImageParentMetadata("p"), numpy_image=np.zeros((2, 3, 3), dtype=np.uint8)
    )
    assert image.numpy_image.shape == (2, 3, 3)
    # Roboflow's defaults: the whole image is its own origin, and a video made up from the parent id.
    assert image.parent_metadata.origin_coordinates == OriginCoordinatesSystem(0, 0, 3, 2)
    assert image.video_metadata.video_identifier == "p"


def test_debug_traces_is_a_no_op_outside_a_run():
    debug_traces.append("ignored")
    with collecting_traces("s") as entries:
        pass
    assert entries == []


def test_debug_traces_records_json_values_and_reprs():
    with collecting_traces("step_a") as entries:
        debug_traces.append({"count": 3})
        debug_traces.append(np.array([1, 2]))
    assert entries == [
        {"step": "step_a", "value": {"count": 3}},
        {"step": "step_a", "value": "array([1, 2])"},
    ]


def test_debug_traces_timestamps():
    with collecting_traces("s") as entries:
        debug_traces.append(1, add_timestamp=True)
        debug_traces.append(2, add_timestamp=True, timezone="Asia/Tokyo")
    utc, tokyo = entries
    assert datetime.fromisoformat(utc["timestamp"]).utcoffset().total_seconds() == 0
    assert "timestamp_timezone" not in utc
    assert datetime.fromisoformat(tokyo["timestamp"]).utcoffset().total_seconds() == 9 * 3600
    assert tokyo["timestamp_timezone"] == "Asia/Tokyo"


def test_debug_traces_are_capped_in_count_and_size():
    with collecting_traces("s") as entries:
        for i in range(MAX_TRACE_ENTRIES + 50):
            debug_traces.append(i)
    assert len(entries) == MAX_TRACE_ENTRIES
    assert entries[-1]["value"] == MAX_TRACE_ENTRIES - 1

    with collecting_traces("s") as entries:
        debug_traces.append("é" * 20_000)
    value = entries[0]["value"]
    assert isinstance(value, str)
    assert "truncated" in value
    assert len(value.encode()) < MAX_TRACE_VALUE_BYTES + 100
    json.dumps(entries)  # what is recorded is always JSON-safe
