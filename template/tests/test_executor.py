"""The executor: ops, the LRU block cache, and replies that never take the worker down."""

from __future__ import annotations

import json
import math

import cbor2
import cv2
import msgpack
import numpy as np
import pytest
from conftest import Runner, code

import runtime
from runtime.executor import Executor

SUM = "def run(self, a, b):\n    return {'sum': a + b}\n"


def test_sum_of_floats(runner):
    reply = runner.load_and_run(code(SUM), {"a": 10.5, "b": 20.3})
    assert reply["ok"] is True
    assert reply["outputs"] == {"sum": 30.8}
    assert reply["stdout"] == "" and reply["stderr"] == ""
    assert reply["stdout_truncated"] is False and reply["stderr_truncated"] is False
    assert reply["debug_traces"] == []
    assert (
        set(reply["timings_ms"]) == {"decode", "execute", "encode"}
        and min(reply["timings_ms"].values()) >= 0
    )


def test_ping(runner):
    assert runner.executor.handle({"op": "ping"}) == {"ok": True, "version": runtime.__version__}


def test_load_reply_shape(runner):
    reply = runner.load(code(SUM), "abc")
    assert reply["ok"] is True
    assert (reply["hash"], reply["evicted"], reply["stdout"], reply["stderr"]) == (
        "abc",
        [],
        "",
        "",
    )
    assert reply["timings_ms"]["load"] >= 0


def test_lru_eviction_reports_evicted_hashes():
    runner = Runner(Executor(cache_size=2, max_capture_bytes=1024))
    assert runner.load(code(SUM), "a")["evicted"] == []
    assert runner.load(code(SUM), "b")["evicted"] == []
    assert runner.run("a", {"a": 1, "b": 1})["ok"]  # touching "a" makes "b" the oldest
    assert runner.load(code(SUM), "c")["evicted"] == ["b"]
    assert runner.executor.loaded_hashes == ["a", "c"]
    gone = runner.run("b", {"a": 1, "b": 1})
    assert gone["ok"] is False and gone["error"]["type"] == "UnknownBlock"


def test_reloading_a_loaded_hash_is_a_no_op():
    runner = Runner(Executor(cache_size=2, max_capture_bytes=1024))
    block = code(
        "def run(self):\n    return {}\n", init_function_code="def init():\n    print('init ran')\n"
    )
    assert runner.load(block, "a")["stdout"] == "init ran\n"
    runner.load(code(SUM), "b")
    again = runner.load(block, "a")
    assert again["ok"] and again["evicted"] == [] and again["stdout"] == ""
    # The reload refreshed "a", so the next load evicts "b".
    assert runner.load(code(SUM), "c")["evicted"] == ["b"]


def test_unknown_hash(runner):
    reply = runner.run("never-loaded")
    assert reply["ok"] is False
    assert reply["error"]["type"] == "UnknownBlock"
    assert "never-loaded" in reply["error"]["message"]


def test_failed_load_caches_nothing(runner):
    reply = runner.load(code("def run(self):\n    return (\n"), "broken")
    assert reply["ok"] is False and reply["error"]["type"] == "BlockCompileError"
    assert runner.run("broken")["error"]["type"] == "UnknownBlock"


def test_sys_exit_in_a_block_does_not_end_the_executor(runner):
    reply = runner.load_and_run(
        code("import sys\ndef run(self):\n    print('bye')\n    sys.exit(3)\n")
    )
    assert reply["ok"] is False
    assert reply["error"]["type"] == "BlockRuntimeError"
    assert reply["error"]["message"] == "SystemExit: 3"
    assert reply["error"]["stdout"] == "bye\n"
    assert runner.executor.handle({"op": "ping"})["ok"] is True
    assert runner.load_and_run(code(SUM), {"a": 1, "b": 2})["outputs"] == {"sum": 3}


def test_sys_exit_in_init_does_not_end_the_executor(runner):
    reply = runner.load(
        code(
            "def run(self):\n    return {}\n",
            init_function_code="import sys\ndef init():\n    sys.exit(0)\n",
        )
    )
    assert reply["ok"] is False and reply["error"]["message"] == "SystemExit: 0"
    assert reply["error"]["function"] == "init"


def test_returning_an_int_is_an_error(runner):
    reply = runner.load_and_run(code("def run(self):\n    return 5\n"))
    assert reply["ok"] is False
    assert reply["error"]["type"] == "BlockRuntimeError"
    assert reply["error"]["message"] == "run must return a dict of outputs, got int"
    assert reply["error"]["function"] == "run"


def test_batch_blocks_may_return_a_list_of_dicts(runner):
    reply = runner.load_and_run(
        code("def run(self, xs):\n    return [{'y': x * 2} for x in xs]\n"), {"xs": [1, 2]}
    )
    assert reply["outputs"] == [{"y": 2}, {"y": 4}]


def test_a_list_with_a_non_dict_is_an_error(runner):
    reply = runner.load_and_run(code("def run(self):\n    return [{'y': 1}, 2]\n"))
    assert (
        reply["error"]["message"] == "run must return a dict of outputs, got a list containing int"
    )


def test_context_reaches_the_block_and_traces_carry_the_step(runner):
    reply = runner.load_and_run(
        code(
            "def run(self):\n    debug_traces.append('hello')\n    return {'ctx': self.get_workflow_context()['step_name']}\n"
        ),
        context={"step_name": "detect"},
    )
    assert reply["outputs"] == {"ctx": "detect"}
    assert reply["debug_traces"] == [{"step": "detect", "value": "hello"}]


