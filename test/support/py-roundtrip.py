"""Test helper: decode a CBOR item from stdin through the Python registry (into real
numpy / supervision / WorkflowImageData objects) and encode it back to stdout."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "template")]

import cbor2  # noqa: E402

from serializers.registry import decode_inputs, encode_outputs  # noqa: E402

value = decode_inputs({"v": cbor2.loads(sys.stdin.buffer.read())})["v"]
tree, _ = encode_outputs(value)
sys.stdout.buffer.write(cbor2.dumps(tree))
