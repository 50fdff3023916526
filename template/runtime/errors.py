"""Error types a block run can end in, and how a user's exception is described.

Every error travels to the proxy as the same dict shape (see ``BlockError.to_dict``) so
the TypeScript side can map it onto an HTTP status without guessing.
"""

from __future__ import annotations

import traceback as tb_module
from collections.abc import Mapping
from typing import Any

# Each piece of user code is compiled under its own pseudo filename, so a frame's
# filename says which field of the request the line belongs to.
USER_FILENAMES: dict[str, str] = {
    "<run_function_code>": "run_function_code",
    "<init_function_code>": "init_function_code",
    "<imports>": "imports",
}

SNIPPET_CONTEXT_LINES = 3


class BlockError(Exception):
    """Base of every error the runtime reports; ``to_dict`` is the wire form."""

    def __init__(
        self,
        message: str,
        *,
        line: int | None = None,
        function: str | None = None,
        source: str | None = None,
        snippet: str | None = None,
        traceback: str | None = None,
        exception: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.function = function
        self.source = source
        self.snippet = snippet
        self.traceback = traceback
        # The user's exception as Python names it ({"type": "ValueError", "message": "boom"}):
        # Roboflow's webexec protocol reports the two apart.
        self.exception = exception

    @property
    def type(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "message": self.message,
            "line": self.line,
            "function": self.function,
            "source": self.source,
            "snippet": self.snippet,
            "traceback": self.traceback,
            "exception": self.exception,
        }

    @classmethod
    def from_exception(cls, exc: BaseException, sources: Mapping[str, str]) -> BlockError:
        """Describe ``exc`` in terms of the user's code; ``sources`` maps field name → text."""
        return cls(**describe_exception(exc, sources))


class BlockCompileError(BlockError):
    """The block's code could not be compiled or its module-level code failed."""


class BlockRuntimeError(BlockError):
    """``init`` or ``run`` raised, or returned something that is not outputs."""


class UnknownBlock(BlockError):
    """A run named a hash this worker has not loaded (or has evicted)."""


class BadRequest(BlockError):
    """A message from the proxy was malformed; the message names the field."""


class InvalidInput(BlockError):
    """An input does not fit its kind (``inputs.image.pixels.shape: ...``): the client's fault."""


class OutputTooLarge(BlockRuntimeError):
    """The encoded reply (outputs plus captured output) does not fit in one frame."""


class InternalError(BlockError):
    """A bug in the runtime itself, not in the block; reported rather than ending the worker."""


def exception_text(exc: BaseException) -> str:
    """``str(exc)``, but a SyntaxError's bare message, not its ``(file, line)`` suffix; a
    block's exception whose own ``__str__`` raises is described rather than re-raised."""
    if isinstance(exc, SyntaxError) and exc.msg:
        return str(exc.msg)
    try:
        return str(exc)
    except Exception as failure:
        return f"<str() of the exception raised {type(failure).__qualname__}>"


def exception_message(exc: BaseException) -> str:
    """``"ValueError: boom"``, or just ``"SystemExit"`` when the exception has no text."""
    name = type(exc).__qualname__
    text = exception_text(exc)
    return f"{name}: {text}" if text else name


def describe_exception(exc: BaseException, sources: Mapping[str, str]) -> dict[str, Any]:
    """Fields of a BlockError for ``exc``, located in the innermost user-code frame."""
    line: int | None = None
    function: str | None = None
    source: str | None = None

    if isinstance(exc, SyntaxError) and exc.filename in USER_FILENAMES:
        # A SyntaxError has no frame in user code: its own lineno is the location.
        source = USER_FILENAMES[exc.filename]
        line = exc.lineno
    else:
        for frame in reversed(tb_module.extract_tb(exc.__traceback__)):
            if frame.filename in USER_FILENAMES:
                source = USER_FILENAMES[frame.filename]
                line = frame.lineno
                # "<module>" means top-level code of a piece; no function to name.
                function = None if frame.name == "<module>" else frame.name
                break

    snippet = None
    if source is not None and line is not None and source in sources:
        snippet = format_snippet(sources[source], line)

    return {
        "message": exception_message(exc),
        "line": line,
        "function": function,
        "source": source,
        "snippet": snippet,
        "traceback": format_user_traceback(exc),
        "exception": {"type": type(exc).__name__, "message": exception_text(exc)},
    }


def format_snippet(source_text: str, line: int, context: int = SNIPPET_CONTEXT_LINES) -> str | None:
    """Up to ``context`` lines either side of ``line``, numbered, the failing line marked ``>``."""
    lines = source_text.splitlines()
    if not lines:
        return None
    # A SyntaxError at end of input may point one past the last line; keep the window valid.
    centre = min(max(line, 1), len(lines))
    first = max(1, centre - context)
    last = min(len(lines), centre + context)
    width = len(str(last))
    out = []
    for number in range(first, last + 1):
        marker = ">" if number == line else " "
        out.append(f"{marker} {number:>{width}} | {lines[number - 1].rstrip()}")
    return "\n".join(out)


def format_user_traceback(exc: BaseException) -> str:
    """A traceback that starts at the first user-code frame.

    The runtime's own frames above it are noise to the user; library frames below it
    (numpy, cv2 wrappers) stay, since the user called into them.
    """
    te = tb_module.TracebackException(type(exc), exc, exc.__traceback__)
    first_user = next(
        (i for i, frame in enumerate(te.stack) if frame.filename in USER_FILENAMES), None
    )
    te.stack = tb_module.StackSummary.from_list(
        te.stack[first_user:] if first_user is not None else []
    )
    return "".join(te.format()).rstrip("\n")
