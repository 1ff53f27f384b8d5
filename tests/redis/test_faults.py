"""Fault tests with real processes: workers killed (-9) or stopped (SIGTERM), Redis restarted,
cancels from an API node; watched over HTTP/SSE on the API node."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import aconnect_sse

import taskcast
from taskcast.events import TERMINAL_EVENT_TYPES

from ..conftest import redis_url_for
from ..redis_server import RedisServer
from ..server.live import live_server
from ..server.sse_client import Seen
from .processes import worker

APP = ("--app", "tests.redis.sample_app:app", "--no-demo")


async def _watch(
    client: httpx.AsyncClient, run_id: str, on_event: Callable[[str, Seen], None]
) -> list[Seen]:
    """Every event of the run's SSE stream on the API node, until the stream ends."""
    seen: list[Seen] = []
    async with aconnect_sse(client, "GET", f"/runs/{run_id}/events") as source:
        source.response.raise_for_status()
        async with contextlib.aclosing(source.aiter_sse()) as events:
            async for event in events:
                item = Seen(int(event.id), event.event, json.loads(event.data))
                seen.append(item)
                on_event(run_id, item)
    return seen


async def _submit(client: httpx.AsyncClient, task: str, **args: Any) -> str:
    response = await client.post("/runs", json={"task": task, "args": args})
    response.raise_for_status()
    run_id: str = response.json()["id"]
    return run_id


def _assert_one_clean_log(log: list[Seen]) -> None:
    assert [e.seq for e in log] == list(range(1, len(log) + 1)), [e.seq for e in log]
    terminal = [e for e in log if e.type in TERMINAL_EVENT_TYPES]
    assert len(terminal) == 1 and log[-1] is terminal[0], [e.type for e in log]


async def test_killing_a_worker_mid_run_loses_no_run_and_no_event(
    tmp_path: Path, redis_url: str
) -> None:
    with (
        live_server(tmp_path, "--no-worker", *APP, store=redis_url) as api_node,
        worker(tmp_path, redis_url, "--concurrency", "10", name="w1") as victim,
        worker(tmp_path, redis_url, "--concurrency", "10", name="w2") as survivor,
    ):
        on_victim: set[str] = set()
        ended: set[str] = set()
        victim_busy = asyncio.Event()

        def note(run_id: str, event: Seen) -> None:
            if event.type == "worker" and event.data["pid"] == victim.pid:
                on_victim.add(run_id)
            if event.type in TERMINAL_EVENT_TYPES:
                ended.add(run_id)
            if len(on_victim - ended) >= 3 and not victim_busy.is_set():
                # Three runs mid-way on the victim: kill it now, in this very callback (by the
                # time a waiting task resumed, one of them could have ended).
                victim.signal(signal.SIGKILL)
                victim_busy.set()

        async with httpx.AsyncClient(base_url=api_node.url, timeout=60) as client:
            ids = [await _submit(client, "steps", n=20, delay=0.05) for _ in range(50)]
            async with asyncio.TaskGroup() as group:
                watchers = [group.create_task(_watch(client, i, note)) for i in ids]
                async with asyncio.timeout(30):
                    await victim_busy.wait()
                victim.wait(10)
                killed = set(on_victim)
            for run_id, watcher in zip(ids, watchers, strict=True):
                log = watcher.result()
                _assert_one_clean_log(log)
                run = (await client.get(f"/runs/{run_id}")).json()
                assert run["state"] == "completed", (run_id, [e.type for e in log])
                assert log[-1].type == "completed"
                progress = [e.data["current"] for e in log if e.type == "progress"]
                assert progress[-20:] == list(range(1, 21))  # the last attempt ran to its end
            recovered = 0
            for run_id, watcher in zip(ids, watchers, strict=True):
                log = watcher.result()
                if run_id in killed and log[-1].data["result"]["pid"] != victim.pid:
                    recovered += 1
                    types = [e.type for e in log]
                    assert "interrupted" in types and "retrying" in types, types
                    run = (await client.get(f"/runs/{run_id}")).json()
                    assert run["attempt"] == 2
                    assert log[-1].data["result"]["pid"] == survivor.pid
            assert recovered >= 1  # the kill did catch runs mid-way, and they were re-delivered


