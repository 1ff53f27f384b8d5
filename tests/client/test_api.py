"""AsyncClient against a real server: every method of the API, as the in-process App has it."""

import asyncio
import contextlib
import signal
from pathlib import Path

import pytest

import taskcast
from taskcast import AsyncClient, Event, Run, RunState

from ..server.live import LiveServer, live_server
from .conftest import wait_for_open_streams


async def test_submit_returns_the_queued_run(client: AsyncClient) -> None:
    run = await client.submit("demo.count", n=1, delay=0)
    assert isinstance(run, Run)
    assert (run.task, run.args, run.state) == ("demo.count", {"n": 1, "delay": 0}, "queued")


async def test_submit_with_sets_the_run_options(client: AsyncClient) -> None:
    run = await client.submit_with(
        "demo.count", {"n": 0}, id="nightly-1", timeout=5, max_attempts=4
    )
    assert (run.id, run.timeout, run.max_attempts) == ("nightly-1", 5, 4)


async def test_submit_with_an_existing_id_returns_that_run(client: AsyncClient) -> None:
    first = await client.submit_with("demo.count", {"n": 0}, id="once")
    again = await client.submit_with("demo.count", {"n": 5}, id="once")
    assert again.created_at == first.created_at and again.args == {"n": 0}


async def test_get_returns_the_run_as_stored(client: AsyncClient) -> None:
    run = await client.submit("demo.count", n=2, delay=0)
    await client.wait(run.id, timeout=30)
    stored = await client.get(run.id)
    assert stored.state is RunState.COMPLETED
    assert stored.result == {"counted": 2} and stored.attempt == 1 and stored.last_seq == 5
    assert stored.created_at <= stored.started_at <= stored.finished_at  # type: ignore[operator]


async def test_runs_lists_newest_first_filtered_by_state_and_task(client: AsyncClient) -> None:
    counted = await client.submit("demo.count", n=0)
    waiting = await client.submit("demo.wait")
    await client.wait(counted.id, timeout=30)
    assert [r.id for r in await client.runs()] == [waiting.id, counted.id]
    assert [r.id for r in await client.runs(task="demo.count")] == [counted.id]
    assert [r.id for r in await client.runs(state=RunState.COMPLETED)] == [counted.id]
    assert [r.id for r in await client.runs(limit=1)] == [waiting.id]
    assert [r.id for r in await client.runs(before=waiting.id)] == [counted.id]


async def test_runs_finds_ids_by_prefix(client: AsyncClient) -> None:
    for run_id in ("batch-1", "batch-2", "other-1"):
        await client.submit_with("demo.count", {"n": 0}, id=run_id)
    assert [r.id for r in await client.runs(prefix="batch-")] == ["batch-2", "batch-1"]
    assert [r.id for r in await client.runs(prefix="batch-", before="batch-2")] == ["batch-1"]


async def test_retry_starts_a_new_run_linked_to_the_cancelled_one(client: AsyncClient) -> None:
    old = await client.submit("demo.wait")
    await client.cancel(old.id)
    await client.wait(old.id, timeout=30)
    retried = await client.retry(old.id)
    assert (retried.task, retried.args, retried.retry_of) == ("demo.wait", {}, old.id)
    assert (await client.get(retried.id)).retry_of == old.id
    with pytest.raises(taskcast.NotRetryable, match=r"is (queued|running)") as refused:
        await client.retry(retried.id)  # it waits for a signal: not over
    assert refused.value.details["run_id"] == retried.id
    await client.cancel(retried.id)


async def test_cancel_says_true_for_a_run_that_will_end_cancelled(client: AsyncClient) -> None:
    run = await client.submit("demo.wait")
    assert await client.cancel(run.id, reason="not needed") is True
    cancelled = await client.wait(run.id, timeout=30)
    assert cancelled.state is RunState.CANCELLED


async def test_cancel_says_false_for_a_finished_or_unknown_run(client: AsyncClient) -> None:
    run = await client.submit("demo.count", n=0)
    await client.wait(run.id, timeout=30)
    assert await client.cancel(run.id) is False
    assert await client.cancel("no-such-run") is False


