"""Durable steps across real process stops: a ``taskcast serve`` killed (-9) or stopped (SIGTERM,
grace 0) after step 2 of 3 resumes the run after a restart without calling steps 1 and 2 again;
a retry after a failure does the same; a body changed by a deploy fails with ``StepMismatch``.
The steps count their calls in a file (``tests/durable_app.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from .live import live_server
from .sse_client import Seen, read_events

APP = ("--app", "tests.server.steps_app:app", "--no-demo")


def plan(tmp_path: Path, text: str) -> dict[str, str]:
    """The arguments of a ``durable.plan`` run: a fresh call counter and the plan ``text``."""
    (tmp_path / "plan.txt").write_text(text)
    return {"counter": str(tmp_path / "calls.txt"), "plan": str(tmp_path / "plan.txt")}


def calls(tmp_path: Path) -> list[str]:
    path = tmp_path / "calls.txt"
    return path.read_text().split() if path.exists() else []


async def submit(client: httpx.AsyncClient, args: dict[str, str]) -> str:
    response = await client.post("/runs", json={"task": "durable.plan", "args": args})
    response.raise_for_status()
    run_id: str = response.json()["id"]
    return run_id


async def until_steps(client: httpx.AsyncClient, run_id: str, count: int) -> list[Seen]:
    """Read the run's stream until ``count`` steps are recorded in its log."""
    seen: list[Seen] = []
    async with asyncio.timeout(30):
        async with aconnect_sse(client, "GET", f"/runs/{run_id}/events") as source:
            async with contextlib.aclosing(source.aiter_sse()) as events:
                async for event in events:
                    seen.append(Seen(int(event.id), event.event, json.loads(event.data)))
                    if sum(1 for e in seen if e.type == "step") == count:
                        return seen
    raise AssertionError(f"the stream ended with {[e.type for e in seen]}")


async def finished(url: str, run_id: str) -> tuple[dict[str, Any], list[Seen]]:
    """The run once it has ended, and its whole log."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        async with asyncio.timeout(30):
            log = await read_events(client, run_id)
        run = (await client.get(f"/runs/{run_id}")).json()
    return run, log


async def stop_after_two_steps(tmp_path: Path, signum: int) -> tuple[dict[str, Any], list[Seen]]:
    """Run a plan of three steps, stop the server with ``signum`` after step 2, restart it
    on the same store and return the run and its log once it has ended."""
    args = plan(tmp_path, "one two hold three")
    with live_server(tmp_path, *APP, "--grace", "0") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            run_id = await submit(client, args)
            await until_steps(client, run_id, 2)
        server.signal(signum)
        code = await asyncio.to_thread(server.wait, 30)
        assert code == (0 if signum == signal.SIGTERM else -signal.SIGKILL), server.output()
    assert calls(tmp_path) == ["one", "two"]
    with live_server(tmp_path, *APP, name="restarted") as server:
        return await finished(server.url, run_id)


async def test_a_run_killed_after_step_two_resumes_at_step_three(tmp_path: Path) -> None:
    run, log = await stop_after_two_steps(tmp_path, signal.SIGKILL)
    assert run["state"] == "completed", run
    assert run["result"] == ["one done", "two done", "three done"]
    assert calls(tmp_path) == ["one", "two", "three"]  # steps 1 and 2 were not called again
    records = [e.data for e in log if e.type == "step"]
    assert [(r["name"], r["attempt"]) for r in records] == [("one", 1), ("two", 1), ("three", 2)]


async def test_a_run_stopped_by_sigterm_without_grace_resumes_at_step_three(
    tmp_path: Path,
) -> None:
    run, log = await stop_after_two_steps(tmp_path, signal.SIGTERM)
    assert run["state"] == "completed", run
    assert run["result"] == ["one done", "two done", "three done"]
    assert calls(tmp_path) == ["one", "two", "three"]
    assert "shutdown" in [e.type for e in log]


async def test_a_run_retried_after_a_failure_replays_its_steps(tmp_path: Path) -> None:
    args = plan(tmp_path, "one two crash three")
    with live_server(tmp_path, *APP) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            run_id = await submit(client, args)
        run, log = await finished(server.url, run_id)
    assert run["state"] == "completed", run
    assert run["attempt"] == 2
    assert run["result"] == ["one done", "two done", "three done"]
    assert calls(tmp_path) == ["one", "two", "three"]
    assert [e.type for e in log].count("retrying") == 1


async def test_a_body_changed_by_a_deploy_fails_with_step_mismatch(tmp_path: Path) -> None:
    args = plan(tmp_path, "one two hold three")
    with live_server(tmp_path, *APP, "--grace", "0") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            run_id = await submit(client, args)
            await until_steps(client, run_id, 2)
        server.signal(signal.SIGKILL)
        await asyncio.to_thread(server.wait, 30)
    (tmp_path / "plan.txt").write_text("one deux hold three")  # the new code asks otherwise
    with live_server(tmp_path, *APP, name="restarted") as server:
        run, _ = await finished(server.url, run_id)
    assert run["state"] == "failed", run
    assert run["error"]["type"] == "StepMismatch"
    assert "'two'" in run["error"]["message"] and "'deux'" in run["error"]["message"]
    assert calls(tmp_path) == ["one", "two"]  # nothing ran under the wrong record


async def test_get_run_lists_its_steps_with_their_times(tmp_path: Path) -> None:
    args = plan(tmp_path, "one two crash three")
    with live_server(tmp_path, *APP) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            run_id = await submit(client, args)
        run, _ = await finished(server.url, run_id)
    steps = run["steps"]
    assert [(s["name"], s["kind"], s["state"], s["attempt"]) for s in steps] == [
        ("one", "step", "completed", 1),
        ("two", "step", "completed", 1),
        ("three", "step", "completed", 2),
    ]
    assert [s["replayed"] for s in steps] == [True, True, False]
    assert [s["index"] for s in steps] == [0, 1, 2]
    for step in steps:
        assert run["created_at"] <= step["started_at"] <= step["finished_at"]
        assert step["duration"] == step["finished_at"] - step["started_at"]
