"""Time and order over HTTP (a real ``taskcast serve``): start times, priorities, schedules and
what a run waits for; bad input is a 422 naming the field, and changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from ..server.live import LiveServer, live_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    directory = tmp_path_factory.mktemp("server")
    args = ("--app", "tests.timeorder.sample_app:app", "--grace", "0", "--shutdown-timeout", "1")
    with live_server(directory, *args) as started:
        yield started


@pytest.fixture
def api(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def submit(api: httpx.Client, **body: Any) -> httpx.Response:
    return api.post("/runs", json={"task": "demo.count", "args": {"n": 0}, **body})


def wait(api: httpx.Client, run_id: str) -> dict[str, Any]:
    """Read the run's event stream to its end, then the run."""
    with api.stream("GET", f"/runs/{run_id}/events") as stream:
        for _ in stream.iter_lines():
            pass
    run: dict[str, Any] = api.get(f"/runs/{run_id}").json()
    return run


def test_a_delayed_run_is_scheduled_with_its_start_time(api: httpx.Client) -> None:
    response = submit(api, delay=3600, priority=3)
    assert response.status_code == 201, response.text
    run = response.json()
    assert (run["state"], run["priority"]) == ("scheduled", 3)
    assert run["run_at"] == pytest.approx(run["created_at"] + 3600, abs=1)
    listed = api.get("/runs", params={"state": "scheduled"}).json()["runs"]
    assert run["id"] in [r["id"] for r in listed]
    assert api.post(f"/runs/{run['id']}/cancel").status_code == 202
    assert api.get(f"/runs/{run['id']}").json()["state"] == "cancelled"


def test_a_run_at_with_an_offset_in_the_past_runs_at_once(api: httpx.Client) -> None:
    when = (datetime.now(timezone(timedelta(hours=-7))) - timedelta(minutes=5)).isoformat()
    response = submit(api, run_at=when)
    assert response.status_code == 201, response.text
    assert wait(api, response.json()["id"])["state"] == "completed"


def test_a_run_waiting_for_its_rate_says_so(api: httpx.Client) -> None:
    first = api.post("/runs", json={"task": "sample.report", "args": {"team": "a"}}).json()
    second = api.post("/runs", json={"task": "sample.report", "args": {"team": "a"}}).json()
    assert wait(api, first["id"])["state"] == "completed"
    run = api.get(f"/runs/{second['id']}").json()
    assert (run["state"], run["waiting_for"], run["priority"]) == ("queued", "rate_limit", 2)
    api.post(f"/runs/{second['id']}/cancel")


def test_tasks_show_their_time_and_order_policies(api: httpx.Client) -> None:
    tasks = {task["name"]: task for task in api.get("/tasks").json()["tasks"]}
    report, build = tasks["sample.report"], tasks["sample.build"]
    assert (report["rate_limit"], report["rate_key"], report["priority"]) == ("1/h", "team", 2)
    assert (build["concurrency"], build["concurrency_key"]) == (1, "repo")


def test_schedules_are_listed_paused_resumed_and_triggered(api: httpx.Client) -> None:
    (nightly,) = api.get("/schedules").json()["schedules"]
    assert (nightly["name"], nightly["cron"], nightly["timezone"]) == (
        "nightly",
        "0 3 * * *",
        "Europe/Paris",
    )
    assert nightly["paused"] is False and nightly["next_tick"] > 0
    assert api.post("/schedules/nightly/pause").json()["paused"] is True
    assert api.post("/schedules/nightly/resume").json()["paused"] is False
    response = api.post("/schedules/nightly/trigger")
    assert response.status_code == 201
    run = response.json()
    assert (run["task"], run["args"]) == ("sample.report", {"team": "ops"})
    assert api.get("/schedules").json()["schedules"][0]["last_run"] == run["id"]


@pytest.mark.parametrize("action", ["pause", "resume", "trigger"])
def test_an_unknown_schedule_is_a_404_naming_it(api: httpx.Client, action: str) -> None:
    response = api.post(f"/schedules/weekly/{action}")
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_schedule"
    assert "weekly" in response.json()["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"run_at": "2030-01-01T09:00:00"}, "run_at", id="run-at-without-offset"),
        pytest.param({"run_at": "tomorrow"}, "run_at", id="run-at-not-a-time"),
        pytest.param(
            {"run_at": (datetime.now(UTC) + timedelta(days=400)).isoformat()},
            "run_at",
            id="run-at-over-a-year-ahead",
        ),
        pytest.param({"delay": -5}, "delay", id="negative-delay"),
        pytest.param({"delay": "soon"}, "delay", id="delay-not-a-number"),
        pytest.param({"delay": 10, "run_at": "2030-01-01T09:00:00Z"}, "run_at", id="both"),
        pytest.param({"priority": 10}, "priority", id="priority-10"),
        pytest.param({"priority": -1}, "priority", id="priority-negative"),
        pytest.param({"priority": "high"}, "priority", id="priority-text"),
    ],
)
def test_bad_times_and_priorities_are_refused_naming_the_field(
    api: httpx.Client, body: dict[str, Any], field: str
) -> None:
    before = api.get("/runs", params={"limit": 1000}).json()["runs"]
    response = submit(api, **body)
    assert response.status_code == 422, response.text
    assert field in response.text
    assert api.get("/runs", params={"limit": 1000}).json()["runs"] == before


def test_metrics_count_scheduled_runs_and_schedule_ticks(api: httpx.Client) -> None:
    run = submit(api, delay=3600).json()
    text = api.get("/metrics").text
    assert "taskcast_scheduled " in text and "taskcast_rate_limited " in text
    assert "taskcast_runs_pruned_total " in text
    assert 'taskcast_runs{state="scheduled",task="demo.count"}' in text
    api.post(f"/runs/{run['id']}/cancel")
