"""video_metadata, Python half: golden vectors, round trips that keep the UTC offset,
validation with paths, Inference's JSON form."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serializers.kind import KindError
from serializers.registry import decode_inputs, encode_outputs
from serializers.testing import cbor_round_trip
from serializers.video_metadata.codec import MAX_FRAME_NUMBER, VIDEO_METADATA_TAG
from serializers.video_metadata.entity import VideoMetadata

VECTORS = Path(__file__).parent / "vectors"
INDEX = json.loads((VECTORS / "index.json").read_text())
IST = dt.timezone(dt.timedelta(hours=5, minutes=30))


def rfc3339(timestamp: dt.datetime) -> str:
    return timestamp.isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize("entry", INDEX, ids=[e["name"] for e in INDEX])
def test_golden_vector_decodes_and_reencodes(entry):
    raw = (VECTORS / f"{entry['name']}.cbor").read_bytes()
    value = decode_inputs({"v": cbor2.loads(raw)})["v"]
    assert isinstance(value, VideoMetadata)
    assert value.video_identifier == entry["video_identifier"]
    assert value.frame_number == entry["frame_number"]
    assert rfc3339(value.frame_timestamp) == entry["frame_timestamp"]
    assert value.frame_timestamp.utcoffset() == dt.timedelta(minutes=entry["utc_offset_minutes"])
    assert (value.fps, value.measured_fps, value.comes_from_video_file) == (
        entry["fps"],
        entry["measured_fps"],
        entry["comes_from_video_file"],
    )
    tree, _ = encode_outputs(value)
    assert cbor2.dumps(tree).hex() == raw.hex()


def test_the_timestamp_is_a_tag_0_text_with_its_offset_kept():
    value = VideoMetadata("cam", 1, dt.datetime(2024, 5, 1, 12, 0, tzinfo=IST))
    tree, _ = encode_outputs(value)
    raw = cbor2.dumps(tree)
    assert bytes.fromhex("c0") + cbor2.dumps("2024-05-01T12:00:00+05:30") in raw
    back = cbor_round_trip(value)
    assert back.frame_timestamp.utcoffset() == dt.timedelta(hours=5, minutes=30)
    assert back == value


@st.composite
def timestamps(draw):
    minutes = draw(st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59))
    naive = draw(st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)))
    return naive.replace(tzinfo=dt.timezone(dt.timedelta(minutes=minutes)))


rates = st.one_of(
    st.none(),
    st.floats(min_value=0, allow_nan=False, allow_infinity=False),
    st.integers(min_value=0, max_value=2**40).map(float),
)
video_metadata = st.builds(
    VideoMetadata,
    video_identifier=st.text(),
    frame_number=st.integers(min_value=0, max_value=MAX_FRAME_NUMBER),
    frame_timestamp=timestamps(),
    fps=rates,
    measured_fps=rates,
    comes_from_video_file=st.one_of(st.none(), st.booleans()),
)


@settings(max_examples=300, deadline=None)
@given(video_metadata)
def test_round_trips_exactly_offset_included(value):
    back = cbor_round_trip(value)
    assert back == value
    assert rfc3339(back.frame_timestamp) == rfc3339(value.frame_timestamp)
    assert back.frame_timestamp.utcoffset() == value.frame_timestamp.utcoffset()
    for name in ("fps", "measured_fps"):
        sent, got = getattr(value, name), getattr(back, name)
        assert (got is None) == (sent is None) and (
            got is None or (isinstance(got, float) and got == sent)
        )
    tree, _ = encode_outputs(back)
    assert cbor2.dumps(tree) == cbor2.dumps(encode_outputs(value)[0])


def test_integral_rates_travel_as_integers_as_cbor_x_writes_them():
    tree, _ = encode_outputs(
        VideoMetadata(
            "c", 0, dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), fps=30.0, measured_fps=29.5
        )
    )
    content = tree.value
    assert type(content["fps"]) is int and content["fps"] == 30
    assert type(content["measured_fps"]) is float
    big = encode_outputs(
        VideoMetadata("c", 0, dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), fps=2.0**33)
    )[0].value
    assert type(big["fps"]) is float  # beyond 32 bits cbor-x writes a float too


def test_int_rates_are_read_as_floats_like_inference():
    value = VideoMetadata("c", 0, dt.datetime(2024, 1, 1), fps=30)
    assert value.fps == 30.0 and isinstance(value.fps, float)


def test_naive_output_timestamps_go_out_as_utc():
    back = cbor_round_trip(VideoMetadata("c", 3, dt.datetime(2024, 1, 1, 8, 0)))
    assert back.frame_timestamp == dt.datetime(2024, 1, 1, 8, 0, tzinfo=dt.timezone.utc)


def test_pydantic_style_methods():
    value = VideoMetadata("c", 3, dt.datetime(2024, 1, 1, tzinfo=IST), fps=25.0)
    assert (
        value.dict()
        == value.model_dump()
        == {
            "video_identifier": "c",
            "frame_number": 3,
            "frame_timestamp": dt.datetime(2024, 1, 1, tzinfo=IST),
            "fps": 25.0,
            "measured_fps": None,
            "comes_from_video_file": None,
        }
    )
    copy = value.model_copy(update={"frame_number": 4})
    assert copy.frame_number == 4 and value.frame_number == 3


def tagged(**fields):
    base = {
        "video_identifier": "cam",
        "frame_number": 1,
        "frame_timestamp": dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
        "fps": 30,
        "measured_fps": None,
        "comes_from_video_file": None,
    }
    base.update(fields)
    return cbor2.CBORTag(VIDEO_METADATA_TAG, {k: v for k, v in base.items() if v is not _DROP})


_DROP = object()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            tagged(frame_number=-1),
            r"^inputs\.v\.frame_number: must be an integer from 0 to 9007199254740991, got -1$",
        ),
        (tagged(frame_number=True), r"^inputs\.v\.frame_number: must be an integer"),
        (tagged(frame_number=2**53), r"^inputs\.v\.frame_number: must be an integer"),
        (tagged(frame_number=1.0), r"^inputs\.v\.frame_number: must be an integer"),
        (tagged(fps=-0.5), r"^inputs\.v\.fps: must be a finite number >= 0 or null, got -0\.5$"),
        (tagged(fps=float("inf")), r"^inputs\.v\.fps: must be a finite number"),
        (tagged(fps=float("nan")), r"^inputs\.v\.fps: must be a finite number"),
        (tagged(measured_fps=2**2000), r"^inputs\.v\.measured_fps: must be a finite number"),
        (tagged(fps="30"), r"^inputs\.v\.fps: must be a finite number"),
        (
            tagged(frame_timestamp="2024-01-01T00:00:00Z"),
            r"^inputs\.v\.frame_timestamp: must be a date \(CBOR tag 0",
        ),
        (tagged(video_identifier=7), r"^inputs\.v\.video_identifier: must be text, got 7$"),
        (
            tagged(comes_from_video_file="yes"),
            r"^inputs\.v\.comes_from_video_file: must be a bool or null",
        ),
        (tagged(frame_timestamp=_DROP), r"^inputs\.v: missing field 'frame_timestamp'$"),
        (tagged(colour="red"), r"^inputs\.v: unknown field 'colour'"),
        (
            cbor2.CBORTag(VIDEO_METADATA_TAG, [1, 2]),
            r"^inputs\.v: tag 61443 must hold a map of the video metadata fields, got an array$",
        ),
    ],
)
def test_bad_video_metadata_names_the_path(content, message):
    with pytest.raises(KindError, match=message):
        decode_inputs({"v": cbor2.loads(cbor2.dumps(content))})


def test_optional_fields_may_be_missing():
    value = decode_inputs(
        {
            "v": cbor2.loads(
                cbor2.dumps(tagged(fps=_DROP, measured_fps=_DROP, comes_from_video_file=_DROP))
            )
        }
    )["v"]
    assert (value.fps, value.measured_fps, value.comes_from_video_file) == (None, None, None)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            VideoMetadata("c", -1, dt.datetime(2024, 1, 1)),
            r"^outputs\.v\.frame_number: must be an integer",
        ),
        (VideoMetadata("c", 1, "yesterday"), r"^outputs\.v\.frame_timestamp: must be a date"),  # type: ignore[arg-type]
        (
            VideoMetadata(
                "c", 1, dt.datetime(2024, 1, 1, tzinfo=dt.timezone(dt.timedelta(seconds=30)))
            ),
            r"^outputs\.v\.frame_timestamp: UTC offset .* not a whole number of minutes",
        ),
        (
            VideoMetadata("c", 1, dt.datetime(2024, 1, 1), fps=float("nan")),
            r"^outputs\.v\.fps: must be a finite number",
        ),
    ],
)
def test_bad_outputs_name_the_path(value, message):
    with pytest.raises(KindError, match=message):
        encode_outputs({"v": value})


def test_json_form_is_inferences():
    value = VideoMetadata(
        "cam",
        7,
        dt.datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=IST),
        fps=30.0,
        measured_fps=None,
        comes_from_video_file=True,
    )
    tree, _ = encode_outputs({"v": value}, mode="json")
    assert tree["v"] == {
        "_type": "video_metadata",
        "video_identifier": "cam",
        "frame_number": 7,
        "frame_timestamp": {"_type": "datetime", "value": "2024-05-01T12:00:00.250000+05:30"},
        "fps": 30.0,
        "measured_fps": None,
        "comes_from_video_file": True,
    }
    back = decode_inputs(json.loads(json.dumps(tree)))["v"]
    assert back == value and back.frame_timestamp.utcoffset() == dt.timedelta(hours=5, minutes=30)


def test_json_from_inference_with_a_naive_timestamp_string_and_extra_keys():
    sent = {
        "_type": "video_metadata",
        "video_identifier": "v",
        "frame_number": 0,
        "frame_timestamp": "2024-05-01T12:00:00.5",
        "fps": 30,
        "extra": 1,
    }
    value = decode_inputs({"v": sent})["v"]
    assert (
        value.frame_timestamp == dt.datetime(2024, 5, 1, 12, 0, 0, 500000)
        and value.frame_timestamp.tzinfo is None
    )
    assert value.fps == 30.0 and value.measured_fps is None


@pytest.mark.parametrize(
    ("form", "message"),
    [
        (
            {"_type": "video_metadata", "video_identifier": "v", "frame_number": 0},
            r"^inputs\.v: missing field 'frame_timestamp'$",
        ),
        (
            {
                "_type": "video_metadata",
                "video_identifier": "v",
                "frame_number": 0,
                "frame_timestamp": "soon",
            },
            r"^inputs\.v\.frame_timestamp: not an ISO 8601 datetime",
        ),
        (
            {
                "_type": "video_metadata",
                "video_identifier": "v",
                "frame_number": "0",
                "frame_timestamp": "2024-01-01",
            },
            r"^inputs\.v\.frame_number: must be an integer",
        ),
        (
            {
                "_type": "video_metadata",
                "video_identifier": "v",
                "frame_number": 0,
                "frame_timestamp": {"_type": "datetime", "value": "x"},
            },
            r"^inputs\.v\.frame_timestamp\.value: not an ISO 8601",
        ),
    ],
)
def test_bad_json_names_the_path(form, message):
    with pytest.raises(KindError, match=message):
        decode_inputs({"v": form})
