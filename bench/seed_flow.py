"""The seed's flow, inside an E2B code-interpreter sandbox: sent as code text, not imported.

The seed initialised each new sandbox with the user's code, then sent the inputs as base64
JSON inside the code it executed, and read the outputs, base64 JSON again, from stdout.
Its serializers were Roboflow's JSON forms; blockgate's runtime, uploaded first, provides
the same forms (its "json-compact" mode: arrays as base64, detections as polygons).
"""

import base64
import json

from runtime.assembly import BlockCode, load_block
from serializers.registry import decode_inputs, encode_outputs


def seed_load(code_b64):
    global _seed_block
    _seed_block = load_block(BlockCode.from_dict(json.loads(base64.b64decode(code_b64))))


def seed_run(inputs_b64):
    inputs = decode_inputs(json.loads(base64.b64decode(inputs_b64)))
    outputs = _seed_block.run(inputs, {})
    tree, _ = encode_outputs(outputs, mode="json-compact")
    print(json.dumps(tree))
