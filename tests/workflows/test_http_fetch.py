"""The http.fetch built-in task against a real local server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

import taskcast
from taskcast.builtin import FetchPolicy, register_http_fetch
from tests.engine.conftest import collect, wait_for_event

from .slow_server import Reply, SlowServer, slow_server


@pytest.fixture
async def server() -> AsyncIterator[SlowServer]:
    async with slow_server() as running:
        yield running


@pytest.fixture
def fetch_app(app: taskcast.App) -> taskcast.App:
    """``http.fetch`` allowed to reach the test servers, which listen on 127.0.0.1 (refused by
    default: see test_fetch_guard.py)."""
    register_http_fetch(app, FetchPolicy.allowing(["127.0.0.1"]))
    return app


async def test_fetch_returns_status_headers_and_the_json_body(
    fetch_app: taskcast.App, server: SlowServer
) -> None:
    server.reply = Reply(
        headers={"Content-Type": "application/json"}, body=json.dumps({"answer": 42}).encode()
    )
    run = await fetch_app.submit("http.fetch", url=f"{server.url}/data")
    done = await fetch_app.wait(run.id, timeout=10)
    assert done.state is taskcast.RunState.COMPLETED, done.error
    assert done.result["status"] == 200
    assert done.result["body"] == {"answer": 42}
    assert done.result["headers"]["content-type"] == "application/json"
    assert server.requests == ["GET /data HTTP/1.1"]


async def test_fetch_streams_progress_with_bytes_received_and_total(
    fetch_app: taskcast.App, server: SlowServer
) -> None:
    server.reply = Reply(headers={"Content-Type": "text/plain"}, body=b"x" * 200_000)
    run = await fetch_app.submit("http.fetch", url=server.url)
    events = await collect(fetch_app, run.id)
    progress = [e.data for e in events if e.type == "progress"]
    assert progress[-1] == {"current": 200_000, "total": 200_000, "message": "done"}
    assert all(p["total"] == 200_000 for p in progress)
    assert [p["current"] for p in progress] == sorted(p["current"] for p in progress)
    assert events[-1].data["result"]["body"] == "x" * 200_000


async def test_a_non_2xx_status_is_a_result_not_a_failure(
    fetch_app: taskcast.App, server: SlowServer
) -> None:
    server.reply = Reply(status=404, headers={"Content-Type": "text/plain"}, body=b"nope")
    done = await fetch_app.wait((await fetch_app.submit("http.fetch", url=server.url)).id, 10)
    assert (done.state, done.result["status"], done.result["body"]) == ("completed", 404, "nope")


async def test_a_binary_body_comes_back_as_base64(
    fetch_app: taskcast.App, server: SlowServer
) -> None:
    server.reply = Reply(headers={"Content-Type": "image/png"}, body=b"\x89PNG")
    done = await fetch_app.wait((await fetch_app.submit("http.fetch", url=server.url)).id, 10)
    assert done.result["body"] == "iVBORw==" and done.result["body_encoding"] == "base64"


async def test_cancelling_a_fetch_mid_body_closes_its_connection_at_once(
    fetch_app: taskcast.App, server: SlowServer
) -> None:
    server.reply = Reply(body=b"y" * 1000, length=1_000_000, stall_after=1000)
    run = await fetch_app.submit("http.fetch", url=server.url)
    await wait_for_event(fetch_app, run.id, "progress")
    assert await fetch_app.cancel(run.id, reason="user")
    done = await fetch_app.wait(run.id, timeout=10)
    assert done.state is taskcast.RunState.CANCELLED
    # The server sees the client hang up: the connection was closed, not kept half-read.
    await asyncio.wait_for(server.client_closed.wait(), timeout=5)
    assert server.connections_closed_by_client == 1
    assert (await collect(fetch_app, run.id))[-1].type == "cancelled"


async def test_a_fetch_that_outlives_its_timeout_fails_naming_it(
    fetch_app: taskcast.App, server: SlowServer
) -> None:
    server.reply = Reply(body=b"z" * 10, length=100, stall_after=10)
    run = await fetch_app.submit("http.fetch", url=server.url, timeout=0.2)
    done = await fetch_app.wait(run.id, timeout=10)
    assert done.state is taskcast.RunState.FAILED
    assert done.error == {
        "type": "TimeoutError",
        "message": f"GET {server.url} did not finish within 0.2 s",
    }
    await asyncio.wait_for(server.client_closed.wait(), timeout=5)


async def test_a_url_that_is_not_http_is_refused_at_submit(fetch_app: taskcast.App) -> None:
    with pytest.raises(taskcast.InvalidArguments, match="url"):
        await fetch_app.submit("http.fetch", url="file:///etc/passwd")


async def test_a_refused_connection_fails_the_run(fetch_app: taskcast.App) -> None:
    async with slow_server() as gone:
        url = gone.url
    done = await fetch_app.wait((await fetch_app.submit("http.fetch", url=url)).id, 10)
    assert done.state is taskcast.RunState.FAILED
    assert done.error["type"] == "ConnectError"


async def test_a_connection_lost_mid_body_fails_the_run(
    fetch_app: taskcast.App, server: SlowServer
) -> None:
    server.reply = Reply(body=b"w" * 10, length=1000, hang_up=True)
    done = await fetch_app.wait((await fetch_app.submit("http.fetch", url=server.url)).id, 10)
    assert done.state is taskcast.RunState.FAILED
    assert done.error["type"] == "RemoteProtocolError"
