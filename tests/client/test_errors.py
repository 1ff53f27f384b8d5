"""Errors from a real server become the in-process API's typed exceptions, with its message."""

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from taskcast import (
    AsyncClient,
    ConnectionFailed,
    InvalidArguments,
    InvalidRequest,
    QueueFull,
    RunFinished,
    RunNotFound,
    ServerError,
    ShuttingDown,
    Unauthorized,
    UnknownTask,
)

from ..server.live import LiveServer, live_server


async def test_an_unknown_task_raises_unknown_task_with_the_servers_message(
    client: AsyncClient,
) -> None:
    known = sorted(task.name for task in await client.tasks())
    with pytest.raises(UnknownTask) as caught:
        await client.submit("no.such.task")
    assert caught.value.message == UnknownTask("no.such.task", known).message
    assert caught.value.details == {"task": "no.such.task", "known": known}


async def test_bad_arguments_raise_invalid_arguments_naming_each_parameter(
    client: AsyncClient,
) -> None:
    with pytest.raises(InvalidArguments) as caught:
        await client.submit("demo.count", n="lots")
    assert "n: Input should be a valid integer" in caught.value.message
    assert [p["param"] for p in caught.value.details["problems"]] == ["n"]


async def test_a_bad_run_option_raises_invalid_request(client: AsyncClient) -> None:
    with pytest.raises(InvalidRequest, match="max_attempts"):
        await client.submit_with("demo.count", max_attempts=0)


async def test_an_unknown_run_raises_run_not_found(client: AsyncClient) -> None:
    with pytest.raises(RunNotFound, match="no run with id 'nope'"):
        await client.get("nope")


async def test_events_of_an_unknown_run_raise_run_not_found(client: AsyncClient) -> None:
    with pytest.raises(RunNotFound):
        [event async for event in client.events("nope")]


async def test_a_signal_to_a_finished_run_raises_run_finished(client: AsyncClient) -> None:
    run = await client.submit("demo.count", n=0)
    await client.wait(run.id, timeout=30)
    with pytest.raises(RunFinished) as caught:
        await client.signal(run.id, "continue")
    assert caught.value.message == RunFinished(run.id, "completed").message


@pytest.fixture
def small_queue(tmp_path: Path) -> Iterator[LiveServer]:
    """A server running one run at a time, with one waiting."""
    with live_server(tmp_path, "--app", "tests.server.sample_app:app") as server:
        yield server


async def test_a_full_queue_raises_queue_full_with_its_retry_after(
    small_queue: LiveServer,
) -> None:
    async with AsyncClient(small_queue.url) as client:
        await client.submit("demo.wait")  # running
        await client.submit("demo.wait")  # waiting: the queue is full
        with pytest.raises(QueueFull) as caught:
            await client.submit("demo.wait")
    assert caught.value.retry_after == 1.0
    assert "the queue is full (1 runs waiting)" in caught.value.message


@pytest.fixture
def slow_to_stop(tmp_path: Path) -> Iterator[LiveServer]:
    """A server that gives running runs a long grace when it stops."""
    with live_server(tmp_path, "--grace", "60") as server:
        yield server


def wait_until_draining(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, timeout=10) as http:
        while http.get("/health").status_code != 503:
            assert time.monotonic() < deadline, "the server never started to drain"
            time.sleep(0.05)  # polling another process, bounded by the deadline


async def test_a_stopping_server_raises_shutting_down(slow_to_stop: LiveServer) -> None:
    async with AsyncClient(slow_to_stop.url) as client:
        await client.submit("demo.wait")  # keeps the server in its grace period
        slow_to_stop.signal(signal.SIGTERM)
        await asyncio.to_thread(wait_until_draining, slow_to_stop.url)
        with pytest.raises(ShuttingDown, match="shutting down"):
            await client.submit("demo.count")


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(tmp_path, "--token", "s3cret") as server:
        yield server


async def test_a_missing_token_raises_unauthorized(guarded: LiveServer) -> None:
    async with AsyncClient(guarded.url) as client:
        with pytest.raises(Unauthorized, match="no bearer token was sent"):
            await client.runs()


async def test_the_token_is_sent_with_every_request_and_stream(guarded: LiveServer) -> None:
    async with AsyncClient(guarded.url, "s3cret") as client:
        run = await client.submit("demo.count", n=1, delay=0)
        assert [e.type async for e in client.events(run.id)][-1] == "completed"


async def test_an_unreachable_server_raises_connection_failed() -> None:
    async with AsyncClient("http://127.0.0.1:9") as client:
        with pytest.raises(
            ConnectionFailed, match=r"cannot reach taskcast at http://127\.0\.0\.1:9"
        ):
            await client.get("anything")


async def test_a_first_connect_of_events_that_fails_raises_connection_failed() -> None:
    async with AsyncClient("http://127.0.0.1:9") as client:
        with pytest.raises(ConnectionFailed, match="cannot reach"):
            [event async for event in client.events("anything")]


async def test_an_answer_of_another_kind_raises_server_error(server: LiveServer) -> None:
    async with AsyncClient(f"{server.url}/wrong/prefix") as client:
        with pytest.raises(ServerError) as caught:
            await client.get("anything")
    assert caught.value.status == 404 and caught.value.code == "not_found"
