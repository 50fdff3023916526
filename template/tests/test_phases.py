"""Each reply says when its phases ran by the wall clock, for the proxy's trace spans."""

from __future__ import annotations

import time

from conftest import Runner, code

from runtime.executor import Executor

SUM = "def run(self, a, b):\n    return {'sum': a + b}\n"


def test_load_and_run_report_their_phases_in_order_within_the_request():
    runner = Runner(Executor(cache_size=2, max_capture_bytes=1024))
    before = time.time_ns()
    load = runner.load(code(SUM), "h")
    run = runner.run("h", {"a": 1, "b": 2})
    after = time.time_ns()
    assert list(load["phases_ns"]) == ["load"]
    assert list(run["phases_ns"]) == ["decode", "execute", "encode"]
    spans = [load["phases_ns"]["load"], *run["phases_ns"].values()]
    for start, end in spans:
        assert before <= start <= end <= after
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert end <= start  # one after the other
    assert (
        abs(
            (run["phases_ns"]["execute"][1] - run["phases_ns"]["execute"][0]) / 1e6
            - run["timings_ms"]["execute"]
        )
        < 0.01
    )


def test_a_run_that_loads_its_block_reports_the_load_too():
    runner = Runner(Executor(cache_size=2, max_capture_bytes=1024))
    reply = runner.executor.handle(
        {"op": "run", "hash": "x", "code": code(SUM), "inputs": {"a": 1, "b": 1}}
    )
    assert list(reply["phases_ns"]) == ["load", "decode", "execute", "encode"]
