"""SIGTERM/SIGINT with open streams, 503 while draining, a second signal, restart and recovery."""

import asyncio
import contextlib
import re
import signal
import time
from pathlib import Path

import httpx
import pytest
from httpx_sse import aconnect_sse

from .live import LiveServer, live_server
from .sse_client import read_events

STREAMS = 200
GRACE, SHUTDOWN_TIMEOUT = 1.0, 1.0
SLACK = 2.0
"""Seconds allowed, on top of the server's bound, for the client's view of it: 200 streams read
by one client process, interpreter teardown, and a busy CI machine."""


async def wait_draining(api: httpx.AsyncClient) -> None:
    async with asyncio.timeout(10):
        while (await api.get("/health")).status_code != 503:  # noqa: ASYNC110 (remote)
            await asyncio.sleep(0.02)  # polled: the signal is handled on the server's own time


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_signal_ends_every_stream_with_shutdown_and_exits_0_in_time(
    server: LiveServer, signum: int
) -> None:
    limits = httpx.Limits(max_connections=STREAMS + 10)
    async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as api:
        run_ids = [
            (await api.post("/runs", json={"task": "demo.wait"})).json()["id"] for _ in range(4)
        ]
        all_started = asyncio.Event()
        started = 0

        async def watch(run_id: str) -> list[str]:
            nonlocal started
            types = []
            async with aconnect_sse(api, "GET", f"/runs/{run_id}/events") as source:
                async for event in source.aiter_sse():
                    types.append(event.event)
                    if event.event == "started":
                        started += 1
                        if started == STREAMS:
                            all_started.set()
            return types

        async with asyncio.TaskGroup() as tasks:
            watchers = [tasks.create_task(watch(run_ids[i % 4])) for i in range(STREAMS)]
            await all_started.wait()
            began = time.monotonic()
            server.signal(signum)
        streams_ended = time.monotonic() - began
    code = await asyncio.to_thread(server.wait, 30)
    exited = time.monotonic() - began
    assert code == 0, server.output()
    assert [w.result()[-1] for w in watchers] == ["shutdown"] * STREAMS
    assert streams_ended < GRACE + SHUTDOWN_TIMEOUT + 1 + SLACK
    assert exited < GRACE + SHUTDOWN_TIMEOUT + 1 + SLACK
    output = server.output()
    assert "did not finish before shutdown: interrupted" in output
    assert "4 interrupted" in output
    found = re.search(r"taskcast stopped: shutdown in ([0-9.]+)s", output)
    assert found and float(found.group(1)) < GRACE + SHUTDOWN_TIMEOUT, "the server's own time"


async def test_new_runs_get_503_while_draining(tmp_path: Path) -> None:
    with live_server(tmp_path, "--grace", "20") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as api:
            run_id = (await api.post("/runs", json={"task": "demo.wait"})).json()["id"]
            async with aconnect_sse(api, "GET", f"/runs/{run_id}/events") as source:
                async with contextlib.aclosing(source.aiter_sse()) as events:
                    async for event in events:
                        if event.event == "started":
                            break
                    server.signal(signal.SIGTERM)
                    await wait_draining(api)
                    refused = await api.post("/runs", json={"task": "demo.count"})
                    assert refused.status_code == 503
                    assert refused.json()["error"] == "shutting_down"
                    # A running run may still finish during its grace; then the server exits.
                    await api.post(f"/runs/{run_id}/signals/continue", json="done")
                    rest = [event.event async for event in events]
                    assert rest[-1] == "completed"
        assert await asyncio.to_thread(server.wait, 10) == 0


async def test_a_second_signal_exits_at_once(tmp_path: Path) -> None:
    with live_server(tmp_path, "--grace", "60") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as api:
            run_id = (await api.post("/runs", json={"task": "demo.wait"})).json()["id"]
            await read_events(api, run_id, until="started")
            server.signal(signal.SIGTERM)
            await wait_draining(api)
            began = time.monotonic()
            server.signal(signal.SIGTERM)
            assert await asyncio.to_thread(server.wait, 10) == 128 + signal.SIGTERM
            assert time.monotonic() - began < SLACK


async def test_the_next_serve_resumes_interrupted_runs(tmp_path: Path) -> None:
    with live_server(tmp_path, "--grace", "0", "--shutdown-timeout", "1") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as api:
            submitted = await api.post(
                "/runs", json={"task": "demo.count", "args": {"n": 3, "delay": 0.5}}
            )
            run_id = submitted.json()["id"]
            await read_events(api, run_id, until="progress")
            server.signal(signal.SIGTERM)
            assert await asyncio.to_thread(server.wait, 10) == 0
    with live_server(tmp_path, name="restarted") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=20) as api:
            events = await read_events(api, run_id)
            types = [e.type for e in events]
            assert "shutdown" in types and "retrying" in types
            assert types[-1] == "completed"
            run = (await api.get(f"/runs/{run_id}")).json()
            assert run["state"] == "completed" and run["attempt"] == 2


async def test_a_task_that_ignores_cancellation_does_not_hold_the_process(tmp_path: Path) -> None:
    args = ("--app", "tests.server.sample_app:app", "--grace", "0", "--shutdown-timeout", "0.5")
    with live_server(tmp_path, *args) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as api:
            run_id = (await api.post("/runs", json={"task": "sample.stubborn"})).json()["id"]
            events = await read_events(api, run_id, until="log")
            assert events[-1].data["message"] == "started"
            began = time.monotonic()
            server.signal(signal.SIGTERM)
            assert await asyncio.to_thread(server.wait, 10) == 0
            assert time.monotonic() - began < 0.5 + 1 + SLACK
    output = server.output()
    assert f"run {run_id} ignored cancellation during shutdown: interrupted" in output
    assert "leaving 1 run(s) that ignore cancellation behind" in output
