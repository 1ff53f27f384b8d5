"""A test reads the first event of an endless SSE stream (sse-starlette, httpx-sse) and stops.

Breaking out of ``aiter_sse()`` leaves that generator suspended: its cleanup runs
later in another task, or never. The guard blames the generator the test
iterated, not the ones httpx and httpcore run inside it (``aiter_lines``,
``aiter_raw``...), which the test cannot reach, nor sse-starlette's per-loop
``_shutdown_watcher`` task. The fix closes the generator with ``aclosing``.
"""

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from httpx_sse import aconnect_sse
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.routing import Route


async def ticks() -> AsyncIterator[dict[str, str]]:
    n = 0
    while True:
        n += 1
        yield {"data": str(n)}
        await asyncio.sleep(0.01)


async def stream(request: object) -> EventSourceResponse:
    return EventSourceResponse(ticks())


@pytest.fixture
async def url() -> AsyncIterator[str]:
    sock = socket.create_server(("127.0.0.1", 0))
    app = Starlette(routes=[Route("/events", stream)])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    # The socket listens already: a client can connect before uvicorn accepts.
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/events"
    server.should_exit = True
    await serving
    sock.close()


async def test_buggy(url: str) -> None:
    async with httpx.AsyncClient() as client, aconnect_sse(client, "GET", url) as source:
        async for event in source.aiter_sse():  # BUG: never closed
            assert event.data == "1"
            break


async def test_fixed(url: str) -> None:
    async with httpx.AsyncClient() as client, aconnect_sse(client, "GET", url) as source:
        async with contextlib.aclosing(source.aiter_sse()) as events:
            async for event in events:
                assert event.data == "1"
                break
