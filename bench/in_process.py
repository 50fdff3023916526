"""Baseline: the block run in this very process, no isolation (what Roboflow Inference's local
mode does: compile the block's code, call run() with the Python objects it already holds).

    .venv/bin/python bench/in_process.py PAYLOAD_DIR ROUNDS COLD_PER_ROUND WARM_PER_ROUND

The block is built by the same assembly the workers use (template/runtime/assembly.py:
prelude, imports, init), so what differs from a worker is the execution path only: no
process boundary, no serialization. Inputs are decoded once, outside the timing, since an
in-process block receives live objects. One JSON line per payload and phase:
{payload, phase: "cold"|"warm", rounds: [[ms, …], …]}.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "template")]

import cbor2  # noqa: E402

from runtime.assembly import BlockCode, load_block  # noqa: E402
from runtime.prelude import preload  # noqa: E402
from serializers.registry import decode_inputs  # noqa: E402

CONTEXT = {
    "step_name": "bench",
    "block_type": "custom_python_block",
    "workflow_execution_id": "bench",
}


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


def main() -> None:
    directory = Path(sys.argv[1])
    rounds, cold_per_round, warm_per_round = (int(value) for value in sys.argv[2:5])
    preload()  # the server process has its CV stack imported long before a block arrives
    index = json.loads((directory / "index.json").read_text())
    for payload in index["blocks"]:
        code = BlockCode(run_function_code=payload["code"])
        inputs = decode_inputs(cbor2.loads((directory / f"{payload['file']}.cbor").read_bytes()))

        # Cold: compile the block (its prelude included) and run it once.
        def cold_run() -> None:
            load_block(code).run(inputs, CONTEXT)

        block = load_block(code)
        timed(cold_run)  # warm-up, not counted
        cold = [[timed(cold_run) for _ in range(cold_per_round)] for _ in range(rounds)]
        block.run(inputs, CONTEXT)  # warm-up, not counted
        warm = [
            [timed(lambda: block.run(inputs, CONTEXT)) for _ in range(warm_per_round)]
            for _ in range(rounds)
        ]
        for phase, samples in (("cold", cold), ("warm", warm)):
            print(
                json.dumps({"payload": payload["id"], "phase": phase, "rounds": samples}),
                flush=True,
            )


if __name__ == "__main__":
    main()
