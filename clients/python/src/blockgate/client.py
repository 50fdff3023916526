"""``Client`` and ``AsyncClient``: run a block on blockgate and get Python objects back."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from .errors import BlockgateError, Overloaded, ServerError, error_from
from .wire import Format, decode_outputs, encode_request, read_body

DEFAULT_URL = "http://127.0.0.1:8000"
USER_AGENT = "blockgate-python/0.2.0"


@dataclass(frozen=True)
class RunResult:
    """A finished run: the block's outputs as Python objects, what it printed, where the time went."""

    outputs: dict[str, Any]
    stdout: str
    stderr: str
    debug_traces: list[dict[str, Any]]
    cold_start: bool
    timings_ms: dict[str, float]
    backend: str
    block_hash: str
    trace_id: str | None = None
    """The run's trace when it was sampled (the ``traceresponse`` header)."""
    raw: dict[str, Any] = field(repr=False, default_factory=dict)


def _request_body(
    run_code: str,
    init_code: str | None,
    workspace: str | None,
    backend: str | None,
    timeout_ms: int | None,
    run_function_name: str,
    init_function_name: str,
    imports: list[str] | None,
    step_name: str | None,
) -> dict[str, Any]:
    code: dict[str, Any] = {
        "run_function_code": run_code,
        "run_function_name": run_function_name,
        "init_function_name": init_function_name,
    }
    if init_code is not None:
        code["init_function_code"] = init_code
    if imports:
        code["imports"] = list(imports)
    body: dict[str, Any] = {"code": code}
    for name, value in (
        ("workspace", workspace),
        ("backend", backend),
        ("timeout_ms", timeout_ms),
        ("step_name", step_name),
    ):
        if value is not None:
            body[name] = value
    return body


def _result(response: httpx.Response) -> RunResult:
    content_type = response.headers.get("content-type", "")
    try:
        body = read_body(response.content, content_type)
    except ValueError as exc:
        if response.status_code != 200:
            body = None  # an error without a readable body: typed by its status
        else:
            raise ServerError(
                200, "ServerError", f"an unreadable {content_type} answer: {exc}", {}
            ) from None
    if response.status_code != 200:
        raise error_from(response.status_code, body, response.headers.get("retry-after"))
    return RunResult(
        outputs=decode_outputs(body["outputs"]),
        stdout=body["stdout"],
        stderr=body["stderr"],
        debug_traces=body["debug_traces"],
        cold_start=body["cold_start"],
        timings_ms=body["timings_ms"],
        backend=body["backend"],
        block_hash=body["block_hash"],
        trace_id=_trace_id(response.headers.get("traceresponse")),
        raw=body,
    )


def _trace_id(header: str | None) -> str | None:
    parts = header.split("-") if header else []
    return parts[1] if len(parts) == 4 else None


class _Options:
    def __init__(
        self,
        url: str,
        api_key: str | None,
        timeout: float,
        retries: int,
        max_retry_wait: float,
        format: Format,
    ) -> None:
        if format not in ("cbor", "json"):
            raise ValueError(f"format must be 'cbor' or 'json', got {format!r}")
        if retries < 0:
            raise ValueError("retries must be 0 or more")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.max_retry_wait = max_retry_wait
        self.format = format
        self.headers = {
            "content-type": f"application/{format}",
            "accept": f"application/{format}",
            "user-agent": USER_AGENT,
        }
        if api_key:
            self.headers["authorization"] = f"Bearer {api_key}"

    def http_timeout(self, timeout_ms: int | None) -> float:
        """The HTTP timeout: the client's, or the run's own budget and a margin if longer."""
        return max(self.timeout, timeout_ms / 1000 + 10) if timeout_ms else self.timeout

    def wait_before_retry(self, attempt: int, error: BlockgateError) -> float | None:
        """Seconds to wait before trying again, or None when this error is final."""
        if not isinstance(error, Overloaded) or attempt >= self.retries:
            return None
        return min(error.retry_after, self.max_retry_wait)


