"""Client, the blocking twin of AsyncClient, against a real server."""

import contextlib
import time
from collections.abc import Iterator

import pytest

from taskcast import Client, ConnectionFailed, Event, RunFinished, RunNotFound, RunState

from ..server.live import LiveServer
from .conftest import wait_for_open_streams


@pytest.fixture
def sync_client(server: LiveServer) -> Iterator[Client]:
    with Client(server.url, timeout=20) as client:
        yield client


def test_submit_events_and_wait_follow_a_run_to_its_end(sync_client: Client) -> None:
    run = sync_client.submit("demo.count", n=3, delay=0.01)
    events = list(sync_client.events(run.id))
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]
    assert all(isinstance(e, Event) and e.run_id == run.id for e in events)
    finished = sync_client.wait(run.id, timeout=30)
    assert finished.state is RunState.COMPLETED and finished.result == {"counted": 3}


def test_submit_with_get_and_runs(sync_client: Client) -> None:
    run = sync_client.submit_with("demo.count", {"n": 0}, id="sync-1", max_attempts=2)
    assert sync_client.get("sync-1").max_attempts == 2
    assert [r.id for r in sync_client.runs(task="demo.count")] == [run.id]


def test_sync_retry_and_runs_by_prefix(sync_client: Client) -> None:
    failed = sync_client.submit_with("demo.fail", id="sync-failed")
    sync_client.wait(failed.id, timeout=30)
    retried = sync_client.retry("sync-failed")
    assert retried.retry_of == "sync-failed"
    assert [r.id for r in sync_client.runs(prefix="sync-")] == ["sync-failed"]
    with pytest.raises(RunNotFound):
        sync_client.retry("sync-nothing")


def test_cancel_signal_and_tasks(sync_client: Client) -> None:
    waiting = sync_client.submit("demo.wait")
    sync_client.signal(waiting.id, "continue", [1, 2])
    assert sync_client.wait(waiting.id, timeout=30).result == [1, 2]
    assert sync_client.cancel(waiting.id) is False
    with pytest.raises(RunFinished):
        sync_client.signal(waiting.id, "continue")
    assert "demo.wait" in {task.name for task in sync_client.tasks()}


def test_sync_wait_raises_timeout_error_after_its_timeout(sync_client: Client) -> None:
    run = sync_client.submit("demo.wait")
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        sync_client.wait(run.id, timeout=0.5)
    # The server's keep-alive (0.5 s) or the timeout itself wakes the wait up.
    assert time.monotonic() - started < 10


def test_sync_errors_are_the_same_typed_errors(sync_client: Client) -> None:
    with pytest.raises(RunNotFound, match="no run with id 'nope'"):
        sync_client.get("nope")
    with pytest.raises(RunNotFound):
        list(sync_client.events("nope"))
    with Client("http://127.0.0.1:9") as unreachable, pytest.raises(ConnectionFailed):
        unreachable.runs()


def test_closing_sync_events_early_closes_the_stream(
    sync_client: Client, server: LiveServer
) -> None:
    run = sync_client.submit("demo.wait")
    with contextlib.closing(sync_client.events(run.id)) as events:
        assert next(events).type == "queued"
        wait_for_open_streams(server.url, 1)
    wait_for_open_streams(server.url, 0)
