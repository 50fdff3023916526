"""runtime.protocol: every message the runtime builds has the shape its TypedDict declares, and
every entry point takes its defaults from protocol.json (src/runtime-template.ts reads the same)."""

from __future__ import annotations

import io
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import pytest
from conftest import TEMPLATE_DIR, Runner, code

from runtime import interpreter, protocol, server, worker, zygote
from runtime.executor import BUFFERS_KEY, Executor
from runtime.framing import encode_frame, read_frame
from runtime.worker import encode_reply, serve
from serializers.registry import OUTPUT_MODES


def mismatches(value: Any, hint: Any, path: str = "") -> list[str]:
    """Where ``value`` does not fit the type ``hint`` (TypedDicts: no key missing, none undeclared)."""
    where = path or "(the message)"
    if hint is Any:
        return []
    if typing.is_typeddict(hint):
        if not isinstance(value, dict):
            return [f"{where}: a map expected, got {type(value).__name__}"]
        hints = typing.get_type_hints(hint)
        problems = [
            f"{path}.{key}: missing".lstrip(".")
            for key in hint.__required_keys__
            if key not in value
        ]
        problems += [f"{path}.{key}: not declared".lstrip(".") for key in value if key not in hints]
        for key, item in value.items():
            if key in hints:
                problems += mismatches(item, hints[key], f"{path}.{key}".lstrip("."))
        return problems
    origin = typing.get_origin(hint)
    if origin is Literal:
        return (
            []
            if value in typing.get_args(hint)
            else [f"{where}: {value!r} is not one of {typing.get_args(hint)}"]
        )
    if origin in (Union, types.UnionType):
        options = [mismatches(value, option, path) for option in typing.get_args(hint)]
        return [] if any(not found for found in options) else min(options, key=len)
    if origin is list:
        if not isinstance(value, list):
            return [f"{where}: a list expected, got {type(value).__name__}"]
        (item_hint,) = typing.get_args(hint)
        return [
            problem
            for index, item in enumerate(value)
            for problem in mismatches(item, item_hint, f"{path}[{index}]")
        ]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{where}: a map expected, got {type(value).__name__}"]
        key_hint, item_hint = typing.get_args(hint)
        return [
            problem
            for key, item in value.items()
            for problem in mismatches(key, key_hint, path)
            + mismatches(item, item_hint, f"{path}.{key}")
        ]
    if hint is float:
        hint = (int, float)
    if hint is int and isinstance(value, bool):
        return [f"{where}: an int expected, got a bool"]
    return (
        [] if isinstance(value, hint) else [f"{where}: {hint} expected, got {type(value).__name__}"]
    )


def assert_is(value: Any, hint: Any) -> None:
    assert mismatches(value, hint) == [], value


SUM = code("def run(self, a, b):\n    print('adding')\n    return {'sum': a + b}\n")


def test_the_checker_names_what_does_not_fit():
    assert mismatches({"ok": True, "version": 3}, protocol.PingReply) == [
        "version: <class 'str'> expected, got int"
    ]
    assert mismatches({"ok": True, "version": "1", "extra": 1}, protocol.PingReply) == [
        "extra: not declared"
    ]
    assert mismatches({"ok": True}, protocol.PingReply) == ["version: missing"]


def test_ping_load_and_run_replies_have_their_declared_shape():
    runner = Runner(Executor(cache_size=2, max_capture_bytes=1024))
    assert_is(runner.executor.handle({"op": "ping"}), protocol.PingReply)
    loaded = runner.load(SUM, "sum")
    assert_is(loaded, protocol.LoadReply)
    assert "phases_ns" in loaded
    assert_is(runner.load(SUM, "sum"), protocol.LoadReply)  # already loaded: nothing ran
    assert_is(runner.run("sum", {"a": 1, "b": 2}), protocol.RunReply)


def test_a_run_that_loads_its_block_first_has_its_declared_shape():
    executor = Executor(cache_size=1, max_capture_bytes=1024, sidecar_outputs=True)
    executor.handle({"op": "load", "hash": "old", "code": SUM})
    reply = executor.handle(
        {
            "op": "run",
            "hash": "new",
            "code": SUM,
            "inputs": {"a": 1, "b": 2},
            "context": {},
            "cache_size": 1,
        }
    )
    assert_is(reply, protocol.RunReply)
    assert reply["loaded"]["evicted"] == ["old"]
    assert set(reply["phases_ns"]) == {"load", "decode", "execute", "encode"}


@pytest.mark.parametrize("output_format", OUTPUT_MODES)
def test_a_run_in_each_output_format_has_its_declared_shape(output_format):
    executor = Executor(cache_size=2, max_capture_bytes=1024, sidecar_outputs=True)
    executor.handle({"op": "load", "hash": "sum", "code": SUM})
    request = {
        "op": "run",
        "hash": "sum",
        "inputs": {"a": 1, "b": 2},
        "context": {},
        "output_format": output_format,
    }
    assert_is(request, protocol.RunRequest)
    assert_is(executor.handle(request), protocol.RunReply)


