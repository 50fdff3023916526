"""stdout/stderr capture: per run, capped, restored even when the block fails."""

from __future__ import annotations

import sys
import tracemalloc

from conftest import code

from runtime.capture import CappedTextWriter, capture_output
from runtime.executor import Executor

MARKER = "[blockgate: output truncated after {} bytes]"


def test_print_before_raising_shows_in_the_error(runner):
    reply = runner.load_and_run(
        code(
            """
            import sys
            def run(self):
                print("step 1 done")
                print("warning: odd input", file=sys.stderr)
                raise ValueError("boom")
            """
        )
    )
    assert reply["ok"] is False
    assert reply["error"]["stdout"] == "step 1 done\n"
    assert reply["error"]["stderr"] == "warning: odd input\n"
    assert not isinstance(sys.stdout, CappedTextWriter)


def test_init_prints_are_captured_in_the_load_reply(runner):
    reply = runner.load(
        code(
            "def run(self):\n    return {}\n",
            init_function_code="def init():\n    print('loading weights')\n",
        )
    )
    assert reply["ok"] and reply["stdout"] == "loading weights\n"


def test_fifty_megabytes_are_capped_with_a_marker():
    limit = 100_000
    executor = Executor(cache_size=1, max_capture_bytes=limit)
    loaded = executor.handle(
        {
            "op": "load",
            "hash": "h",
            "code": code(
                'def run(self):\n    line = "x" * 1023\n    for _ in range(51_200):\n        print(line)\n    return {"done": True}\n'
            ),
        }
    )
    assert loaded["ok"]
    reply = executor.handle({"op": "run", "hash": "h", "inputs": {}, "context": {}})
    assert reply["ok"] and reply["outputs"] == {"done": True}
    assert reply["stdout_truncated"] is True and reply["stderr_truncated"] is False
    marker = "\n" + MARKER.format(limit)
    assert reply["stdout"].endswith(marker)
    body = reply["stdout"][: -len(marker)]
    assert len(body.encode()) == limit
    assert set(body) == {"x", "\n"}


def test_memory_stays_bounded_past_the_cap():
    writer = CappedTextWriter(10_000)
    line = "y" * 1023 + "\n"
    tracemalloc.start()
    try:
        for _ in range(20_000):  # ~20 MB
            writer.write(line)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 200_000
    assert writer.truncated


def test_cap_counts_utf8_bytes_and_never_splits_a_character():
    writer = CappedTextWriter(5)
    writer.write("aé")  # 3 bytes
    writer.write("€€")  # 6 bytes: only what fits whole is kept
    assert writer.truncated
    assert writer.getvalue() == "aé\n" + MARKER.format(5)


def test_output_under_the_cap_is_not_marked():
    writer = CappedTextWriter(10)
    writer.write("0123456789")
    assert not writer.truncated and writer.getvalue() == "0123456789"


def test_streams_are_restored_after_an_error():
    before = sys.stdout, sys.stderr
    try:
        with capture_output(100) as captured:
            print("inside")
            raise RuntimeError("escape")
    except RuntimeError:
        pass
    assert (sys.stdout, sys.stderr) == before
    assert captured.stdout == "inside\n"


def test_bytes_written_to_the_buffer_are_captured(runner):
    reply = runner.load_and_run(
        code("import sys\ndef run(self):\n    sys.stdout.buffer.write(b'raw\\n')\n    return {}\n")
    )
    assert reply["ok"] and reply["stdout"] == "raw\n"


def test_each_run_has_its_own_capture(runner):
    loaded = runner.load(code("def run(self, n):\n    print(n)\n    return {}\n"))
    first = runner.run(loaded["hash"], {"n": 1})
    second = runner.run(loaded["hash"], {"n": 2})
    assert (first["stdout"], second["stdout"]) == ("1\n", "2\n")
