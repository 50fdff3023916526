"""Entry for code-interpreter mode: E2B's stock, stateful Jupyter-like kernel.

The proxy (src/backends/e2b/runtime-interpreter.ts) uploads the runtime and the serializers'
Python halves under /home/user/blockgate with files.write, then runs in the kernel, once

    import sys
    sys.path[:0] = ["/home/user/blockgate/template", "/home/user/blockgate"]
    from runtime.interpreter import ensure_requirements, report_environment, run_frame_file
    report_environment("/home/user/blockgate/template/requirements.txt")

which prints one line, ``blockgate-environment {...}``: the kernel's Python, the version of
each package a block imports, and the pinned requirement lines of those that do not import.
When some are missing (E2B's stock template lacks supervision, shapely and cbor2), the proxy
uploads its wheelhouse (template/code-interpreter/wheelhouse.txt, downloaded by setup) to
/home/user/blockgate/wheelhouse and runs

    ensure_requirements("/home/user/blockgate/template/requirements.txt",
                        "/home/user/blockgate/wheelhouse", "/home/user/blockgate/site")
    report_environment("/home/user/blockgate/template/requirements.txt")

pip installs them from the wheelhouse alone (--no-index: the sandbox has no internet), into
a prefix of the home, against the packages the kernel already has. Then, for each request,
after writing its frame to /home/user/blockgate/io/frame.in,

    run_frame_file("/home/user/blockgate/io/frame.in", "/home/user/blockgate/io/frame.out", max_frame_bytes)

with its own frame limit, then reads the reply frame back from frame.out. Frames travel as
files, not through the kernel's stdout (which carries whatever the kernel prints, in its
own format). The Executor lives as long as the kernel process, so a block loaded by one
call is still loaded, and warm, for the next.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import platform
import site
import subprocess
import sys
import sysconfig
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

# Only the standard library at import time (runtime.protocol is too): ensure_requirements
# must work in a kernel that lacks numpy or cbor2, which the rest of the runtime imports.
# The frame handling is imported on first use instead.
from .protocol import DEFAULT_BLOCK_CACHE_SIZE, DEFAULT_MAX_CAPTURE_BYTES, DEFAULT_MAX_FRAME_BYTES

if TYPE_CHECKING:
    from .executor import Executor

# What a block needs importable, and the requirement name that provides each (as written
# in template/requirements.txt).
REQUIRED_MODULES: dict[str, str] = {
    "numpy": "numpy",
    "cv2": "opencv-python-headless",
    "supervision": "supervision",
    "shapely": "shapely",
    "cbor2": "cbor2",
    "msgpack": "msgpack",
    "requests": "requests",
}

_executor: Executor | None = None
_lock = threading.Lock()  # a kernel may run cells from more than one thread


def _shared_executor() -> Executor:
    """The kernel's one Executor; the heavy imports happen on first use, not on import."""
    global _executor
    if _executor is None:
        from .executor import Executor
        from .prelude import preload
        from .task_id import assign_task_id

        assign_task_id()
        preload()
        _executor = Executor(
            cache_size=DEFAULT_BLOCK_CACHE_SIZE,
            max_capture_bytes=DEFAULT_MAX_CAPTURE_BYTES,
            sidecar_outputs=True,
        )
    return _executor


def run_frame_file(
    in_path: str, out_path: str, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
) -> None:
    """Answer the one worker frame in ``in_path`` with the reply frame a worker would write.

    The reply appears at ``out_path`` whole or not at all (written aside, then renamed).
    """
    from .errors import BadRequest
    from .executor import failure_reply
    from .framing import FrameError, read_frame
    from .worker import encode_reply

    with _lock:
        executor = _shared_executor()
        with open(in_path, "rb") as stream:
            try:
                frame = read_frame(stream, max_frame_bytes)
            except FrameError as exc:
                reply = failure_reply(BadRequest(f"frame: {exc}"))
            else:
                if frame is None:
                    reply = failure_reply(BadRequest("frame: the file is empty"))
                elif stream.read(1):
                    reply = failure_reply(BadRequest("frame: bytes follow the frame in the file"))
                else:
                    executor.max_output_bytes = max_frame_bytes
                    reply = executor.handle(frame.message, frame.sidecar)
        _write_atomically(out_path, encode_reply(reply, max_frame_bytes))


