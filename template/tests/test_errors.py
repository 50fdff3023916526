"""Errors point at the user's own code: line, function, snippet and a trimmed traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import code

import runtime
from runtime.errors import BlockRuntimeError, exception_message, format_snippet

RUNTIME_DIR = str(Path(runtime.__file__).resolve().parent)

BOOM = 'def run(self, a, b):\n    x = a + b\n    raise ValueError("boom")\n'


def test_raise_in_run_is_located_in_user_code(runner):
    reply = runner.load_and_run(code(BOOM), {"a": 1, "b": 2})
    assert reply["ok"] is False
    error = reply["error"]
    assert error["type"] == "BlockRuntimeError"
    assert error["message"] == "ValueError: boom"
    assert (error["line"], error["function"], error["source"]) == (3, "run", "run_function_code")
    assert error["snippet"] == (
        '  1 | def run(self, a, b):\n  2 |     x = a + b\n> 3 |     raise ValueError("boom")'
    )
    tb = error["traceback"]
    assert tb.startswith("Traceback (most recent call last):\n")
    assert '<run_function_code>", line 3, in run' in tb
    assert 'raise ValueError("boom")' in tb  # source lines come from linecache
    assert tb.rstrip().endswith("ValueError: boom")
    assert RUNTIME_DIR not in tb and "runtime/" not in tb


def test_error_in_helper_names_the_helper(runner):
    reply = runner.load_and_run(
        code(
            """
            def scale(values, factor):
                total = sum(values)
                return total / factor

            def run(self, values):
                return {"scaled": scale(values, 0)}
            """
        ),
        {"values": [1, 2]},
    )
    error = reply["error"]
    assert (error["line"], error["function"]) == (3, "scale")
    assert error["message"] == "ZeroDivisionError: division by zero"
    tb = error["traceback"]
    # Both user frames appear, outermost first.
    assert tb.index("line 6, in run") < tb.index("line 3, in scale")


def test_error_in_named_helper_function(runner):
    reply = runner.load_and_run(
        code(
            """
            def check(x):
                if x < 0:
                    raise ValueError(f"negative: {x}")
                return x

            def run(self, x):
                return {"x": check(x)}
            """
        ),
        {"x": -1},
    )
    error = reply["error"]
    assert (error["line"], error["function"], error["message"]) == (
        3,
        "check",
        "ValueError: negative: -1",
    )
    assert "> 3 |         raise ValueError" in error["snippet"]


def test_library_frames_below_user_code_are_kept(runner):
    reply = runner.load_and_run(
        code("def run(self, s):\n    return {'v': json.loads(s)}\n"), {"s": "{oops"}
    )
    error = reply["error"]
    # The innermost *user* frame decides the line, even though json's frames are deeper.
    assert (error["line"], error["function"]) == (2, "run")
    assert error["message"].startswith("JSONDecodeError: ")
    tb = error["traceback"]
    assert tb.index("<run_function_code>") < tb.index("json/decoder.py")
    assert RUNTIME_DIR not in tb


def test_error_in_init_code(runner):
    reply = runner.load(
        code(
            "def run(self):\n    return {}\n",
            init_function_code="def init():\n    raise RuntimeError('no model')\n",
        )
    )
    error = reply["error"]
    assert error["type"] == "BlockRuntimeError"
    assert (error["source"], error["function"], error["line"]) == ("init_function_code", "init", 2)
    assert error["message"] == "RuntimeError: no model"
    assert '<init_function_code>", line 2, in init' in error["traceback"]


def test_wrong_inputs_have_no_user_line(runner):
    reply = runner.load_and_run(code("def run(self, a):\n    return {}\n"), {"a": 1, "b": 2})
    error = reply["error"]
    assert error["message"] == "TypeError: run() got an unexpected keyword argument 'b'"
    assert error["line"] is None and error["snippet"] is None
    assert RUNTIME_DIR not in error["traceback"]


def test_chained_exception_keeps_its_cause(runner):
    reply = runner.load_and_run(
        code(
            """
            def run(self, d):
                try:
                    return {"v": d["missing"]}
                except KeyError as e:
                    raise LookupError("input d has no 'missing'") from e
            """
        ),
        {"d": {}},
    )
    error = reply["error"]
    assert (error["line"], error["message"]) == (5, "LookupError: input d has no 'missing'")
    assert "KeyError: 'missing'" in error["traceback"]
    assert "direct cause" in error["traceback"]


def test_snippet_window_and_number_width():
    source = "\n".join(f"line{i}" for i in range(1, 13))
    assert format_snippet(source, 10) == (
        "   7 | line7\n   8 | line8\n   9 | line9\n> 10 | line10\n  11 | line11\n  12 | line12"
    )


def test_snippet_past_the_end_marks_nothing_but_shows_the_tail():
    assert format_snippet("a\nb", 3) == "  1 | a\n  2 | b"


def test_exception_message_forms():
    assert exception_message(ValueError("boom")) == "ValueError: boom"
    assert exception_message(KeyError("k")) == "KeyError: 'k'"
    assert exception_message(SystemExit()) == "SystemExit"


def test_the_exception_is_named_apart_from_its_text(runner):
    reply = runner.load_and_run(code("def run(self):\n    x = 1\n    raise KeyError('k')\n"))
    assert reply["error"]["message"] == "KeyError: 'k'"
    assert reply["error"]["exception"] == {"type": "KeyError", "message": "'k'"}
    bad = runner.load(code("def run(self):\n    return (\n"))
    assert bad["error"]["exception"] == {"type": "SyntaxError", "message": "'(' was never closed"}


def test_to_dict_has_every_field():
    error = BlockRuntimeError("ValueError: x", line=2, function="run")
    assert error.to_dict() == {
        "type": "BlockRuntimeError",
        "message": "ValueError: x",
        "line": 2,
        "function": "run",
        "source": None,
        "snippet": None,
        "traceback": None,
        "exception": None,
    }


@pytest.mark.parametrize("exc", ["SystemExit(2)", "KeyboardInterrupt()", "GeneratorExit()"])
def test_base_exceptions_from_a_block_become_errors(runner, exc):
    reply = runner.load_and_run(code(f"def run(self):\n    raise {exc}\n"))
    assert reply["ok"] is False
    assert reply["error"]["message"].startswith(exc.split("(")[0])
    assert reply["error"]["line"] == 2


def test_traceback_quotes_the_failing_blocks_source_when_several_are_loaded(runner):
    # All blocks compile under the same pseudo filenames; the run must quote its own code.
    failing = runner.load(code("def run(self):\n    raise ValueError('from A')\n"))
    runner.load(code("def run(self):\n    unrelated = 'line two of B'\n    return {}\n"))
    error = runner.run(failing["hash"])["error"]
    assert "raise ValueError('from A')" in error["traceback"]
    assert "line two of B" not in error["traceback"]
