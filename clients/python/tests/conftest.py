"""A live blockgate for the client's tests: `npm start`'s server (src/server.ts on Bun) with
local workers, on a free loopback port, stopped at the end (SIGTERM to the server itself,
which ends its own workers)."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[3]
BUN = REPO / "node_modules" / ".bin" / "bun"


@dataclass
class Server:
    url: str
    output: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(tmp: Path, name: str, env: dict[str, str]) -> Iterator[Server]:
    port = _free_port()
    output = tmp / f"{name}.log"
    with output.open("wb") as log:
        proc = subprocess.Popen(
            [str(BUN), "run", "src/server.ts"],
            cwd=REPO,
            env={**os.environ, "PORT": str(port), "BLOCKGATE_LOG_LEVEL": "warn", **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited: {output.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the server was not ready in 90 s: {output.read_text()[-2000:]}"
                )
            time.sleep(0.2)
        yield Server(url, output)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Anonymous runs, two workers, an 8 MiB body limit."""
    yield from _start(
        tmp_path_factory.mktemp("server"),
        "open",
        {
            "BLOCKGATE_MIN_WARM_WORKERS": "1",
            "BLOCKGATE_MAX_WORKERS": "2",
            "BLOCKGATE_MAX_BODY_BYTES": str(8 * 1024 * 1024),
        },
    )


@dataclass
class KeyedServer(Server):
    key: str


@pytest.fixture(scope="session")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyedServer]:
    """API keys, one worker and no queue: a second run at once is a 429."""
    key = secrets.token_urlsafe(24)
    keys = {
        "keys": [
            {
                "id": "client-tests",
                "sha256": hashlib.sha256(key.encode()).hexdigest(),
                "workspaces": ["tests", "other"],
            }
        ]
    }
    for server in _start(
        tmp_path_factory.mktemp("keyed"),
        "keyed",
        {
            "BLOCKGATE_API_KEYS": json.dumps(keys),
            "BLOCKGATE_MIN_WARM_WORKERS": "1",
            "BLOCKGATE_MAX_WORKERS": "1",
            "BLOCKGATE_MAX_QUEUE": "0",
        },
    ):
        yield KeyedServer(server.url, server.output, key)
