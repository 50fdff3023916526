"""Typed exceptions, one per error ``type`` of blockgate's contract (README, "Errors")."""

from __future__ import annotations

from typing import Any


class BlockgateError(Exception):
    """An error answer: ``status``, the ``type`` named in its body, and the whole ``body``."""

    def __init__(self, status: int, type_: str, message: str, body: dict[str, Any]) -> None:
        super().__init__(f"{type_} ({status}): {message}")
        self.status = status
        self.type = type_
        self.message = message
        self.body = body


class BadRequest(BlockgateError):
    """The request did not fit: ``path`` names the field or input (``inputs.image``, ``code.run_function_code``)."""

    @property
    def problems(self) -> list[str]:
        return list(self.body.get("problems") or [])

    @property
    def path(self) -> str | None:
        if isinstance(self.body.get("path"), str):
            return self.body["path"]
        first = self.problems[0] if self.problems else self.message
        return first.split(":", 1)[0] if ":" in first else None


class AuthError(BlockgateError):
    """The key is missing or invalid (401), or does not hold the workspace (403)."""


class Unauthorized(AuthError):
    pass


class Forbidden(AuthError):
    pass


class NotFound(BlockgateError):
    pass


class PayloadTooLarge(BlockgateError):
    """The request body is over the server's limit."""


class OutputTooLarge(BlockgateError):
    """The block's outputs are over what one answer may hold."""


class UnsupportedMediaType(BlockgateError):
    pass


class BlockError(BlockgateError):
    """The block failed; where, counted in your own code (line 1 = the first of run_code)."""

    def _field(self, name: str) -> Any:
        return self.body.get(name)

    @property
    def line(self) -> int | None:
        return self._field("line")

    @property
    def function(self) -> str | None:
        return self._field("function")

    @property
    def source(self) -> str | None:
        """Which code field the line is in (run_function_code, init_function_code, imports)."""
        return self._field("source")

    @property
    def snippet(self) -> str | None:
        return self._field("snippet")

    @property
    def traceback(self) -> str | None:
        return self._field("traceback")

    @property
    def stdout(self) -> str:
        return self._field("stdout") or ""

    @property
    def stderr(self) -> str:
        return self._field("stderr") or ""


class BlockCompileError(BlockError):
    """A syntax error, a failing import, a missing run or init function."""


class BlockRuntimeError(BlockError):
    """The block raised, or an output could not be encoded."""


class BlockTimeout(BlockgateError):
    """The run passed its timeout; its worker was replaced."""


class Overloaded(BlockgateError):
    """No capacity now (429: too many waiting; 503: none became free): retry after ``retry_after`` s."""

    def __init__(
        self, status: int, type_: str, message: str, body: dict[str, Any], retry_after: float
    ) -> None:
        super().__init__(status, type_, message, body)
        self.retry_after = retry_after


class WorkerCrashed(BlockgateError):
    """The worker died under the run (it is replaced)."""


class RemoteBackendFailed(BlockgateError):
    """The remote backend (E2B) failed."""


class ServerError(BlockgateError):
    """blockgate itself failed (InternalError), or answered something this client cannot read."""


_BY_TYPE: dict[str, type[BlockgateError]] = {
    "BadRequest": BadRequest,
    "Unauthorized": Unauthorized,
    "Forbidden": Forbidden,
    "NotFound": NotFound,
    "PayloadTooLarge": PayloadTooLarge,
    "OutputTooLarge": OutputTooLarge,
    "UnsupportedMediaType": UnsupportedMediaType,
    "BlockCompileError": BlockCompileError,
    "BlockRuntimeError": BlockRuntimeError,
    "BlockTimeout": BlockTimeout,
    "WorkerCrashed": WorkerCrashed,
    "RemoteBackendFailed": RemoteBackendFailed,
    "InternalError": ServerError,
}


def error_from(status: int, body: Any, retry_after: str | None) -> BlockgateError:
    """The exception for an error answer; an unknown type by its status."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        # No error body: a proxy's answer, or Bun's own 413 for a body far over the limit.
        type_ = _TYPE_BY_STATUS.get(status, "ServerError")
        error = {"type": type_, "message": f"HTTP {status} without an error body"}
    type_ = str(error.get("type", "ServerError"))
    message = str(error.get("message", ""))
    if type_ == "Overloaded":
        return Overloaded(status, type_, message, error, _seconds(retry_after))
    cls = _BY_TYPE.get(type_)
    if cls is None:
        cls = AuthError if status in (401, 403) else BadRequest if status == 400 else ServerError
    return cls(status, type_, message, error)


_TYPE_BY_STATUS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    429: "Overloaded",
    503: "Overloaded",
    504: "BlockTimeout",
}


def _seconds(header: str | None) -> float:
    try:
        return max(0.0, float(header)) if header is not None else 1.0
    except ValueError:
        return 1.0
