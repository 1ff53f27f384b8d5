"""GET /changes: every run's lifecycle changes as one event stream (what the dashboard reads).

The HTTP tests are plain (sync) ones: a /changes stream never ends by itself, and reading it
with the sync client keeps the async generators of an abandoned async stream out of the picture.
"""

import json
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskcast import App
from taskcast.builtin import register_demo_tasks
from taskcast.server.streams import changes
from taskcast.server.streams.changes import RunChanges

from .live import LiveServer, live_server

TOKEN = "changes-token"
STATES = {
    "scheduled",
    "queued",
    "running",
    "completed",
    "failed",
    "cancelled",
    "timed_out",
    "interrupted",
}


@pytest.fixture
def api(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=20) as client:
        yield client


def submit(api: httpx.Client, task: str, **args: object) -> str:
    response = api.post("/runs", json={"task": task, "args": args})
    assert response.status_code == 201, response.text
    run_id: str = response.json()["id"]
    return run_id


def read_until(lines: Iterator[str], done: Callable[[str, Any], bool]) -> list[tuple[str, Any]]:
    """The next events as (type, data), up to the first for which ``done`` is true."""
    seen: list[tuple[str, Any]] = []
    kind = ""
    for line in lines:
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: "):
            seen.append((kind, json.loads(line.removeprefix("data: "))))
            if done(*seen[-1]):
                break
    return seen


def is_counts(kind: str, data: Any) -> bool:
    return kind == "counts"


def wait_ended(api: httpx.Client, run_id: str) -> None:
    """Read the run's event stream to its end: the server closes it after the terminal event."""
    with api.stream("GET", f"/runs/{run_id}/events") as response:
        assert response.status_code == 200
        for _ in response.iter_lines():
            pass


def test_the_stream_starts_with_the_counts_by_state(api: httpx.Client) -> None:
    for run_id in (submit(api, "demo.fail"), submit(api, "demo.fail")):
        wait_ended(api, run_id)  # on Redis a worker fails them some time after the submit
    with api.stream("GET", "/changes") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        [(kind, counts)] = read_until(response.iter_lines(), lambda kind, data: True)
    assert kind == "counts"
    assert set(counts) == STATES
    assert counts["failed"] == 2


def test_each_lifecycle_event_of_a_run_is_one_change_with_its_seq_and_state(
    api: httpx.Client,
) -> None:
    with api.stream("GET", "/changes") as response:
        lines = response.iter_lines()
        read_until(lines, is_counts)  # subscribed from here on
        run_id = submit(api, "demo.count", n=2, delay=0)
        seen = read_until(lines, lambda kind, data: kind == "run" and data["type"] == "completed")
    mine = [data for kind, data in seen if kind == "run" and data["id"] == run_id]
    # progress events are not changes: seq jumps over them
    assert [(c["type"], c["seq"], c["state"]) for c in mine] == [
        ("queued", 1, "queued"),
        ("started", 2, "running"),
        ("completed", 5, "completed"),
    ]
    assert mine[0]["task"] == "demo.count"
    assert mine[1]["attempt"] == 1


def test_counts_follow_the_changes(api: httpx.Client) -> None:
    with api.stream("GET", "/changes") as response:
        lines = response.iter_lines()
        read_until(lines, is_counts)
        submit(api, "demo.fail")
        seen = read_until(lines, lambda kind, data: kind == "counts" and data["failed"] == 1)
    assert seen[-1][1]["failed"] == 1


def test_the_stream_ends_with_shutdown_when_the_server_stops(tmp_path: Path) -> None:
    with (
        live_server(tmp_path, "--grace", "0") as server,
        httpx.Client(base_url=server.url, timeout=20) as client,
        client.stream("GET", "/changes") as stream,
    ):
        lines = stream.iter_lines()
        assert next(lines) == "retry: 2000"
        server.signal(signal.SIGTERM)
        rest = list(lines)  # ends: the server closed the stream
        assert "event: shutdown" in rest
        assert server.wait(10) == 0


def test_with_a_token_the_stream_takes_it_as_a_query_parameter(tmp_path: Path) -> None:
    with (
        live_server(tmp_path, "--token", TOKEN) as server,
        httpx.Client(base_url=server.url, timeout=20) as client,
    ):
        assert client.get("/changes").status_code == 401
        with client.stream("GET", "/changes", params={"token": TOKEN}) as stream:
            assert stream.status_code == 200
            assert next(stream.iter_lines()) == "retry: 2000"


def test_with_a_token_the_dashboard_page_and_files_are_open_and_the_data_is_not(
    tmp_path: Path,
) -> None:
    with (
        live_server(tmp_path, "--token", TOKEN) as server,
        httpx.Client(base_url=server.url, timeout=20) as client,
    ):
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert client.get("/dashboard/dashboard.js").status_code == 200
        assert client.get("/dashboard/dashboard.css").status_code == 200
        assert client.get("/dashboard/nothing.js").status_code == 404
        assert client.get("/runs").status_code == 401


async def test_a_stream_that_falls_behind_is_reset_instead_of_queueing_without_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(changes, "MAX_PENDING", 4)
    app = App()
    register_demo_tasks(app)
    async with app:
        feed = RunChanges(app)
        feed.attach()
        with feed.subscribe() as pending:
            for _ in range(2):  # 3 changes each: 6 > 4
                run = await app.submit("demo.count", n=0)
                await app.wait(run.id, timeout=10)
            assert pending.overflowed  # the stream sends `reset`, then what came after it
            assert pending.count < 4
        assert feed.stream_count == 0