async def test_a_worker_stopped_with_sigterm_hands_its_runs_back_at_once(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    url = redis_url_for(redis_server, visibility_timeout=60)  # only a hand-back is this fast
    with (
        live_server(tmp_path, "--no-worker", *APP, store=url) as api_node,
        worker(tmp_path, url, "--grace", "0", name="w1") as first,
    ):
        attempts: dict[str, list[int]] = {}
        held_by_first = asyncio.Event()
        back = asyncio.Event()

        def note(run_id: str, event: Seen) -> None:
            if event.type == "worker":
                attempts.setdefault(run_id, []).append(event.data["pid"])
                if sum(pid == first.pid for pids in attempts.values() for pid in pids) == 3:
                    held_by_first.set()
                if sum(len(pids) == 2 for pids in attempts.values()) == 3:
                    back.set()

        async with httpx.AsyncClient(base_url=api_node.url, timeout=60) as client:
            ids = [await _submit(client, "hold") for _ in range(3)]
            async with asyncio.TaskGroup() as group:
                watchers = [group.create_task(_watch(client, i, note)) for i in ids]
                async with asyncio.timeout(30):
                    await held_by_first.wait()
                with worker(tmp_path, url, name="w2") as second:
                    stopped_at = time.monotonic()
                    first.signal(signal.SIGTERM)
                    assert first.wait(15) == 0
                    async with asyncio.timeout(10):
                        await back.wait()
                    assert time.monotonic() - stopped_at < 10  # not the 60 s timeout
                    for run_id in ids:
                        assert attempts[run_id] == [first.pid, second.pid]
                        reply = await client.post(f"/runs/{run_id}/signals/release", json={})
                        assert reply.status_code == 202
                    for watcher in watchers:  # the runs end while their worker lives
                        await watcher
            assert "handed 3 unfinished run(s) back" in first.output()
            for watcher in watchers:
                log = watcher.result()
                _assert_one_clean_log(log)
                assert [e.type for e in log] == [
                    "queued", "started", "worker", "shutdown", "retrying", "started", "worker",
                    "signal", "step", "completed",  # step: the signal taken, recorded
                ]  # fmt: skip


async def test_a_cancel_on_the_api_node_stops_the_run_on_the_worker_within_a_second(
    tmp_path: Path, redis_url: str
) -> None:
    with (
        live_server(tmp_path, "--no-worker", *APP, store=redis_url) as api_node,
        worker(tmp_path, redis_url) as busy,
    ):
        holding = asyncio.Event()
        cancelled_at: list[float] = []

        def note(run_id: str, event: Seen) -> None:
            if event.type == "worker" and event.data["pid"] == busy.pid:
                holding.set()
            if event.type == "cancelled":
                cancelled_at.append(time.monotonic())

        async with httpx.AsyncClient(base_url=api_node.url, timeout=60) as client:
            run_id = await _submit(client, "hold")
            async with asyncio.TaskGroup() as group:
                watcher = group.create_task(_watch(client, run_id, note))
                async with asyncio.timeout(30):
                    await holding.wait()
                asked_at = time.monotonic()
                reply = await client.post(f"/runs/{run_id}/cancel", json={"reason": "stop"})
                assert reply.status_code == 202
            assert cancelled_at and cancelled_at[0] - asked_at < 1.0
            assert watcher.result()[-1].data["reason"] == "stop"
            run = (await client.get(f"/runs/{run_id}")).json()
            assert run["state"] == "cancelled"


async def test_workers_reconnect_and_carry_on_when_redis_restarts(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", persistent=True)
    server.start()
    try:
        url = f"{server.url}?visibility_timeout=30&reconnect_timeout=60"
        with worker(tmp_path, url, "--concurrency", "20") as busy:
            api = taskcast.App(url, worker=False)
            api.task(name="steps")(_steps_signature)
            async with api:
                before = [
                    (await api.submit_with("steps", {"n": 40, "delay": 0.05})).id for _ in range(10)
                ]
                await _until_progress(api, before[-1])
                server.stop()  # SIGTERM: with appendfsync always, nothing acknowledged is lost
                server.start()
                after = [(await api.submit("steps", n=2, delay=0.01)).id for _ in range(5)]
                for run_id in [*before, *after]:
                    done = await api.wait(run_id, timeout=60)
                    assert done.state is taskcast.RunState.COMPLETED, (run_id, done)
                    log = [event async for event in api.events(run_id)]
                    assert [e.seq for e in log] == list(range(1, len(log) + 1))
                    assert sum(e.is_terminal for e in log) == 1
            assert busy.process.poll() is None  # the worker lived through it
    finally:
        server.stop()


async def _steps_signature(n: int = 10, delay: float = 0.05) -> None:
    """The API node only needs the task's parameters to validate submits."""


async def _until_progress(app: taskcast.App, run_id: str) -> None:
    async with contextlib.aclosing(app.events(run_id)) as events:
        async for event in events:
            if event.type == "progress":
                return


async def test_while_redis_is_away_writes_get_503_with_retry_after_and_health_says_why(
    tmp_path: Path,
) -> None:
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    try:
        store = f"{redis.url}?reconnect_timeout=1"
        with live_server(tmp_path, *APP, store=store) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as api:
                await _submit(api, "steps", n=1, delay=0)
                health = await api.get("/health")
                assert health.status_code == 200 and health.json()["counts"] == "deployment"
                redis.stop()
                refused = await api.post("/runs", json={"task": "steps", "args": {"n": 1}})
                assert refused.status_code == 503, refused.text
                assert refused.json()["error"] == "store_unavailable"
                assert int(refused.headers["retry-after"]) >= 1
                health = await api.get("/health")
                assert health.status_code == 503
                assert health.json()["status"] == "store_unavailable"
                assert "Redis unreachable" in health.json()["reason"]
                redis.start()
                async with asyncio.timeout(30):
                    while (await api.get("/health")).status_code != 200:  # noqa: ASYNC110 (remote)
                        await asyncio.sleep(0.1)
                await _submit(api, "steps", n=1, delay=0)
    finally:
        redis.stop()
