"""The Python client (clients/python, from .venv-client) against its floor: the same request
sent with httpx and cbor2 by hand, the answer only CBOR-decoded. Modes interleave per round.

    .venv-client/bin/python bench/clients.py URL ROUNDS RUNS

Prints one JSON line per (mode, payload): {"mode", "payload", "rounds": [[ms, ...], ...]}.
"""

import json
import sys
import time

import blockgate
import cbor2
import httpx
import numpy as np

URL, ROUNDS, RUNS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
HEADERS = {"content-type": "application/cbor", "accept": "application/cbor"}
NO_OP = "def run(self):\n    return {}\n"
INVERT = "def run(self, image):\n    return {'inverted': 255 - image}\n"
FRAME = np.random.default_rng(0).integers(0, 255, (1080, 1920, 3), dtype=np.uint8)


def raw_body(code: str, inputs: dict) -> bytes:
    return cbor2.dumps({"code": {"run_function_code": code}, "inputs": inputs})


def by_hand(http: httpx.Client, code: str, inputs: dict) -> None:
    # The floor: what the client must do at least (the ndarray's CBOR built directly).
    response = http.post(f"{URL}/v1/run", content=raw_body(code, inputs), headers=HEADERS)
    assert response.status_code == 200, response.content[:200]
    cbor2.loads(response.content)


def frame_by_hand(http: httpx.Client) -> None:
    tagged = cbor2.CBORTag(40, [list(FRAME.shape), cbor2.CBORTag(64, FRAME.tobytes())])
    by_hand(http, INVERT, {"image": tagged})


with blockgate.Client(URL) as client, httpx.Client() as http:
    calls = {
        ("raw", "no-op"): lambda: by_hand(http, NO_OP, {}),
        ("client", "no-op"): lambda: client.run(NO_OP),
        ("raw", "1080p-frame"): lambda: frame_by_hand(http),
        ("client", "1080p-frame"): lambda: client.run(INVERT, {"image": FRAME}),
    }
    samples = {key: [] for key in calls}
    for call in calls.values():
        for _ in range(5):
            call()  # warm: the block loaded, connections open
    for _ in range(ROUNDS):
        for key, call in calls.items():
            times = []
            for _ in range(RUNS if key[1] == "no-op" else max(5, RUNS // 10)):
                started = time.perf_counter()
                call()
                times.append((time.perf_counter() - started) * 1000)
            samples[key].append(times)
    for (mode, payload), rounds in samples.items():
        print(json.dumps({"mode": mode, "payload": payload, "rounds": rounds}))
