"""Large buffers through a worker's shared-memory region (REGION_TAG), both directions."""

from __future__ import annotations

import mmap

import cbor2
import numpy as np
import pytest

from serializers.kind import KindError
from serializers.registry import REGION_MIN_BYTES, REGION_TAG, Sidecar, decode_inputs


def test_large_inputs_are_private_writable_copies_of_the_region():
    region = mmap.mmap(-1, 16 << 20)
    image = np.arange(2 << 20, dtype=np.uint32).view(np.uint8)[: 6 << 20].reshape(2048, 1024, 3)
    region[: image.nbytes] = image.tobytes()
    raw = {
        "image": cbor2.CBORTag(
            40, [list(image.shape), cbor2.CBORTag(64, cbor2.CBORTag(REGION_TAG, [0, image.nbytes]))]
        )
    }
    got = decode_inputs(raw, region=region)["image"]
    np.testing.assert_array_equal(got, image)
    region[:4] = b"\xff\xff\xff\xff"  # the next run rewrites the region...
    assert got.reshape(-1)[0] == image.reshape(-1)[0]  # ...and the block's array does not change
    got[0, 0, 0] = 1  # writable


def test_large_outputs_go_to_the_region_small_ones_stay_in_the_frame():
    region = mmap.mmap(-1, 16 << 20)
    sidecar = Sidecar(region=region)
    big = np.ones(REGION_MIN_BYTES + 1, dtype=np.uint8)
    small = np.ones(10_000, dtype=np.uint8)
    big_ref, small_ref = sidecar.add(memoryview(big)), sidecar.add(memoryview(small))
    assert big_ref.tag == REGION_TAG and big_ref.value == [0, big.nbytes]
    assert region[: big.nbytes] == big.tobytes()
    assert small_ref.tag != REGION_TAG and len(sidecar.buffers) == 1


def test_a_region_reference_without_a_region_or_out_of_it_is_refused():
    ref = {"x": cbor2.CBORTag(40, [[4], cbor2.CBORTag(64, cbor2.CBORTag(REGION_TAG, [0, 4]))])}
    with pytest.raises(KindError, match="internal to blockgate"):
        decode_inputs(ref)
    with pytest.raises(KindError, match="beyond its region"):
        decode_inputs(
            {
                "x": cbor2.CBORTag(
                    40, [[4], cbor2.CBORTag(64, cbor2.CBORTag(REGION_TAG, [0, 4096]))]
                )
            },
            region=mmap.mmap(-1, 1024),
        )
