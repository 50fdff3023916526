"""Shared helpers: the runtime package is importable from template/, and blocks are loaded by code."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

TEMPLATE_DIR = Path(__file__).resolve().parent.parent
PROJECT_ROOT = TEMPLATE_DIR.parent  # where the `serializers` package lives
for path in (TEMPLATE_DIR, PROJECT_ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from runtime.executor import Executor  # noqa: E402


def src(text: str) -> str:
    """Dedented source, so tests can indent block code naturally."""
    return textwrap.dedent(text).lstrip("\n")


def code(run: str, **fields: Any) -> dict[str, Any]:
    """A ``code`` map with ``run`` (and any multi-line field) dedented."""
    result: dict[str, Any] = {"run_function_code": src(run)}
    for name, value in fields.items():
        result[name] = src(value) if isinstance(value, str) else value
    return result


class Runner:
    """Drives an Executor the way the worker does, one message at a time."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self._counter = 0

    def load(self, code_map: dict[str, Any], block_hash: str | None = None) -> dict[str, Any]:
        if block_hash is None:
            self._counter += 1
            block_hash = f"hash-{self._counter}"
        return self.executor.handle({"op": "load", "hash": block_hash, "code": code_map})

    def run(
        self,
        block_hash: str,
        inputs: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return self.executor.handle(
            {"op": "run", "hash": block_hash, "inputs": inputs or {}, "context": context or {}}
        )

    def load_and_run(
        self,
        code_map: dict[str, Any],
        inputs: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        loaded = self.load(code_map)
        assert loaded["ok"], loaded
        return self.run(loaded["hash"], inputs, context)


@pytest.fixture
def runner() -> Runner:
    return Runner(Executor(cache_size=8, max_capture_bytes=64 * 1024))