class Client:
    """A blockgate client on one pooled HTTP connection set (``httpx.Client``).

    ``run`` sends CBOR by default: numpy arrays, ``WorkflowImageData``, ``sv.Detections`` and
    ``VideoMetadata`` cross losslessly and come back as the same types. 429/503 answers are
    retried up to ``retries`` times, each after the server's ``Retry-After`` (capped by
    ``max_retry_wait``); every other error is raised at once as its typed exception.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        api_key: str | None = None,
        timeout: float = 60.0,
        *,
        retries: int = 3,
        max_retry_wait: float = 10.0,
        format: Format = "cbor",
        http: httpx.Client | None = None,
    ) -> None:
        self._options = _Options(url, api_key, timeout, retries, max_retry_wait, format)
        self._http = http or httpx.Client(timeout=timeout)

    def run(
        self,
        run_code: str,
        inputs: dict[str, Any] | None = None,
        init_code: str | None = None,
        workspace: str | None = None,
        backend: str | None = None,
        timeout_ms: int | None = None,
        *,
        run_function_name: str = "run",
        init_function_name: str = "init",
        imports: list[str] | None = None,
        step_name: str | None = None,
    ) -> RunResult:
        """Runs ``run_code``'s ``run`` function on ``inputs``; raises the typed error of a failure."""
        options = self._options
        body = _request_body(
            run_code,
            init_code,
            workspace,
            backend,
            timeout_ms,
            run_function_name,
            init_function_name,
            imports,
            step_name,
        )
        content = encode_request(body, dict(inputs or {}), options.format)
        for attempt in range(options.retries + 1):
            response = self._http.post(
                f"{options.url}/v1/run",
                content=content,
                headers=options.headers,
                timeout=options.http_timeout(timeout_ms),
            )
            try:
                return _result(response)
            except BlockgateError as error:
                wait = options.wait_before_retry(attempt, error)
                if wait is None:
                    raise
                time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def health(self) -> dict[str, Any]:
        """GET /healthz."""
        return self._http.get(f"{self._options.url}/healthz").json()

    def ready(self) -> bool:
        """GET /readyz: whether the default backend has warm runtimes."""
        return self._http.get(f"{self._options.url}/readyz").status_code == 200

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient:
    """``Client`` for asyncio (``httpx.AsyncClient``): the same options, results and errors."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        api_key: str | None = None,
        timeout: float = 60.0,
        *,
        retries: int = 3,
        max_retry_wait: float = 10.0,
        format: Format = "cbor",
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._options = _Options(url, api_key, timeout, retries, max_retry_wait, format)
        self._http = http or httpx.AsyncClient(timeout=timeout)

    async def run(
        self,
        run_code: str,
        inputs: dict[str, Any] | None = None,
        init_code: str | None = None,
        workspace: str | None = None,
        backend: str | None = None,
        timeout_ms: int | None = None,
        *,
        run_function_name: str = "run",
        init_function_name: str = "init",
        imports: list[str] | None = None,
        step_name: str | None = None,
    ) -> RunResult:
        """As ``Client.run``."""
        options = self._options
        body = _request_body(
            run_code,
            init_code,
            workspace,
            backend,
            timeout_ms,
            run_function_name,
            init_function_name,
            imports,
            step_name,
        )
        content = encode_request(body, dict(inputs or {}), options.format)
        for attempt in range(options.retries + 1):
            response = await self._http.post(
                f"{options.url}/v1/run",
                content=content,
                headers=options.headers,
                timeout=options.http_timeout(timeout_ms),
            )
            try:
                return _result(response)
            except BlockgateError as error:
                wait = options.wait_before_retry(attempt, error)
                if wait is None:
                    raise
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    async def health(self) -> dict[str, Any]:
        return (await self._http.get(f"{self._options.url}/healthz")).json()

    async def ready(self) -> bool:
        return (await self._http.get(f"{self._options.url}/readyz")).status_code == 200

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
