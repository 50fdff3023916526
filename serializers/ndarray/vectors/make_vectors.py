"""Writes the ndarray golden vectors. Run it only to add a vector on purpose:

    .venv/bin/python serializers/ndarray/vectors/make_vectors.py

Each vector is ``<name>.cbor`` plus an entry in ``index.json``: what both languages must
decode it to (dtype, shape, little-endian element bytes or string values) and, when the
canonical re-encoding differs from the input (big endian, classic or column-major forms
from RFC 8746's examples), the hex it must re-encode to.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cbor2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))
from serializers.registry import encode_outputs  # noqa: E402


def canonical(array: np.ndarray) -> bytes:
    tree, _ = encode_outputs(array)
    return cbor2.dumps(tree)


def describe(array: np.ndarray) -> dict:
    if array.dtype.kind == "U":
        return {"dtype": "str", "shape": list(array.shape), "values": array.reshape(-1).tolist()}
    little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return {"dtype": array.dtype.name, "shape": list(array.shape), "hex": little.tobytes().hex()}


# RFC 8746 §3.1: a 2x3 array of uint16 1..6, as a big-endian typed array (tag 65), as a
# classic array, and column-major (tag 1040).
RFC_EXAMPLES = {
    "rfc8746-row-major-uint16be": (
        "d82882820203d8414c000100020003000400050006",
        np.arange(1, 7, dtype=np.uint16).reshape(2, 3),
    ),
    "rfc8746-row-major-classic": (
        "d82882820203860102030405 06".replace(" ", ""),
        np.arange(1, 7, dtype=np.int64).reshape(2, 3),
    ),
    "rfc8746-column-major-uint16be": (
        "d9041082820203d8414c000100040002000500030006",
        np.arange(1, 7, dtype=np.uint16).reshape(2, 3),
    ),
}

CANONICAL = {
    "bool-2x3": np.array([[True, False, True], [False, False, True]]),
    "uint8-image-2x2x3": np.arange(12, dtype=np.uint8).reshape(2, 2, 3),
    "int8-extremes": np.array([-128, -1, 0, 127], dtype=np.int8),
    "uint16": np.array([0, 1, 65535], dtype=np.uint16),
    "int16": np.array([-32768, 0, 32767], dtype=np.int16),
    "uint32": np.array([0, 4294967295], dtype=np.uint32),
    "int32-empty-0x3": np.zeros((0, 3), dtype=np.int32),
    "uint64-extremes": np.array([0, 2**53 + 1, 2**64 - 1], dtype=np.uint64),
    "int64-extremes": np.array([-(2**63), -1, 2**63 - 1], dtype=np.int64),
    "float16": np.array([0.5, -2.0, 65504.0, np.inf], dtype=np.float16),
    "float32-2x2": np.array([[1.5, -0.0], [3.25, np.float32(1e-30)]], dtype=np.float32),
    "float64-0d": np.array(3.141592653589793),
    "float64-special": np.array([np.inf, -np.inf, -0.0, 5e-324]),
    "str-class-names": np.array(["car", "person", "traffic light"]),
}


def main() -> None:
    index = []
    for name, (hex_input, expected) in RFC_EXAMPLES.items():
        (HERE / f"{name}.cbor").write_bytes(bytes.fromhex(hex_input))
        index.append(
            {"name": name, **describe(expected), "reencoded_hex": canonical(expected).hex()}
        )
    for name, array in CANONICAL.items():
        (HERE / f"{name}.cbor").write_bytes(canonical(array))
        index.append({"name": name, **describe(array)})
    (HERE / "index.json").write_text(json.dumps(index, indent=2) + "\n")


if __name__ == "__main__":
    main()
