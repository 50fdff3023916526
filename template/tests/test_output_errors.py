"""Outputs a block returns that cannot be encoded are the block's fault, named by path:
OutputTooLarge when they pass the reply limit (found while encoding, before the whole
document is built), BlockRuntimeError naming the output for the rest. Never InternalError."""

from __future__ import annotations

import time
import tracemalloc
from typing import Any

import pytest
from conftest import code

from runtime.executor import Executor

LIMIT = 1 << 20


def run(
    source: str,
    output_format: str = "cbor",
    inputs: dict[str, Any] | None = None,
    *,
    sidecar: bool = True,
    limit: int | None = LIMIT,
) -> dict[str, Any]:
    executor = Executor(
        cache_size=2, max_capture_bytes=4096, sidecar_outputs=sidecar, max_output_bytes=limit
    )
    loaded = executor.handle({"op": "load", "hash": "h", "code": code(source)})
    assert loaded["ok"], loaded
    return executor.handle(
        {
            "op": "run",
            "hash": "h",
            "inputs": inputs or {},
            "context": {},
            "output_format": output_format,
        }
    )


def failure(reply: dict[str, Any]) -> tuple[str, str]:
    assert reply["ok"] is False, reply
    return reply["error"]["type"], reply["error"]["message"]


RAISING_REPR = """
class Bad:
    def __repr__(self):
        raise RuntimeError("no repr")
"""
RAISING_STR = """
class Bad:
    def __str__(self):
        raise RuntimeError("no str")
    def __hash__(self):
        return 1
"""


@pytest.mark.parametrize("output_format", ["cbor", "json", "json-compact", "msgpack-webexec"])
@pytest.mark.parametrize("sidecar", [True, False])
@pytest.mark.parametrize(
    ("source", "path", "words"),
    [
        (
            RAISING_REPR + "def run(self):\n    return {'x': {'y': Bad()}}\n",
            "outputs.x.y",
            "RuntimeError: no repr",
        ),
        (
            RAISING_STR + "def run(self):\n    return {'x': [1, Bad()]}\n",
            "outputs.x[1]",
            "RuntimeError: no str",
        ),
        (
            "class Items(dict):\n    def items(self):\n        raise KeyError('gone')\ndef run(self):\n    return {'x': Items(a=1)}\n",
            "outputs.x",
            "KeyError",
        ),
        (
            "class Many(list):\n    def __iter__(self):\n        raise OSError('no')\nclass Batch(Many):\n    pass\ndef run(self):\n    return {'x': {'y': Batch([1])}}\n",
            "outputs.x.y",
            "OSError: no",
        ),
    ],
)
def test_an_output_the_block_made_unencodable_is_a_block_error_naming_its_path(
    source, path, words, output_format, sidecar
):
    kind, message = failure(run(source, output_format, sidecar=sidecar))
    assert kind == "BlockRuntimeError"
    assert message.startswith(f"{path}: ") and words in message


@pytest.mark.parametrize("output_format", ["json", "msgpack-webexec"])
def test_a_text_key_whose_str_raises_names_the_key(output_format):
    kind, message = failure(
        run(RAISING_STR + "def run(self):\n    return {'x': {Bad(): 1}}\n", output_format)
    )
    assert kind == "BlockRuntimeError"
    assert (
        message.startswith("outputs.x[<Bad object>] (key): ") and "RuntimeError: no str" in message
    )


def test_a_cbor_key_of_no_encodable_type_names_the_key():
    kind, message = failure(
        run(
            "class K:\n    def __repr__(self):\n        return 'K()'\ndef run(self):\n    return {'x': {K(): 1}}\n",
            "cbor",
        )
    )
    assert kind == "BlockRuntimeError"
    assert message.startswith("outputs.x[K()] (key): this K cannot be a map key in CBOR")


@pytest.mark.parametrize("output_format", ["json", "json-compact"])
def test_an_integer_too_long_for_text_is_a_block_error_in_json_and_fine_in_cbor(output_format):
    source = "def run(self, n):\n    return {'x': {'y': n}}\n"
    kind, message = failure(run(source, output_format, {"n": 10**4400}))
    assert kind == "BlockRuntimeError"
    assert (
        message.startswith("outputs.x.y: an integer of more than 4300 digits") and "CBOR" in message
    )
    kind, message = failure(
        run("def run(self):\n    return {'x': {10 ** 4400: 1}}\n", output_format)
    )
    assert message.startswith("outputs.x[<int key>] (key): an integer of more than 4300 digits")
    # 4300 digits exactly is still text.
    assert run(source, output_format, {"n": 10**4300 - 1})["ok"]
    assert run(source, "cbor", {"n": 10**4400})["ok"]


def test_an_integer_msgpack_cannot_carry_is_a_block_error_naming_its_path():
    source = "def run(self, n):\n    return {'x': {'y': [n]}}\n"
    for n in (2**64, -(2**63) - 1, 10**4400):
        kind, message = failure(run(source, "msgpack-webexec", {"n": n}))
        assert kind == "BlockRuntimeError"
        assert message.startswith("outputs.x.y[0]: an integer outside msgpack's range")
    for n in (2**64 - 1, -(2**63)):
        assert run(source, "msgpack-webexec", {"n": n})["ok"]
    # A key is text, whatever its size.
    assert run("def run(self):\n    return {'x': {2 ** 64: 1}}\n", "msgpack-webexec")["ok"]


def test_an_exception_whose_str_raises_is_still_a_block_error():
    source = "class Bad(Exception):\n    def __str__(self):\n        raise RuntimeError('no str')\ndef run(self):\n    raise Bad()\n"
    kind, message = failure(run(source))
    assert kind == "BlockRuntimeError"
    assert message.startswith("Bad")
    assert run(source)["error"]["line"] == 5


@pytest.mark.parametrize("output_format", ["cbor", "json", "json-compact", "msgpack-webexec"])
def test_outputs_past_the_limit_stop_encoding_before_the_document_is_built(output_format):
    size = 64 << 20
    tracemalloc.start()
    try:
        reply = run(f"def run(self):\n    return {{'x': b'x' * {size}}}\n", output_format)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    kind, message = failure(reply)
    assert kind == "OutputTooLarge"
    assert message.startswith(f"outputs.x: the outputs are over the reply limit of {LIMIT} bytes")
    # The block's own bytes, and no copy of them (a CBOR or base64 document would be another 64 MiB+).
    assert peak < size + (8 << 20)


@pytest.mark.parametrize("output_format", ["cbor", "json", "json-compact", "msgpack-webexec"])
def test_a_huge_map_or_array_is_refused_early(output_format):
    started = time.perf_counter()
    kind, message = failure(
        run(
            "def run(self):\n    return {'x': {str(i): i for i in range(300_000)}}\n", output_format
        )
    )
    assert kind == "OutputTooLarge" and message.startswith("outputs.x")
    kind, message = failure(
        run("def run(self):\n    return {'x': np.zeros((8000, 8000), np.uint8)}\n", output_format)
    )
    assert kind == "OutputTooLarge" and message.startswith("outputs.x: ")
    assert time.perf_counter() - started < 5


def test_outputs_within_the_limit_are_untouched():
    reply = run(
        "def run(self):\n    return {'x': b'x' * 500_000, 'y': np.zeros(1000), 'z': {str(i): i for i in range(1000)}}\n",
        "json",
    )
    assert reply["ok"], reply
    assert run("def run(self):\n    return {'x': b'x' * 500_000}\n", "cbor", limit=None)["ok"]
