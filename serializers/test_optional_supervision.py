"""Without supervision (the Python client without its extra), every other kind still works and
a detections value is an error that says what to install."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import sys
sys.modules["supervision"] = None  # as if not installed: importing it raises ModuleNotFoundError
import cbor2, numpy as np
from cbor2 import CBORTag
from serializers.kind import KindError
from serializers.registry import KINDS, decode_inputs, encode_outputs

assert [k.name for k in KINDS] == ["ndarray", "detections", "video_metadata", "image"]
tree, _ = encode_outputs({"a": np.arange(3, dtype=np.int16)})
assert decode_inputs(cbor2.loads(cbor2.dumps(tree)))["a"].tolist() == [0, 1, 2]
try:
    decode_inputs({"dets": CBORTag(61442, {})})
except KindError as error:
    print(error)
"""


def test_detections_without_supervision_name_the_extra():
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "inputs.dets: detections need supervision: pip install 'blockgate[supervision]'"
    )
