"""``debug_traces``: values a block records for the run that is executing.

The current run's list lives in a ContextVar so that the one ``debug_traces`` object a
block sees in scope needs no reference to the run, and does nothing outside a run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any
from zoneinfo import ZoneInfo

MAX_TRACE_ENTRIES = 1000
MAX_TRACE_VALUE_BYTES = 16 * 1024


@dataclass
class _RunTraces:
    step_name: str | None
    entries: list[dict[str, Any]] = field(default_factory=list)


_current: ContextVar[_RunTraces | None] = ContextVar("blockgate_debug_traces", default=None)


@contextmanager
def collecting_traces(step_name: str | None) -> Iterator[list[dict[str, Any]]]:
    """Route ``debug_traces.append`` into a fresh list for the duration of one run."""
    run = _RunTraces(step_name)
    token = _current.set(run)
    try:
        yield run.entries
    finally:
        _current.reset(token)


def _json_safe(value: Any) -> Any:
    """The value if JSON can carry it, its repr otherwise; cut to the size cap."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        value = repr(value)
        text = json.dumps(value)
    encoded = text.encode("utf-8")
    if len(encoded) <= MAX_TRACE_VALUE_BYTES:
        return value
    head = encoded[:MAX_TRACE_VALUE_BYTES].decode("utf-8", errors="ignore")
    return f"{head}...[blockgate: trace value truncated, {len(encoded)} bytes of JSON]"


class DebugTraces:
    """The object blocks call as ``debug_traces.append(value)``."""

    def append(
        self, value: Any, *, add_timestamp: bool = False, timezone: str | None = None
    ) -> None:
        run = _current.get()
        if run is None or len(run.entries) >= MAX_TRACE_ENTRIES:
            return
        entry: dict[str, Any] = {"step": run.step_name, "value": _json_safe(value)}
        if add_timestamp:
            tz = ZoneInfo(timezone) if timezone else dt_timezone.utc
            entry["timestamp"] = datetime.now(tz).isoformat()
            if timezone:
                entry["timestamp_timezone"] = timezone
        run.entries.append(entry)

    def __repr__(self) -> str:
        return "<blockgate debug_traces>"


debug_traces = DebugTraces()
