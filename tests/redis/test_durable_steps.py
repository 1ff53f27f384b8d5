"""Durable steps on Redis: a worker killed (-9) after step 2 of 3; another worker takes the run
over after the visibility timeout and calls only step 3 (``tests/durable_app.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

import taskcast

from ..conftest import redis_url_for
from ..redis_server import RedisServer
from ..server.live import live_server
from ..server.sse_client import read_events
from ..server.test_durable_steps import calls, plan, submit, until_steps
from .processes import worker

APP = ("--app", "tests.redis.sample_app:app", "--no-demo")


async def test_a_worker_killed_after_step_two_leaves_only_step_three_to_its_successor(
    tmp_path: Path, redis_url: str
) -> None:
    args = plan(tmp_path, "one two hold three")
    with (
        live_server(tmp_path, "--no-worker", *APP, store=redis_url) as api_node,
        worker(tmp_path, redis_url, name="w1") as first,
        worker(tmp_path, redis_url, name="w2") as second,
    ):
        async with httpx.AsyncClient(base_url=api_node.url, timeout=30) as client:
            run_id = await submit(client, args)
            seen = await until_steps(client, run_id, 2)
            (ran,) = [e.data["pid"] for e in seen if e.type == "worker"]
            victim, survivor = (first, second) if ran == first.pid else (second, first)
            victim.signal(signal.SIGKILL)
            await asyncio.to_thread(victim.wait, 10)
            async with asyncio.timeout(60):
                log = await read_events(client, run_id)
            run = (await client.get(f"/runs/{run_id}")).json()
    assert run["state"] == "completed", (run, [e.type for e in log])
    assert run["result"] == ["one done", "two done", "three done"]
    assert calls(tmp_path) == ["one", "two", "three"]
    workers = [e.data for e in log if e.type == "worker"]
    assert workers == [{"pid": victim.pid, "attempt": 1}, {"pid": survivor.pid, "attempt": 2}]
    records = [e.data for e in log if e.type == "step"]
    assert [(r["name"], r["attempt"]) for r in records] == [("one", 1), ("two", 1), ("three", 2)]


def _twice(app: taskcast.App) -> None:
    @app.task(name="twice", retries=1)
    async def twice(ctx: taskcast.Context) -> list[Any]:
        first = await ctx.signal("a")
        await ctx.emit("holding", {"attempt": ctx.attempt})
        if ctx.attempt == 1:
            await asyncio.Event().wait()  # its worker stops here
        return [first, await ctx.signal("a")]


async def test_a_redelivered_run_does_not_take_a_signal_it_took_before(
    redis_server: RedisServer,
) -> None:
    url = redis_url_for(redis_server, visibility_timeout=60)  # a hand-back is at once
    api = taskcast.App(url, worker=False)
    first, second = taskcast.App(url, grace=0.0), taskcast.App(url, grace=0.0)
    for app in (api, first, second):
        _twice(app)
    async with api:
        async with first:
            run = await api.submit("twice")
            await api.signal(run.id, "a", "first")
            await _until(api, run.id, lambda e: e.type == "holding")
        async with second:  # re-delivered with every signal of its log, "first" included
            await _until(api, run.id, lambda e: e.type == "holding" and e.data["attempt"] == 2)
            await api.signal(run.id, "a", "second")
            done = await api.wait(run.id, timeout=30)
    assert done.state is taskcast.RunState.COMPLETED, done.error
    assert done.result == ["first", "second"]


async def _until(app: taskcast.App, run_id: str, found: Callable[[taskcast.Event], bool]) -> None:
    async with asyncio.timeout(30), contextlib.aclosing(app.events(run_id)) as events:
        async for event in events:
            if found(event):
                return
    raise AssertionError(f"run {run_id} ended first")