def _write_atomically(path: str, parts: Sequence[bytes | memoryview]) -> None:
    # Same directory, so the rename cannot cross filesystems; the pid keeps two kernels apart.
    partial = f"{path}.{os.getpid()}.partial"
    try:
        with open(partial, "wb") as stream:
            for part in parts:
                stream.write(part)
        os.replace(partial, path)
    except BaseException:
        try:
            os.unlink(partial)
        except OSError:
            pass
        raise


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def _requirement_name(line: str) -> str:
    """``opencv-python-headless==5.0.0.93`` → ``opencv-python-headless`` (lower case)."""
    for separator in ("==", ">=", "<=", "~=", "!=", ">", "<", "[", ";", " "):
        line = line.split(separator, 1)[0]
    return line.strip().lower()


def _pinned_lines(requirements_path: str) -> dict[str, str]:
    """Requirement name → its line, comments and blank lines left out."""
    pinned: dict[str, str] = {}
    with open(requirements_path) as stream:
        for raw in stream:
            line = raw.split("#", 1)[0].strip()
            if line:
                pinned[_requirement_name(line)] = line
    return pinned


def missing_requirements(
    requirements_path: str, *, importable: Callable[[str], bool] = _importable
) -> list[str]:
    """The pinned requirement line of each module a block needs that does not import here."""
    missing = [name for module, name in REQUIRED_MODULES.items() if not importable(module)]
    if not missing:
        return []
    pinned = _pinned_lines(requirements_path)
    unknown = [name for name in missing if name not in pinned]
    if unknown:
        raise ValueError(f"{requirements_path}: no line for {', '.join(unknown)}")
    return [pinned[name] for name in missing]


def _site_dirs(prefix: str) -> list[str]:
    """Where pip's ``--prefix`` puts this interpreter's packages (pure and platform-specific)."""
    paths = sysconfig.get_paths(vars={"base": prefix, "platbase": prefix})
    return list(dict.fromkeys([paths["purelib"], paths["platlib"]]))


def _pip_install_offline(requirements: list[str], wheelhouse: str, prefix: str) -> None:
    """pip, from the wheelhouse alone, into ``prefix``, resolving against what is installed."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-index",
            "--find-links",
            wheelhouse,
            "--prefix",
            prefix,
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--no-input",
            "--no-warn-script-location",
            "--no-compile",  # 1.5 s less; what a block imports compiles as it loads
            "-q",
            *requirements,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,  # nothing on the kernel's stdout
        stderr=subprocess.PIPE,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"pip could not install {', '.join(requirements)} from {wheelhouse}: "
            + result.stderr.strip()[-2000:]
        )


def ensure_requirements(
    requirements_path: str,
    wheelhouse: str,
    prefix: str,
    *,
    importable: Callable[[str], bool] = _importable,
    install: Callable[[list[str], str, str], None] = _pip_install_offline,
) -> list[str]:
    """Install, from the wheelhouse, the pinned requirement of each module that does not import.

    ``prefix``'s site directories join ``sys.path`` first, so what an earlier call installed
    there counts as present. Returns the requirement lines installed; empty when everything
    was already there.
    """
    for directory in _site_dirs(prefix):
        if directory not in sys.path and os.path.isdir(directory):
            site.addsitedir(directory)
    lines = missing_requirements(requirements_path, importable=importable)
    if not lines:
        return []
    install(lines, wheelhouse, prefix)
    for directory in _site_dirs(prefix):
        if directory not in sys.path:
            site.addsitedir(directory)
    importlib.invalidate_caches()  # so the freshly installed packages are found in this process
    return lines


def _distribution_version(module: str, distributions: dict[str, list[str]]) -> dict[str, str]:
    """The distribution that provides ``module`` and its version (``{}`` if none is found)."""
    for name in distributions.get(module, []):
        try:
            return {name: importlib.metadata.version(name)}
        except importlib.metadata.PackageNotFoundError:
            continue
    return {}


def environment(
    requirements_path: str, *, importable: Callable[[str], bool] = _importable
) -> dict[str, object]:
    """What a block sees in this kernel: its Python, the distribution and version of each
    package it imports, and the pinned requirement lines of the modules that do not import."""
    missing = missing_requirements(requirements_path, importable=importable)
    distributions = importlib.metadata.packages_distributions()
    packages: dict[str, str] = {}
    for module in REQUIRED_MODULES:
        if importable(module):
            packages.update(_distribution_version(module, distributions))
    return {
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "machine": platform.machine(),
        "packages": packages,
        "missing": missing,
    }


ENVIRONMENT_MARKER = "blockgate-environment "


def report_environment(requirements_path: str) -> None:
    """Prints ``environment()`` as one line of JSON after ENVIRONMENT_MARKER, for the proxy."""
    print(ENVIRONMENT_MARKER + json.dumps(environment(requirements_path)), flush=True)