def test_traces_are_per_run(runner):
    loaded = runner.load(code("def run(self, v):\n    debug_traces.append(v)\n    return {}\n"))
    runner.run(loaded["hash"], {"v": 1})
    assert runner.run(loaded["hash"], {"v": 2})["debug_traces"] == [{"step": None, "value": 2}]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ([1, 2], "message: must be a map, got list"),
        ({}, "op: required field is missing"),
        ({"op": "explode"}, "op: unknown op 'explode' (expected one of load, run, ping)"),
        ({"op": "load", "code": {"run_function_code": "x"}}, "hash: required field is missing"),
        (
            {"op": "load", "hash": 7, "code": {"run_function_code": "x"}},
            "hash: must be a string, got int",
        ),
        ({"op": "load", "hash": "h"}, "code: must be a map, got NoneType"),
        (
            {"op": "load", "hash": "h", "code": {}},
            "code.run_function_code: required field is missing",
        ),
        ({"op": "run", "hash": "h", "inputs": [1]}, "inputs: must be a map, got list"),
        ({"op": "run", "hash": "h", "inputs": {1: 2}}, "inputs: names must be strings, got 1"),
        ({"op": "run", "hash": "h", "context": "ctx"}, "context: must be a map, got str"),
    ],
)
def test_malformed_messages_are_bad_requests_naming_the_field(runner, message, expected):
    reply = runner.executor.handle(message)
    assert reply["ok"] is False
    assert reply["error"]["type"] == "BadRequest"
    assert reply["error"]["message"] == expected


def test_error_reply_shape_is_stable(runner):
    error = runner.run("nope")["error"]
    assert set(error) == {
        "type",
        "message",
        "line",
        "function",
        "source",
        "snippet",
        "traceback",
        "exception",
        "stdout",
        "stderr",
        "stdout_truncated",
        "stderr_truncated",
    }


def test_executor_rejects_a_zero_cache():
    with pytest.raises(ValueError, match="cache_size"):
        Executor(cache_size=0, max_capture_bytes=10)


def test_a_run_that_carries_its_code_loads_the_block_in_the_same_round_trip():
    runner = Runner(Executor(cache_size=1, max_capture_bytes=1024))
    runner.load(code(SUM), "old")
    block = code(SUM, init_function_code="def init():\n    print('init ran')\n")
    message = {"op": "run", "hash": "new", "code": block, "inputs": {"a": 1, "b": 2}}
    reply = runner.executor.handle(message)
    assert reply["ok"] and reply["outputs"] == {"sum": 3}
    assert reply["loaded"]["evicted"] == ["old"] and reply["loaded"]["load_ms"] >= 0
    assert reply["stdout"] == "init ran\n"
    # Loaded now: the same message runs without loading again.
    again = runner.executor.handle(message)
    assert again["ok"] and "loaded" not in again and again["stdout"] == ""


def test_a_run_that_carries_broken_code_answers_the_compile_error():
    runner = Runner(Executor(cache_size=2, max_capture_bytes=1024))
    reply = runner.executor.handle(
        {"op": "run", "hash": "x", "code": code("def run(self):\n    return (\n"), "inputs": {}}
    )
    assert reply["ok"] is False and reply["error"]["type"] == "BlockCompileError"
    assert runner.executor.loaded_hashes == []


@pytest.mark.parametrize(
    ("output_format", "document_format"),
    [("cbor", "cbor"), ("json", "json"), ("json-webexec", "json"), ("msgpack-webexec", "msgpack")],
)
def test_a_run_answers_a_document_in_its_output_formats_form(output_format, document_format):
    runner = Runner(Executor(cache_size=2, max_capture_bytes=1024, sidecar_outputs=True))
    loaded = runner.load(code("def run(self, a):\n    return {'half': a / 2, 'whole': a // 2}\n"))
    reply = runner.executor.handle(
        {"op": "run", "hash": loaded["hash"], "inputs": {"a": 4}, "output_format": output_format}
    )
    document = reply["outputs_document"]
    assert document["format"] == document_format
    read = {"cbor": cbor2.loads, "json": json.loads, "msgpack": msgpack.unpackb}[document_format]
    outputs = read(b"".join(document["pieces"]))
    assert outputs == {"half": 2.0, "whole": 2} and type(outputs["half"]) is float


def test_a_msgpack_webexec_run_answers_what_inferences_websocket_client_reads():
    runner = Runner(Executor(cache_size=2, max_capture_bytes=1024, sidecar_outputs=True))
    loaded = runner.load(
        code(
            """
            import datetime
            def run(self, raw, image):
                return [{'raw': raw, 'nan': float('nan'), 'keys': {1: 'one'},
                         'when': datetime.datetime(2024, 5, 1), 'size': image.numpy_image.shape}]
            """
        )
    )
    png = cv2.imencode(".png", np.zeros((1, 1), np.uint8))[1].tobytes()
    reply = runner.executor.handle(
        {
            "op": "run",
            "hash": loaded["hash"],
            "inputs": {
                "raw": {"_type": "bytes", "value": b"\x00\xff"},
                "image": {"_type": "workflow_image", "_jpeg_bytes": png, "parent_id": "p"},
            },
            "output_format": "msgpack-webexec",
        }
    )
    assert reply["ok"], reply
    [piece] = reply["outputs_document"]["pieces"]
    [outputs] = msgpack.unpackb(piece, raw=False, strict_map_key=True)
    nan = outputs.pop("nan")
    assert isinstance(nan, float) and math.isnan(nan)  # a plain float, as json-webexec writes it
    assert outputs == {
        "raw": b"\x00\xff",
        "keys": {"1": "one"},
        "when": {"_type": "datetime", "value": "2024-05-01T00:00:00+00:00"},
        "size": [1, 1],
    }