@pytest.mark.parametrize(
    "message",
    [
        {"op": "nope"},
        {"op": "run", "hash": "never-loaded", "inputs": {}, "context": {}},
        {"op": "load", "hash": "broken", "code": code("def run(self:\n")},
        {
            "op": "run",
            "hash": "raises",
            "code": code("def run(self):\n    raise ValueError('boom')\n"),
        },
        "not a map",
    ],
)
def test_failures_have_their_declared_shape(message):
    reply = Executor(cache_size=2, max_capture_bytes=1024).handle(message)
    assert reply["ok"] is False
    assert_is(reply, protocol.FailureReply)


def test_what_a_worker_frames_is_what_the_protocol_declares():
    # Large outputs ride in the sidecar; the reply's private keys never reach the wire.
    block = code("def run(self, n):\n    return {'a': np.zeros(n, dtype=np.uint8), 'n': n}\n")
    executor = Executor(cache_size=2, max_capture_bytes=1024, sidecar_outputs=True)
    executor.handle({"op": "load", "hash": "big", "code": block})
    reply = executor.handle({"op": "run", "hash": "big", "inputs": {"n": 1 << 16}, "context": {}})
    assert_is(reply, protocol.RunReply)
    assert BUFFERS_KEY in reply
    frame = read_frame(
        io.BytesIO(b"".join(bytes(part) for part in encode_reply(reply, 1 << 20))), 1 << 20
    )
    assert frame is not None
    assert_is(frame.message, protocol.RunReply)
    assert not [key for key in frame.message if key.startswith("_")]


def test_the_serve_loop_greets_and_reports_what_a_run_left_behind():
    leaves_a_thread = code(
        "import threading, time\ndef run(self):\n    threading.Thread(target=time.sleep, args=(5,), daemon=True).start()\n    return {}\n"
    )
    frames = encode_frame({"op": "load", "hash": "t", "code": leaves_a_thread}) + encode_frame(
        {"op": "run", "hash": "t", "inputs": {}, "context": {}}
    )
    out = io.BytesIO()
    assert (
        serve(io.BytesIO(frames), out, Executor(cache_size=2, max_capture_bytes=1024), 1 << 20) == 0
    )
    out.seek(0)
    ready, loaded, ran = (frame.message for frame in iter(lambda: read_frame(out, 1 << 20), None))
    assert_is(ready, protocol.WorkerReady)
    assert_is(loaded, protocol.LoadReply)
    assert_is(ran, protocol.RunReply)
    assert ran["retire"] == "the block left a thread running"


def test_the_zygote_and_its_workers_say_what_the_protocol_declares(monkeypatch):
    sent: list[Any] = []
    monkeypatch.setattr(zygote, "_send", lambda out, message: sent.append(message))
    args = zygote.parse_args(["--socket", "/nowhere", "--no-isolation"])
    keeper = zygote.Zygote(args, io.BytesIO())
    keeper.holders[12345] = "w1"
    keeper.by_id["w1"] = 12345
    statuses = iter([(12345, 9), (0, 0)])  # the holder of w1, killed by SIGKILL; then no more
    monkeypatch.setattr(zygote.os, "waitpid", lambda pid, options: next(statuses))
    keeper.reap()
    assert_is(sent[-1], protocol.Exited)
    assert sent[-1]["signal"] == 9
    assert_is(protocol.Spawned(op="spawned", id="w1", pid=7, host_pid=None), protocol.Spawned)
    assert_is(
        protocol.WorkerHello(op="hello", id="w1", token="t", pid=1, host_pid=4242),
        protocol.WorkerHello,
    )


# --- the values both sides read from protocol.json ------------------------------------------


def test_every_entry_point_defaults_to_the_shared_values():
    shared = json.loads((Path(TEMPLATE_DIR) / "runtime" / "protocol.json").read_text())
    for entry in (worker, server):
        args = entry.parse_args([])
        assert args.block_cache_size == shared["default_block_cache_size"]
        assert args.max_frame_bytes == shared["default_max_frame_bytes"]
        assert args.max_capture_bytes == shared["default_max_capture_bytes"]
    args = zygote.parse_args(["--socket", "/nowhere"])
    assert (args.block_cache_size, args.max_frame_bytes, args.max_capture_bytes) == (
        shared["default_block_cache_size"],
        shared["default_max_frame_bytes"],
        shared["default_max_capture_bytes"],
    )
    assert server.parse_args([]).port == shared["runtime_port"]
    assert interpreter.run_frame_file.__defaults__ == (shared["default_max_frame_bytes"],)
    assert protocol.FRAME_CONTENT_TYPE == shared["frame_content_type"]
    assert protocol.ZYGOTE_CONTROL_FRAME_BYTES == shared["zygote_control_frame_bytes"]


def test_a_load_may_raise_the_cache_size_only_up_to_the_shared_cap():
    runner = Executor(cache_size=1, max_capture_bytes=1024)
    cap = protocol.MAX_BLOCK_CACHE_SIZE
    runner.handle({"op": "load", "hash": "a", "code": SUM, "cache_size": cap + 1})
    assert runner.handle({"op": "load", "hash": "b", "code": SUM})["evicted"] == ["a"]
    runner.handle({"op": "load", "hash": "c", "code": SUM, "cache_size": cap})
    assert runner.handle({"op": "load", "hash": "d", "code": SUM})["evicted"] == []
