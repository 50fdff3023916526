"""Test helper: Python's own view of values that crossed blockgate.

Reads a JSON list of cases on stdin, each {"sent": base64, "sent_as": "json" | "cbor",
"answer": base64, "answer_as": "json" | "cbor" | "webexec"}, and writes a JSON list of
{"expected", "seen", "returned"}: DESCRIBE of the inputs as Python's json.loads or
cbor2.loads reads the sent bytes, what the block said it saw (its output "d"), and DESCRIBE
of the inputs the block returned (its output "v"), as a Python client reads the answer:
json.loads (blockgate's non-finite marker read as the float it stands for), cbor2.loads,
or, for webexec, json.loads of `result` as Inference does.
"""

import base64
import json
import math
import sys

import cbor2

# The same text is the block's own code (test/integration/json-values.test.ts sends it).
DESCRIBE = """
def describe(x):
    if isinstance(x, dict):
        return "{" + ",".join(sorted(describe(k) + ":" + describe(v) for k, v in x.items())) + "}"
    if isinstance(x, list):
        return "[" + ",".join(describe(v) for v in x) + "]"
    return type(x).__name__ + ":" + repr(x)
"""
exec(DESCRIBE)

NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def marker(obj):
    if obj.get("_type") == "float" and len(obj) == 2 and obj.get("value") in NON_FINITE:
        return NON_FINITE[obj["value"]]
    return obj


def load(data, form):
    if form == "cbor":
        return cbor2.loads(data)
    return json.loads(data, object_hook=marker if form == "json" else None)


def view(case):
    sent = base64.b64decode(case["sent"])
    answer = base64.b64decode(case["answer"])
    inputs = load(sent, case["sent_as"])
    if case["answer_as"] == "webexec":
        outputs = json.loads(json.loads(answer)["result"])
    else:
        inputs = inputs["inputs"]
        outputs = load(answer, case["answer_as"])["outputs"]
    return {"expected": describe(inputs), "seen": outputs["d"], "returned": describe(outputs["v"])}


if __name__ == "__main__":
    if sys.argv[1:] == ["--describe"]:
        sys.stdout.write(DESCRIBE)
    else:
        json.dump([view(case) for case in json.load(sys.stdin)], sys.stdout)
