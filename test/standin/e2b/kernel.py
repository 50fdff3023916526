"""The E2B stand-in's code-interpreter kernel: one stateful Python namespace per sandbox.

    python kernel.py --home /home/user

Requests arrive on stdin, one JSON object per line: {"code": "...", "env_vars": {...}}.
Events leave on the original stdout, one JSON object per line, in the shapes the
@e2b/code-interpreter SDK parses: stdout, stderr, result, error, number_of_executions,
and end_of_execution closing each request. {"type": "ready"} is sent once at start.
The code's own fd 0 is /dev/null and its fd 1 is stderr, so nothing it does can forge or
block the event channel by writing to the raw file descriptors.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import io
import json
import linecache
import os
import sys
import threading
import traceback
from types import CodeType
from typing import Any, BinaryIO


class EventChannel:
    """JSON lines out, one writer at a time (the code may print from threads)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n"
        with self._lock:
            self._stream.write(line)
            self._stream.flush()


class LineStream(io.TextIOBase):
    """A text stream that sends what is written as events, a whole line at a time."""

    def __init__(self, channel: EventChannel, kind: str) -> None:
        self._channel = channel
        self._kind = kind
        self._pending = ""
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            lines = self._pending.splitlines(keepends=True)
            self._pending = lines.pop() if lines and not lines[-1].endswith("\n") else ""
        for line in lines:
            self._channel.send({"type": self._kind, "text": line})
        return len(text)

    def flush(self) -> None:
        with self._lock:
            rest, self._pending = self._pending, ""
        if rest:
            self._channel.send({"type": self._kind, "text": rest})


def claim_channel() -> tuple[BinaryIO, BinaryIO]:
    """Private copies of fd 0/1 for requests and events; fd 0 becomes /dev/null, fd 1 stderr."""
    requests = os.fdopen(os.dup(0), "rb")
    events = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    return requests, events


class Kernel:
    def __init__(self, channel: EventChannel) -> None:
        self._channel = channel
        self._namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        self._count = 0
        self._stdout = LineStream(channel, "stdout")
        self._stderr = LineStream(channel, "stderr")

    def execute(self, code: str, env_vars: dict[str, str]) -> None:
        self._count += 1
        saved_env = {name: os.environ.get(name) for name in env_vars}
        os.environ.update(env_vars)
        sys.stdout, sys.stderr = self._stdout, self._stderr
        try:
            value = self._run(code)
            self._stdout.flush()
            self._stderr.flush()
            if value is not None:
                self._channel.send({"type": "result", "text": repr(value), "is_main_result": True})
        except (
            BaseException
        ) as error:  # the code's SystemExit or KeyboardInterrupt must not end the kernel
            self._stdout.flush()
            self._stderr.flush()
            self._channel.send(
                {
                    "type": "error",
                    "name": type(error).__name__,
                    "value": str(error),
                    "traceback": self._traceback(error),
                }
            )
        finally:
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
            for name, value in saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            self._channel.send({"type": "number_of_executions", "execution_count": self._count})

    def _run(self, code: str) -> Any:
        """Runs the cell; returns the value of its last line if that line is an expression."""
        filename = f"<cell {self._count}>"
        # Tracebacks can then show the cell's source lines.
        linecache.cache[filename] = (len(code), None, code.splitlines(keepends=True), filename)
        tree = ast.parse(code, filename=filename, mode="exec")
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        exec(self._compile(tree, filename, "exec"), self._namespace)
        if last is None:
            return None
        return eval(
            self._compile(ast.Expression(body=last.value), filename, "eval"), self._namespace
        )

    @staticmethod
    def _compile(tree: ast.AST, filename: str, mode: str) -> CodeType:
        return compile(ast.fix_missing_locations(tree), filename, mode)

    @staticmethod
    def _traceback(error: BaseException) -> str:
        """The traceback from the cell down: the kernel's own frames are left out."""
        tb = error.__traceback__
        while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<cell "):
            tb = tb.tb_next
        if isinstance(error, SyntaxError):
            tb = None
        return "".join(traceback.format_exception(type(error), error, tb))


def main() -> None:
    parser = argparse.ArgumentParser(prog="kernel.py")
    parser.add_argument("--home", required=True)
    args = parser.parse_args()
    os.chdir(args.home)
    requests, events = claim_channel()
    channel = EventChannel(events)
    kernel = Kernel(channel)
    channel.send({"type": "ready", "pid": os.getpid()})
    for line in requests:
        try:
            request = json.loads(line)
            code = request["code"]
            env_vars = request.get("env_vars") or {}
            if not isinstance(code, str) or not isinstance(env_vars, dict):
                raise ValueError("code must be a string and env_vars an object")
        except (ValueError, KeyError, TypeError) as error:
            channel.send(
                {"type": "error", "name": "BadRequest", "value": str(error), "traceback": ""}
            )
        else:
            kernel.execute(code, {str(k): str(v) for k, v in env_vars.items()})
        channel.send({"type": "end_of_execution"})


if __name__ == "__main__":
    main()
