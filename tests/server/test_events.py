"""GET /runs/{id}/events: SSE framing, replay, resume, fan-out, keep-alive, disconnects."""

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from httpx_sse import aconnect_sse

from .live import LiveServer
from .sse_client import read_events


@pytest.fixture
async def api(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
        yield client


async def submit(api: httpx.AsyncClient, task: str, **args: object) -> str:
    response = await api.post("/runs", json={"task": task, "args": args})
    assert response.status_code == 201, response.text
    run_id: str = response.json()["id"]
    return run_id


async def test_a_stream_replays_the_log_and_closes_after_the_terminal_event(
    api: httpx.AsyncClient,
) -> None:
    run_id = await submit(api, "demo.count", n=3, delay=0)
    events = await read_events(api, run_id)
    assert [e.type for e in events] == ["queued", "started", *["progress"] * 3, "completed"]
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]
    assert events[2].data == {"current": 1, "total": 3, "message": "counted 1 of 3"}
    assert events[-1].data["result"] == {"counted": 3}


async def test_stream_headers_and_framing(api: httpx.AsyncClient) -> None:
    run_id = await submit(api, "demo.count", n=1, delay=0)
    async with api.stream("GET", f"/runs/{run_id}/events") as response:
        body = (await response.aread()).decode()
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert re.match(
        r'retry: 2000\nid: 1\nevent: queued\nat: \d+\.\d+\ndata: \{"task":"demo.count"\}\n\n', body
    )


async def test_last_event_id_resumes_with_no_gap_and_no_duplicate(api: httpx.AsyncClient) -> None:
    run_id = await submit(api, "demo.count", n=5, delay=0.05)
    first = await read_events(api, run_id, until="progress")
    rest = await read_events(api, run_id, headers={"Last-Event-ID": str(first[-1].seq)})
    assert [e.seq for e in first + rest] == list(range(1, 9))


async def test_after_resumes_a_page_reload(api: httpx.AsyncClient) -> None:
    run_id = await submit(api, "demo.count", n=2, delay=0)
    await read_events(api, run_id)
    events = await read_events(api, run_id, params={"after": 3})
    assert [e.seq for e in events] == [4, 5]


async def test_last_event_id_wins_over_after(api: httpx.AsyncClient) -> None:
    run_id = await submit(api, "demo.count", n=2, delay=0)
    await read_events(api, run_id)
    events = await read_events(api, run_id, params={"after": 1}, headers={"Last-Event-ID": "4"})
    assert [e.seq for e in events] == [5]


async def test_a_reconnect_at_the_terminal_event_gets_204_so_eventsource_stops(
    api: httpx.AsyncClient,
) -> None:
    run_id = await submit(api, "demo.count", n=1, delay=0)
    events = await read_events(api, run_id)
    response = await api.get(
        f"/runs/{run_id}/events", headers={"Last-Event-ID": str(events[-1].seq)}
    )
    assert response.status_code == 204


async def test_unknown_run_is_404_and_bad_last_event_id_is_422(api: httpx.AsyncClient) -> None:
    missing = await api.get("/runs/NOPE/events")
    assert missing.status_code == 404 and missing.json()["error"] == "run_not_found"
    run_id = await submit(api, "demo.count", n=0)
    bad = await api.get(f"/runs/{run_id}/events", headers={"Last-Event-ID": "abc"})
    assert bad.status_code == 422 and "Last-Event-ID" in bad.json()["message"]


async def test_three_watchers_see_the_same_log(api: httpx.AsyncClient) -> None:
    run_id = await submit(api, "demo.count", n=20, delay=0.01)
    logs = await asyncio.gather(*(read_events(api, run_id) for _ in range(3)))
    assert logs[0] == logs[1] == logs[2]
    assert [e.seq for e in logs[0]] == list(range(1, 24))


async def test_cancel_reaches_every_watcher(api: httpx.AsyncClient) -> None:
    run_id = await submit(api, "demo.wait")
    watching = asyncio.Event()
    started = 0

    async def watch() -> list[str]:
        nonlocal started
        types = []
        async with aconnect_sse(api, "GET", f"/runs/{run_id}/events") as source:
            async for event in source.aiter_sse():
                types.append(event.event)
                if event.event == "started":
                    started += 1
                    if started == 3:
                        watching.set()
        return types

    async with asyncio.TaskGroup() as tasks:
        watchers = [tasks.create_task(watch()) for _ in range(3)]
        await watching.wait()
        response = await api.post(f"/runs/{run_id}/cancel", json={"reason": "enough"})
        assert response.status_code == 202
    for watcher in watchers:
        assert watcher.result()[-1] == "cancelled"


async def test_an_idle_stream_gets_keep_alive_comments(api: httpx.AsyncClient) -> None:
    run_id = await submit(api, "demo.wait")
    async with api.stream("GET", f"/runs/{run_id}/events") as response:
        async with contextlib.aclosing(response.aiter_lines()) as lines:
            async for line in lines:
                if line.startswith(":"):
                    assert line == ": keep-alive"
                    break
    await api.post(f"/runs/{run_id}/cancel")


async def test_a_client_that_disconnects_is_noticed(api: httpx.AsyncClient) -> None:
    run_id = await submit(api, "demo.wait")
    await read_events(api, run_id, until="started")  # closes the stream mid-way
    async with asyncio.timeout(10):
        while (await api.get("/health")).json()["streams"] != 0:  # noqa: ASYNC110 (remote)
            await asyncio.sleep(0.05)  # polled: the server notices on its own time
    await api.post(f"/runs/{run_id}/cancel")
