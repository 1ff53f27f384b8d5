"""``GET /stats`` (activity over time, for charts), ``POST /runs/{id}/retry`` and ``GET /runs``
by id prefix, over HTTP on a SQLite file and on Redis."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from .live import LiveServer


@pytest.fixture
def api(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=15) as client:
        yield client


def submit(api: httpx.Client, task: str, **args: object) -> str:
    response = api.post("/runs", json={"task": task, "args": args})
    assert response.status_code == 201, response.text
    run_id: str = response.json()["id"]
    return run_id


def wait_until_finished(api: httpx.Client, run_id: str) -> dict[str, object]:
    with api.stream("GET", f"/runs/{run_id}/events") as stream:
        stream.read()  # the stream ends after the terminal event
    run: dict[str, object] = api.get(f"/runs/{run_id}").json()
    return run


def test_stats_counts_the_last_hour_by_the_minute_with_the_whole_stores_counts(
    api: httpx.Client,
) -> None:
    wait_until_finished(api, submit(api, "demo.count", n=0))
    wait_until_finished(api, submit(api, "demo.fail"))
    waiting = submit(api, "demo.wait")
    response = api.get("/stats")
    assert response.status_code == 200
    stats = response.json()
    assert (stats["window"], stats["step"], len(stats["times"])) == (3600, 60, 60)
    assert stats["times"][0] == stats["start"] and stats["end"] == stats["start"] + 3600
    assert stats["start"] % 60 == 0
    assert sum(stats["created"]) == 3
    assert sum(stats["finished"]["completed"]) == sum(stats["finished"]["failed"]) == 1
    assert set(stats["durations"]) == {"demo.count", "demo.fail"}
    assert stats["durations"]["demo.fail"]["runs"] == 1
    assert stats["counts"]["demo.fail"] == {"failed": 1}
    assert stats["queued"][-1] + stats["running"][-1] == 1  # the waiting run, now
    api.post(f"/runs/{waiting}/cancel")


def test_stats_takes_other_windows_and_steps(api: httpx.Client) -> None:
    day = api.get("/stats", params={"window": "1d", "step": "15m"}).json()
    assert (day["window"], day["step"], len(day["created"])) == (86400, 900, 96)
    seconds = api.get("/stats", params={"window": "90", "step": "30s"}).json()
    assert (seconds["window"], seconds["step"], len(seconds["queued"])) == (90, 30, 3)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"window": "soon"}, "query.window"),
        ({"window": "-1h"}, "query.window"),
        ({"window": "31d", "step": "1h"}, "query.window"),
        ({"step": "0s"}, "query.step"),
        ({"step": "2h"}, "query.step"),
        ({"window": "1d", "step": "1s"}, "query.step"),  # 86,400 buckets
    ],
)
def test_stats_refuses_a_window_or_step_out_of_bounds_naming_it(
    api: httpx.Client, params: dict[str, str], field: str
) -> None:
    response = api.get("/stats", params=params)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_request"
    assert [problem["param"] for problem in body["problems"]] == [field]


def test_retry_answers_201_with_the_new_run_linked_to_the_old(api: httpx.Client) -> None:
    failed = submit(api, "demo.fail", message="flaky disk")
    wait_until_finished(api, failed)
    response = api.post(f"/runs/{failed}/retry")
    assert response.status_code == 201
    retried = response.json()
    assert response.headers["location"] == f"/runs/{retried['id']}"
    assert (retried["task"], retried["args"]) == ("demo.fail", {"message": "flaky disk"})
    assert retried["retry_of"] == failed and retried["state"] == "queued"
    assert api.get(f"/runs/{retried['id']}").json()["retry_of"] == failed
    assert wait_until_finished(api, retried["id"])["state"] == "failed"


def test_retry_of_a_run_not_over_or_completed_is_409_and_of_an_unknown_one_404(
    api: httpx.Client,
) -> None:
    waiting = submit(api, "demo.wait")
    refused = api.post(f"/runs/{waiting}/retry")
    assert refused.status_code == 409
    assert refused.json()["error"] == "not_retryable"
    assert refused.json()["state"] in ("queued", "running")
    api.post(f"/runs/{waiting}/signals/continue")
    wait_until_finished(api, waiting)
    completed = api.post(f"/runs/{waiting}/retry")
    assert completed.status_code == 409 and completed.json()["state"] == "completed"
    assert api.post("/runs/NOPE/retry").status_code == 404
    assert len(api.get("/runs").json()["runs"]) == 1  # nothing was started


def test_runs_are_listed_by_id_prefix_with_a_state(api: httpx.Client) -> None:
    for run_id, task in (
        ("nightly-1", "demo.fail"),
        ("nightly-2", "demo.wait"),
        ("n-3", "demo.fail"),
    ):
        response = api.post("/runs", json={"task": task, "id": run_id})
        assert response.status_code == 201
    wait_until_finished(api, "nightly-1")
    listed = api.get("/runs", params={"prefix": "nightly-"}).json()["runs"]
    assert [run["id"] for run in listed] == ["nightly-2", "nightly-1"]
    failed = api.get("/runs", params={"prefix": "nightly", "state": "failed"}).json()["runs"]
    assert [run["id"] for run in failed] == ["nightly-1"]
    refused = api.get("/runs", params={"prefix": "a b"})
    assert refused.status_code == 422
    assert refused.json()["problems"][0]["param"] == "query.prefix"
    api.post("/runs/nightly-2/cancel")
