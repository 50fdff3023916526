"""Block assembly: what is in scope, how init runs, what self offers, how bad code is reported."""

from __future__ import annotations

import pytest
from conftest import src

from runtime.assembly import BlockCode, load_block
from runtime.errors import BadRequest, BlockCompileError, BlockRuntimeError


def load(**fields):
    return load_block(BlockCode.from_dict(fields))


def test_standard_names_are_in_scope():
    block = load(
        run_function_code=src(
            """
            def run(self):
                import supervision, numpy, cv2 as cv, shapely as shp, requests as req
                import math as m, time as t, json as j, os as o, datetime as dt, typing
                from runtime import entities
                return {
                    "np": np is numpy, "sv": sv is supervision, "cv2": cv2 is cv,
                    "shapely": shapely is shp, "requests": requests is req,
                    "math": math is m, "time": time is t, "json": json is j, "os": os is o,
                    "datetime": datetime is dt.datetime,
                    "typing": [Any, List, Dict, Set, Optional] == [typing.Any, typing.List, typing.Dict, typing.Set, typing.Optional],
                    "Batch": Batch is entities.Batch,
                    "WorkflowImageData": WorkflowImageData is entities.WorkflowImageData,
                    "BlockResult": BlockResult == Dict[str, Any],
                    "debug_traces": debug_traces is entities.debug_traces,
                }
            """
        )
    )
    outputs = block.run({}, {})
    assert outputs == {name: True for name in outputs}
    assert len(outputs) == 15


def test_extra_import_lines_are_in_scope():
    block = load(
        run_function_code="def run(self):\n    return {'v': fractions.Fraction(1, 3) * 3, 'd': OrderedDict(a=1)}\n",
        imports=["import fractions", "from collections import OrderedDict"],
    )
    outputs = block.run({}, {})
    assert outputs["v"] == 1 and list(outputs["d"]) == ["a"]


def test_init_runs_once_per_load_and_its_result_is_init_results():
    block = load(
        run_function_code=src(
            """
            calls = []
            def run(self):
                return {"init": self._init_results, "calls": len(calls)}
            """
        ),
        init_function_code="def init():\n    calls.append(1)\n    return {'model': 'weights'}\n",
    )
    first = block.run({}, {})
    second = block.run({}, {})
    assert first == second == {"init": {"model": "weights"}, "calls": 1}


def test_no_init_gives_empty_init_results():
    block = load(run_function_code="def run(self):\n    return {'init': self._init_results}\n")
    assert block.run({}, {}) == {"init": {}}


def test_init_defined_in_run_code_is_still_called():
    # Roboflow looks init up by name in the module even without init_function_code.
    block = load(
        run_function_code="def init():\n    return 7\ndef run(self):\n    return {'i': self._init_results}\n"
    )
    assert block.run({}, {}) == {"i": 7}


def test_custom_function_names():
    block = load(
        run_function_code="def main(self, x):\n    return {'y': x * self._init_results}\n",
        run_function_name="main",
        init_function_code="def setup():\n    return 3\n",
        init_function_name="setup",
    )
    assert block.run({"x": 2}, {}) == {"y": 6}


def test_self_is_passed_only_to_a_run_whose_first_parameter_is_self():
    # Inference's remote executor rule: its validation block is `def validate_syntax():`.
    assert load(run_function_code="def run():\n    return {'ok': True}\n").run({}, {}) == {
        "ok": True
    }
    assert load(run_function_code="def run(a, b):\n    return {'sum': a + b}\n").run(
        {"a": 1, "b": 2}, {}
    ) == {"sum": 3}
    with_self = load(
        run_function_code="def run(self, a):\n    return {'init': self._init_results, 'a': a}\n"
    )
    assert with_self.run({"a": 1}, {}) == {"init": {}, "a": 1}


def test_workflow_context_is_the_runs_context_and_a_copy():
    block = load(
        run_function_code=src(
            """
            def run(self):
                ctx = self.get_workflow_context()
                ctx["step_name"] = "tampered"
                return {"ctx": self.get_workflow_context()}
            """
        )
    )
    first = block.run({}, {"step_name": "s1", "workflow_execution_id": "e1", "tenant": "acme"})[
        "ctx"
    ]
    assert first == {
        "step_name": "s1",
        "step_selector": None,
        "block_type": None,
        "workflow_execution_id": "e1",
        "tenant": "acme",
    }
    second = block.run(
        {}, {"step_name": "s2", "step_selector": "$steps.s2", "block_type": "custom"}
    )["ctx"]
    assert second == {
        "step_name": "s2",
        "step_selector": "$steps.s2",
        "block_type": "custom",
        "workflow_execution_id": None,
    }