async def test_cancel_reason_reaches_the_cancelled_event(client: AsyncClient) -> None:
    run = await client.submit("demo.wait")
    await client.cancel(run.id, reason="user pressed stop")
    events = [e async for e in client.events(run.id)]
    assert events[-1].type == "cancelled" and events[-1].data["reason"] == "user pressed stop"


async def test_signal_hands_its_data_to_the_task(client: AsyncClient) -> None:
    run = await client.submit("demo.wait")
    await client.signal(run.id, "continue", {"answer": 42})
    assert (await client.wait(run.id, timeout=30)).result == {"answer": 42}


async def test_tasks_lists_the_registered_tasks_with_their_parameters(client: AsyncClient) -> None:
    tasks = {task.name: task for task in await client.tasks()}
    assert {"demo.count", "demo.fail", "demo.wait"} <= set(tasks)
    count = tasks["demo.count"]
    assert set(count.parameters["properties"]) == {"n", "delay"} and count.max_attempts == 3


async def test_wait_returns_the_finished_run(client: AsyncClient) -> None:
    run = await client.submit("demo.fail", message="boom")
    failed = await client.wait(run.id, timeout=30)
    assert failed.state is RunState.FAILED and failed.error == {
        "type": "DemoFailure",
        "message": "boom",
    }


async def test_wait_raises_timeout_error_after_its_timeout(client: AsyncClient) -> None:
    run = await client.submit("demo.wait")
    with pytest.raises(TimeoutError):
        await client.wait(run.id, timeout=0.5)


async def test_events_replay_the_log_then_follow_it_to_the_terminal_event(
    client: AsyncClient,
) -> None:
    run = await client.submit("demo.count", n=3, delay=0.05)
    events = [event async for event in client.events(run.id)]
    assert [e.type for e in events] == ["queued", "started", *["progress"] * 3, "completed"]
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]
    assert all(isinstance(e, Event) and e.run_id == run.id for e in events)
    assert events[2].data == {"current": 1, "total": 3, "message": "counted 1 of 3"}


async def test_events_start_after_the_given_seq(client: AsyncClient) -> None:
    run = await client.submit("demo.count", n=3, delay=0)
    await client.wait(run.id, timeout=30)
    assert [e.seq async for e in client.events(run.id, after=4)] == [5, 6]


async def test_events_after_the_terminal_event_end_at_once(client: AsyncClient) -> None:
    run = await client.submit("demo.count", n=0)
    finished = await client.wait(run.id, timeout=30)
    assert [e async for e in client.events(run.id, after=finished.last_seq)] == []


async def test_breaking_out_of_events_closes_the_stream(
    client: AsyncClient, server: LiveServer
) -> None:
    run = await client.submit("demo.wait")
    async with contextlib.aclosing(client.events(run.id)) as events:
        async for _ in events:
            break
    # The server sees the client go: its count of open streams falls back to 0.
    await asyncio.to_thread(wait_for_open_streams, server.url, 0)


async def test_events_are_the_very_events_the_engine_stored(
    client: AsyncClient, server: LiveServer, tmp_path: Path
) -> None:
    run = await client.submit("demo.count", n=3, delay=0.01)
    remote = [event async for event in client.events(run.id)]
    server.signal(signal.SIGTERM)
    assert await asyncio.to_thread(server.wait, 30) == 0
    async with taskcast.App(store=f"sqlite:///{tmp_path / 'taskcast.db'}") as app:
        stored = [event async for event in app.events(run.id)]
    assert remote == stored  # run_id, seq, type, data and at, to the bit


async def test_the_client_reaches_a_server_on_a_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "taskcast.sock")
    with live_server(tmp_path, "--uds", path) as server:
        assert server.uds == path
        async with AsyncClient(uds=path) as client:
            run = await client.submit("demo.count", n=1, delay=0)
            assert [e.type async for e in client.events(run.id)][-1] == "completed"
