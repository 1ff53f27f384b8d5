"""POST/GET /runs, cancel, signals, /tasks, /health, /metrics: the routes of docs/http.md."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .live import LiveServer, live_server


@pytest.fixture
def api(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def submit(api: httpx.Client, task: str, **args: object) -> dict[str, object]:
    response = api.post("/runs", json={"task": task, "args": args})
    assert response.status_code == 201, response.text
    run: dict[str, object] = response.json()
    return run


def test_submit_returns_the_queued_run_and_its_location(api: httpx.Client) -> None:
    response = api.post("/runs", json={"task": "demo.count", "args": {"n": 1, "delay": 0}})
    assert response.status_code == 201
    run = response.json()
    assert run["task"] == "demo.count" and run["state"] == "queued" and run["args"]["n"] == 1
    assert response.headers["location"] == f"/runs/{run['id']}"


def test_submit_of_an_unknown_task_names_the_registered_ones(api: httpx.Client) -> None:
    response = api.post("/runs", json={"task": "demo.nope"})
    assert response.status_code == 404
    body = response.json()
    assert body["error"] == "unknown_task" and "demo.count" in body["known"]
    assert "demo.nope" in body["message"]


def test_submit_with_a_bad_argument_names_it_and_why(api: httpx.Client) -> None:
    response = api.post("/runs", json={"task": "demo.count", "args": {"n": "many"}})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_arguments"
    assert body["problems"][0]["param"] == "n" and "integer" in body["problems"][0]["problem"]


def test_a_malformed_request_names_the_field(api: httpx.Client) -> None:
    response = api.post("/runs", json={"tsk": "demo.count"})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_request"
    assert {p["param"] for p in body["problems"]} == {"body.task", "body.tsk"}


def test_a_body_that_is_not_json_is_refused_with_the_same_shape(api: httpx.Client) -> None:
    response = api.post("/runs", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"


def test_a_body_over_the_limit_gets_413(api: httpx.Client) -> None:
    big = {"task": "demo.fail", "args": {"message": "x" * 2_000_000}}
    response = api.post("/runs", json=big)
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"


def test_submitting_an_existing_id_returns_the_same_run(api: httpx.Client) -> None:
    body = {"task": "demo.count", "args": {"n": 0}, "id": "order-42"}
    first = api.post("/runs", json=body).json()
    second = api.post("/runs", json=body).json()
    assert first["id"] == second["id"] == "order-42"
    assert len(api.get("/runs").json()["runs"]) == 1


def test_a_full_queue_answers_429_with_retry_after(tmp_path: Path) -> None:
    with (
        live_server(tmp_path, "--app", "tests.server.sample_app:app") as server,
        httpx.Client(base_url=server.url, timeout=10) as api,
    ):
        assert api.post("/runs", json={"task": "demo.wait"}).status_code == 201
        assert api.post("/runs", json={"task": "demo.wait"}).status_code == 201
        statuses = [api.post("/runs", json={"task": "demo.wait"}) for _ in range(2)]
        refused = [r for r in statuses if r.status_code == 429]
        assert refused, [r.text for r in statuses]
        assert refused[0].json()["error"] == "queue_full"
        assert int(refused[0].headers["retry-after"]) >= 1


def test_get_run_returns_it_and_404_names_the_id(api: httpx.Client) -> None:
    run = submit(api, "demo.count", n=0)
    assert api.get(f"/runs/{run['id']}").json()["id"] == run["id"]
    missing = api.get("/runs/NOPE")
    assert missing.status_code == 404
    assert missing.json() == {
        "error": "run_not_found",
        "message": "no run with id 'NOPE'",
        "run_id": "NOPE",
    }


def test_list_runs_filters_and_pages(api: httpx.Client) -> None:
    ids = [submit(api, "demo.wait")["id"] for _ in range(3)]
    listed = api.get("/runs", params={"task": "demo.wait", "limit": 2}).json()
    assert [r["id"] for r in listed["runs"]] == ids[::-1][:2]
    rest = api.get("/runs", params={"task": "demo.wait", "before": listed["next_before"]}).json()
    assert [r["id"] for r in rest["runs"]] == [ids[0]] and rest["next_before"] is None
    assert api.get("/runs", params={"state": "completed"}).json()["runs"] == []


def test_list_runs_with_an_unknown_state_says_which_are_allowed(api: httpx.Client) -> None:
    response = api.get("/runs", params={"state": "sleeping"})
    assert response.status_code == 422
    assert "queued" in response.json()["message"]


def test_cancel_a_running_run_is_accepted_then_409_once_finished(api: httpx.Client) -> None:
    run = submit(api, "demo.wait")
    response = api.post(f"/runs/{run['id']}/cancel", json={"reason": "test"})
    assert response.status_code == 202 and response.json() == {"id": run["id"], "cancelling": True}
    with api.stream("GET", f"/runs/{run['id']}/events") as stream:
        assert "event: cancelled" in stream.read().decode()
    again = api.post(f"/runs/{run['id']}/cancel")
    assert again.status_code == 409
    assert again.json()["error"] == "run_finished" and again.json()["state"] == "cancelled"
    assert api.post("/runs/NOPE/cancel").status_code == 404


def test_a_signal_reaches_the_task(api: httpx.Client) -> None:
    run = submit(api, "demo.wait")
    response = api.post(f"/runs/{run['id']}/signals/continue", json={"answer": 42})
    assert response.status_code == 202
    with api.stream("GET", f"/runs/{run['id']}/events") as stream:
        stream.read()
    finished = api.get(f"/runs/{run['id']}").json()
    assert finished["state"] == "completed" and finished["result"] == {"answer": 42}
    assert api.post(f"/runs/{run['id']}/signals/continue").status_code == 409
    assert api.post("/runs/NOPE/signals/continue").status_code == 404


def test_tasks_lists_parameters_and_policy(api: httpx.Client) -> None:
    tasks = {t["name"]: t for t in api.get("/tasks").json()["tasks"]}
    assert set(tasks) >= {"demo.count", "demo.fail", "demo.wait"}
    count = tasks["demo.count"]
    assert count["max_attempts"] == 3
    assert count["parameters"]["properties"]["n"]["default"] == 10


def test_health_and_metrics(api: httpx.Client) -> None:
    assert api.get("/health").json()["status"] == "ok"
    run = submit(api, "demo.count", n=2, delay=0)
    with api.stream("GET", f"/runs/{run['id']}/events") as stream:
        stream.read()
    metrics = api.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'taskcast_runs{state="completed",task="demo.count"} 1.0' in text
    assert 'taskcast_run_duration_seconds_count{state="completed",task="demo.count"} 1.0' in text
    assert 'taskcast_queue_wait_seconds_count{task="demo.count"} 1.0' in text
    assert 'taskcast_events_total{task="demo.count"} 5.0' in text
    assert "taskcast_watchers_dropped_total 0.0" in text
    assert "taskcast_event_streams 0.0" in text


def test_unknown_routes_answer_in_the_same_shape(api: httpx.Client) -> None:
    response = api.get("/nope")
    assert response.status_code == 404 and response.json()["error"] == "not_found"
    wrong_method = api.delete("/runs")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"] == "method_not_allowed"


def test_the_openapi_document_and_docs_are_served(api: httpx.Client) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    assert set(paths) >= {
        "/runs",
        "/runs/{run_id}",
        "/runs/{run_id}/events",
        "/runs/{run_id}/cancel",
        "/runs/{run_id}/signals/{name}",
        "/tasks",
        "/health",
        "/metrics",
    }
    assert "swagger" in api.get("/docs").text.lower()
    assert api.get("/").headers["content-type"].startswith("text/html")