def test_self_attributes_persist_between_runs():
    block = load(
        run_function_code="def run(self):\n    self.n = getattr(self, 'n', 0) + 1\n    return {'n': self.n}\n"
    )
    assert [block.run({}, {})["n"] for _ in range(3)] == [1, 2, 3]


def test_syntax_error_reports_line_and_source():
    with pytest.raises(BlockCompileError) as info:
        load(run_function_code="def run(self):\n    x = 1\n    y = (\n    return {}\n")
    error = info.value
    assert error.source == "run_function_code"
    assert error.line == 3
    assert error.message.startswith("SyntaxError: ")
    assert "> 3 |     y = (" in error.snippet


def test_indentation_error_in_init_code():
    with pytest.raises(BlockCompileError) as info:
        load(
            run_function_code="def run(self):\n    return {}\n",
            init_function_code="def init():\n    a = 1\n      b = 2\n",
        )
    assert info.value.source == "init_function_code"
    assert info.value.line == 3
    assert info.value.message.startswith("IndentationError: ")


def test_missing_run_function_is_named():
    with pytest.raises(BlockCompileError) as info:
        load(run_function_code="def execute(self):\n    return {}\n")
    assert info.value.message == "run_function_code defines no function named 'run'"
    assert info.value.source == "run_function_code"


def test_run_name_bound_to_a_non_callable_is_rejected():
    with pytest.raises(BlockCompileError, match="no function named 'run'"):
        load(run_function_code="run = 5\n")


def test_missing_init_function_is_named_when_init_code_given():
    with pytest.raises(BlockCompileError) as info:
        load(
            run_function_code="def run(self):\n    return {}\n",
            init_function_code="def setup():\n    return 1\n",
        )
    assert info.value.message == "init_function_code defines no function named 'init'"
    assert info.value.source == "init_function_code"


def test_bad_import_line_is_a_compile_error_in_imports():
    with pytest.raises(BlockCompileError) as info:
        load(
            run_function_code="def run(self):\n    return {}\n",
            imports=["import os", "import blockgate_no_such_module"],
        )
    error = info.value
    assert error.source == "imports"
    assert error.line == 2
    assert error.message == "ModuleNotFoundError: No module named 'blockgate_no_such_module'"
    assert "> 2 | import blockgate_no_such_module" in error.snippet


def test_module_level_failure_in_run_code_is_a_compile_error():
    with pytest.raises(BlockCompileError) as info:
        load(run_function_code="import math\nLIMIT = 1 / 0\ndef run(self):\n    return {}\n")
    assert (info.value.source, info.value.line, info.value.function) == (
        "run_function_code",
        2,
        None,
    )
    assert info.value.message == "ZeroDivisionError: division by zero"


def test_init_exception_is_a_runtime_error_naming_init():
    with pytest.raises(BlockRuntimeError) as info:
        load(
            run_function_code="def run(self):\n    return {}\n",
            init_function_code="def init():\n    weights = None\n    return weights['x']\n",
        )
    error = info.value
    assert (error.source, error.line, error.function) == ("init_function_code", 3, "init")
    assert error.message == "TypeError: 'NoneType' object is not subscriptable"


def test_blocks_do_not_share_a_namespace():
    first = load(run_function_code="SHARED = 1\ndef run(self):\n    return {'v': SHARED}\n")
    second = load(run_function_code="def run(self):\n    return {'v': globals().get('SHARED')}\n")
    assert first.run({}, {}) == {"v": 1}
    assert second.run({}, {}) == {"v": None}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "code.run_function_code: required field is missing"),
        ({"run_function_code": 3}, "code.run_function_code: must be a string, got int"),
        (
            {"run_function_code": "x", "imports": "import os"},
            "code.imports: must be a list of strings, got str",
        ),
        (
            {"run_function_code": "x", "imports": ["import os", 4]},
            "code.imports[1]: must be a string, got int",
        ),
        (
            {"run_function_code": "x", "init_function_name": ["init"]},
            "code.init_function_name: must be a string, got list",
        ),
    ],
)
def test_code_fields_are_validated_with_their_path(fields, message):
    with pytest.raises(BadRequest) as info:
        BlockCode.from_dict(fields)
    assert info.value.message == message


def test_null_optional_fields_take_their_defaults():
    parsed = BlockCode.from_dict(
        {
            "run_function_code": "x",
            "run_function_name": None,
            "init_function_code": None,
            "imports": None,
        }
    )
    assert (parsed.run_function_name, parsed.init_function_code, parsed.imports) == (
        "run",
        None,
        (),
    )
