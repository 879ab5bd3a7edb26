"""Fixtures for the dashboard: a real daemon tree with the dashboard child on a free port, and
a small HTTP/1.1 client over real TCP (one request per connection)."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

import attrs
import pytest
import trio

from hyperhive.containers.settings import ContainerSettings
from hyperhive.testing import TestHive, open_test_hive
from hyperhive.testing.fake_containers import FakeBackend
from hyperhive.web import Bind, dashboard_child

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from hyperhive.web import ApprovalDesk, Dashboard


@attrs.frozen
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@attrs.define
class Web:
    hive: TestHive
    dashboard: Dashboard
    backend: FakeBackend

    @property
    def port(self) -> int:
        return self.dashboard.address[1]

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        same_origin: bool = True,
    ) -> Reply:
        data = b"" if body is None else json.dumps(body).encode()
        head = {"Host": f"127.0.0.1:{self.port}", "Connection": "close"}
        if same_origin:
            head["Sec-Fetch-Site"] = "same-origin"
        if body is not None:
            head["Content-Type"] = "application/json"
        head.update(headers or {})
        head["Content-Length"] = str(len(data))
        return await http(self.port, method, path, head, data)

    async def get(self, path: str, **kwargs: Any) -> Reply:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> Reply:
        return await self.request("POST", path, body={} if body is None else body, **kwargs)


async def http(port: int, method: str, path: str, headers: dict[str, str], data: bytes) -> Reply:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
        await stream.send_all("\r\n".join(lines).encode() + data)
        raw = bytearray()
        while not complete(bytes(raw)):
            chunk = await stream.receive_some(65536)
            if not chunk:
                break
            raw += chunk
    return parse(bytes(raw))


def complete(raw: bytes) -> bool:
    """Whether `raw` holds a whole response (hypercorn keeps the connection open after it)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return False
    lowered = head.lower()
    if b"transfer-encoding: chunked" in lowered:
        return body.endswith(b"0\r\n\r\n")
    for line in lowered.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return True


def parse(raw: bytes) -> Reply:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = dechunk(body)
    return Reply(int(status_line.split()[1]), headers, body)


def dechunk(body: bytes) -> bytes:
    out = bytearray()
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return bytes(out)


@contextlib.asynccontextmanager
async def open_web(
    state_dir: Path,
    *,
    token: str | None = None,
    approvals: ApprovalDesk | None = None,
    agents: tuple[str, ...] = (),
) -> AsyncIterator[Web]:
    """A daemon (fake containers) with its dashboard on 127.0.0.1 and a free port."""
    bound: list[Dashboard] = []
    backend = FakeBackend()
    settings = ContainerSettings(ensure_manager=False, stop_grace=2.0, shutdown_grace=1.0)

    def keep(dashboard: Dashboard) -> None:
        if approvals is not None:
            dashboard.ops.approvals = approvals
        bound.append(dashboard)

    make = dashboard_child(Bind("127.0.0.1", 0), token=token, on_bound=keep)
    async with open_test_hive(
        state_dir, containers=settings, backend=backend, extra_children=[make]
    ) as hive:
        for name in agents:
            await hive.handles.agents.spawn(name)
        yield Web(hive, bound[0], backend)


@pytest.fixture
async def web(short_tmp: Path) -> AsyncIterator[Web]:
    with trio.fail_after(30):
        async with open_web(short_tmp / "hive", agents=("alice",)) as running:
            yield running


_SCREENSHOTS: list[Path] = []


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Where the browser tests save their screenshots (printed at the end of the run)."""
    import os
    import tempfile
    from pathlib import Path

    chosen = os.environ.get("HYPERHIVE_SCREENSHOTS")
    path = Path(chosen) if chosen else Path(tempfile.mkdtemp(prefix="hyperhive-screenshots-"))
    path.mkdir(parents=True, exist_ok=True)
    _SCREENSHOTS.append(path)
    return path


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for path in _SCREENSHOTS:
        terminalreporter.write_line(f"browser screenshots: {path}")
