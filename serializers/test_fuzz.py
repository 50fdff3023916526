"""Fuzzing the Python decoders: mutated golden vectors of every kind and random bytes.

Decoding may succeed or fail with KindError (a clean 400 naming the path) or a CBOR
decode error; any other exception is a bug that would surface as a 500.
"""

from __future__ import annotations

import json
from pathlib import Path

import cbor2
from hypothesis import given, settings
from hypothesis import strategies as st

from serializers.kind import KindError
from serializers.registry import KINDS, decode_inputs

HERE = Path(__file__).parent


def _vectors() -> list[bytes]:
    found = []
    for kind in KINDS:
        index = HERE / kind.name / "vectors" / "index.json"
        if index.exists():
            found += [
                (index.parent / f"{entry['name']}.cbor").read_bytes()
                for entry in json.loads(index.read_text())
            ]
    return found


VECTORS = _vectors()

mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(min_value=0), st.integers(min_value=0, max_value=255)),
    st.tuples(st.just("truncate"), st.integers(min_value=0), st.just(0)),
    st.tuples(st.just("insert"), st.integers(min_value=0), st.integers(min_value=0, max_value=255)),
)


def mutate(data: bytes, steps) -> bytes:
    out = bytearray(data)
    for kind, at, value in steps:
        at = at % len(out) if out else 0
        if kind == "flip" and out:
            out[at] = value
        elif kind == "truncate":
            del out[at:]
        else:
            out.insert(at, value)
    return bytes(out)


def decode_or_clean_error(data: bytes) -> None:
    try:
        item = cbor2.loads(data)
    except (cbor2.CBORDecodeError, RecursionError):
        return
    try:
        decode_inputs({"x": item})
    except KindError:
        return


def test_golden_vectors_exist_for_the_fuzzer():
    assert len(VECTORS) > 10


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(VECTORS), st.lists(mutation, min_size=1, max_size=4))
def test_mutated_vectors_decode_or_fail_cleanly(vector, steps):
    decode_or_clean_error(mutate(vector, steps))


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_decode_or_fail_cleanly(data):
    decode_or_clean_error(data)
