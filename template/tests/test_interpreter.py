"""Code-interpreter mode: frames through files against one Executor that outlives each call."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import TEMPLATE_DIR, code
from test_worker import with_outputs

from runtime import interpreter
from runtime.framing import encode_frame, read_frame

REQUIREMENTS = TEMPLATE_DIR / "requirements.txt"


def exchange(tmp_path: Path, message: dict[str, Any], name: str = "call") -> dict[str, Any]:
    in_path, out_path = tmp_path / f"{name}.in", tmp_path / f"{name}.out"
    in_path.write_bytes(encode_frame(message))
    interpreter.run_frame_file(str(in_path), str(out_path))
    stream = io.BytesIO(out_path.read_bytes())
    frame = read_frame(stream, 1 << 30)
    assert frame is not None and stream.read() == b"", "exactly one reply frame"
    return with_outputs(frame)


def test_a_block_loaded_once_serves_later_runs(tmp_path, capfd):
    block = code("def run(self, a):\n    print('ran')\n    return {'double': a * 2}\n")
    loaded = exchange(tmp_path, {"op": "load", "hash": "interp-double", "code": block}, "load")
    assert loaded["ok"] and loaded["hash"] == "interp-double"
    first = exchange(
        tmp_path, {"op": "run", "hash": "interp-double", "inputs": {"a": 21}, "context": {}}, "run1"
    )
    second = exchange(
        tmp_path, {"op": "run", "hash": "interp-double", "inputs": {"a": 5}, "context": {}}, "run2"
    )
    assert first["outputs"] == {"double": 42} and first["stdout"] == "ran\n"
    assert second["outputs"] == {"double": 10}
    # Loading it again finds it already there: no second compile.
    again = exchange(tmp_path, {"op": "load", "hash": "interp-double", "code": block}, "load2")
    assert again["ok"] and again["timings_ms"] == {"load": 0.0}
    assert capfd.readouterr().out == "", "the kernel's stdout is not the channel"


def test_a_user_error_is_a_reply_not_an_exception(tmp_path):
    block = code("def run(self):\n    raise RuntimeError('nope')\n")
    assert exchange(tmp_path, {"op": "load", "hash": "interp-raise", "code": block})["ok"]
    reply = exchange(tmp_path, {"op": "run", "hash": "interp-raise", "inputs": {}, "context": {}})
    assert (
        reply["ok"] is False
        and reply["error"]["type"] == "BlockRuntimeError"
        and reply["error"]["line"] == 2
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "frame: the file is empty"),
        (encode_frame({"op": "ping"}) + b"x", "frame: bytes follow the frame"),
        (b"\x00\x00\x00\x05\x00\x00\x00\x01\xff", "frame: invalid CBOR"),
    ],
)
def test_a_malformed_frame_file_gets_a_bad_request_reply(tmp_path, content, message):
    (tmp_path / "in").write_bytes(content)
    interpreter.run_frame_file(str(tmp_path / "in"), str(tmp_path / "out"))
    reply = read_frame(io.BytesIO((tmp_path / "out").read_bytes()), 1 << 20).message
    assert reply["ok"] is False and reply["error"]["type"] == "BadRequest"
    assert reply["error"]["message"].startswith(message)


def test_the_reply_file_appears_whole_or_not_at_all(tmp_path, monkeypatch):
    """While the reply is being written, out_path does not exist; then it holds the whole frame."""
    out_path = tmp_path / "reply"
    seen_during_write: list[bool] = []
    real_replace = os.replace

    def watching_replace(src: str, dst: str) -> None:
        seen_during_write.append(out_path.exists())
        assert Path(src).parent == out_path.parent, (
            "written beside the target, so the rename is atomic"
        )
        real_replace(src, dst)

    monkeypatch.setattr(interpreter.os, "replace", watching_replace)
    big = code("def run(self):\n    return {'blob': b'x' * 300_000}\n")
    assert exchange(tmp_path, {"op": "load", "hash": "interp-big", "code": big})["ok"]
    out_path.unlink(missing_ok=True)
    (tmp_path / "run.in").write_bytes(
        encode_frame({"op": "run", "hash": "interp-big", "inputs": {}, "context": {}})
    )
    interpreter.run_frame_file(str(tmp_path / "run.in"), str(out_path))
    assert seen_during_write[-1] is False
    reply = with_outputs(read_frame(io.BytesIO(out_path.read_bytes()), 1 << 30))
    assert reply["outputs"] == {"blob": b"x" * 300_000}
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []


def test_calls_from_two_threads_take_turns(tmp_path):
    block = code("def run(self, n):\n    time.sleep(0.05)\n    return {'n': n}\n")
    assert exchange(tmp_path, {"op": "load", "hash": "interp-turns", "code": block})["ok"]
    replies: dict[int, dict[str, Any]] = {}

    def call(n: int) -> None:
        replies[n] = exchange(
            tmp_path,
            {"op": "run", "hash": "interp-turns", "inputs": {"n": n}, "context": {}},
            f"t{n}",
        )

    threads = [threading.Thread(target=call, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert {n: reply["outputs"] for n, reply in replies.items()} == {n: {"n": n} for n in range(4)}


# --- ensure_requirements, environment --------------------------------------------------


def test_ensure_requirements_with_everything_present_installs_nothing(tmp_path):
    installs: list[tuple[list[str], str, str]] = []
    installed = interpreter.ensure_requirements(
        str(REQUIREMENTS),
        str(tmp_path / "wheels"),
        str(tmp_path / "site"),
        install=lambda *args: installs.append(args),
    )
    assert installed == [] and installs == []


def test_ensure_requirements_installs_the_pinned_lines_of_what_is_missing(tmp_path):
    missing = {"cv2", "cbor2"}
    installs: list[tuple[list[str], str, str]] = []
    wheels, prefix = str(tmp_path / "wheels"), str(tmp_path / "site")
    installed = interpreter.ensure_requirements(
        str(REQUIREMENTS),
        wheels,
        prefix,
        importable=lambda module: module not in missing,
        install=lambda *args: installs.append(args),
    )
    pinned = {
        line.split("==")[0]: line for line in REQUIREMENTS.read_text().splitlines() if "==" in line
    }
    assert installed == [pinned["opencv-python-headless"], pinned["cbor2"]]
    assert installs == [(installed, wheels, prefix)]


def test_ensure_requirements_names_a_module_the_file_does_not_pin(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# only numpy\nnumpy==2.0.0\n")
    with pytest.raises(ValueError, match="no line for shapely"):
        interpreter.ensure_requirements(
            str(requirements),
            str(tmp_path),
            str(tmp_path / "site"),
            importable=lambda module: module not in {"numpy", "shapely"},
            install=lambda *args: None,
        )


def test_the_default_installer_is_pip_from_the_wheelhouse_alone_into_the_prefix(monkeypatch):
    calls: list[list[str]] = []

    def run(args, **kwargs):
        calls.append(args)
        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr(interpreter.subprocess, "run", run)
    interpreter._pip_install_offline(["numpy==2.0.0"], "/wheels", "/site")
    [args] = calls
    assert args[:4] == [sys.executable, "-m", "pip", "install"]
    assert "--no-index" in args and args[-1] == "numpy==2.0.0"
    assert args[args.index("--find-links") + 1] == "/wheels"
    assert args[args.index("--prefix") + 1] == "/site"


def test_an_install_the_wheelhouse_cannot_satisfy_fails_with_pips_reason_and_no_index(tmp_path):
    # A real pip, offline: an empty wheelhouse has nothing, and no index is asked.
    with pytest.raises(RuntimeError, match="blockgate-no-such-package==1.0.*from .*wheels"):
        interpreter._pip_install_offline(
            ["blockgate-no-such-package==1.0"], str(tmp_path / "wheels"), str(tmp_path / "site")
        )


def test_environment_reports_the_python_the_versions_and_what_is_missing():
    import numpy

    report = interpreter.environment(str(REQUIREMENTS), importable=lambda m: m != "cbor2")
    pinned = {
        line.split("==")[0]: line for line in REQUIREMENTS.read_text().splitlines() if "==" in line
    }
    assert report["missing"] == [pinned["cbor2"]]
    assert report["python"] == ".".join(map(str, sys.version_info[:3]))
    packages = report["packages"]
    assert isinstance(packages, dict)
    assert packages["numpy"] == numpy.__version__ and "cbor2" not in packages


def test_the_module_imports_without_the_runtimes_dependencies():
    """ensure_requirements must be reachable in a kernel that lacks numpy or cbor2."""
    probe = (
        "import sys\n"
        "class Refuse:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'numpy', 'cbor2', 'msgpack', 'cv2', 'supervision', 'shapely', 'requests'}:\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Refuse())\n"
        "from runtime.interpreter import ensure_requirements, report_environment\n"
        "print('imported')\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{TEMPLATE_DIR}:{TEMPLATE_DIR.parent}"}
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.stdout == "imported\n", result.stderr
