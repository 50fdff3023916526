"""Per-run capture of ``sys.stdout`` / ``sys.stderr``, each capped at a byte limit."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


class CappedTextWriter(io.TextIOBase):
    """A text stream that keeps the first ``limit`` bytes (UTF-8) and drops the rest.

    Past the cap a write is a counter bump, so a block printing in a loop costs little
    and memory stays bounded by the cap.
    """

    def __init__(self, limit: int) -> None:
        super().__init__()
        self._limit = limit
        self._kept = 0
        self._chunks: list[str] = []
        self.truncated = False
        self.buffer = _ByteWriter(self)

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]
        return "replace"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def close(self) -> None:
        # A block closing sys.stdout must not break the next print in this run.
        pass

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if self.truncated:
            return len(text)
        room = self._limit - self._kept
        # len() is the byte count for ASCII; only non-ASCII text pays for an encode.
        size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
        if size <= room:
            self._chunks.append(text)
            self._kept += size
        else:
            head = text.encode("utf-8", "surrogatepass")[:room].decode("utf-8", "ignore")
            self._chunks.append(head)
            self._kept = self._limit
            self.truncated = True
        return len(text)

    def getvalue(self) -> str:
        text = "".join(self._chunks)
        if self.truncated:
            text += f"\n[blockgate: output truncated after {self._limit} bytes]"
        return text


class _ByteWriter:
    """``sys.stdout.buffer`` for blocks that write bytes; decoded into the text stream."""

    def __init__(self, text: CappedTextWriter) -> None:
        self._text = text

    def write(self, data: bytes) -> int:
        self._text.write(bytes(data).decode("utf-8", "replace"))
        return len(data)

    def flush(self) -> None:
        pass


@dataclass
class Captured:
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False


@contextmanager
def capture_output(limit: int) -> Iterator[Captured]:
    """Swap sys.stdout/sys.stderr for capped writers; the yielded record is filled on exit."""
    result = Captured()
    out, err = CappedTextWriter(limit), CappedTextWriter(limit)
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        yield result
    finally:
        sys.stdout, sys.stderr = saved
        result.stdout, result.stdout_truncated = out.getvalue(), out.truncated
        result.stderr, result.stderr_truncated = err.getvalue(), err.truncated
