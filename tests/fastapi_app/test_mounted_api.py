"""taskcast inside a user's FastAPI application (``taskcast.asgi``), served by a real uvicorn."""

from __future__ import annotations

import json
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ..uvicorn_server import Uvicorn, uvicorn_server

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Uvicorn]:
    env = {"TASKCAST_STORE": f"sqlite:///{tmp_path / 'runs.db'}", "TASKCAST_TOKEN": TOKEN}
    with uvicorn_server(tmp_path, "tests.fastapi_app.example_app:api", env) as started:
        yield started


def read_events(response: httpx.Response) -> Iterator[tuple[str, object]]:
    kind = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: ") and kind is not None:
            yield kind, json.loads(line[6:])


def test_a_users_route_submits_through_the_dependency_and_the_mount_streams_the_run(
    server: Uvicorn,
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        answer = client.post("/greetings", params={"name": "ada"}, headers=AUTH)
        assert answer.status_code == 200, answer.text
        run_id = answer.json()["run"]
        with client.stream("GET", answer.json()["events"], headers=AUTH) as stream:
            assert stream.status_code == 200
            kinds = [kind for kind, _ in read_events(stream)]
        assert kinds[0] == "queued" and kinds[-1] == "completed"
        run = client.get(f"/taskcast/runs/{run_id}", headers=AUTH).json()
        assert run["state"] == "completed" and run["result"] == "hello ada"


def test_the_token_dependency_refuses_a_request_without_the_token(server: Uvicorn) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        refused = client.post("/greetings", params={"name": "ada"})
        wrong = client.post(
            "/greetings", params={"name": "ada"}, headers={"Authorization": "Bearer nope"}
        )
        listed = client.get("/taskcast/runs", headers=AUTH).json()["runs"]
    assert refused.status_code == 401 and wrong.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert listed == []  # nothing was submitted


def test_the_mounted_api_needs_the_token_too(server: Uvicorn) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/taskcast/runs").status_code == 401
        assert client.get("/taskcast/runs", headers=AUTH).status_code == 200
        assert client.get("/taskcast/health").json()["status"] == "ok"


def test_the_dashboard_is_served_under_the_mount_with_relative_links(server: Uvicorn) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        bare = client.get("/taskcast")
        page = client.get("/taskcast/")
        script = client.get("/taskcast/dashboard/dashboard.js")
    assert bare.status_code in (307, 308) and bare.headers["location"].endswith("/taskcast/")
    assert page.status_code == 200 and 'src="dashboard/dashboard.js"' in page.text
    assert script.status_code == 200


def test_a_stop_signal_ends_every_stream_with_shutdown_and_the_server_exits(
    server: Uvicorn, tmp_path: Path
) -> None:
    database = tmp_path / "runs.db"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        run = client.post("/taskcast/runs", json={"task": "wait_for_go"}, headers=AUTH).json()
        with client.stream("GET", f"/taskcast/runs/{run['id']}/events", headers=AUTH) as stream:
            events = read_events(stream)
            seen = []
            for kind, _ in events:
                seen.append(kind)
                if kind == "waiting":
                    server.process.send_signal(signal.SIGTERM)
                    break
            seen.extend(kind for kind, _ in events)
    assert seen[-1] == "shutdown"
    # uvicorn ends by the signal it was sent, once its own shutdown is done.
    assert server.process.wait(60) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in server.output()
    with sqlite3.connect(database) as db:
        (state,) = db.execute("SELECT state FROM runs WHERE id = ?", [run["id"]]).fetchone()
    assert state == "interrupted"  # recorded by the App's shutdown: resumed on the next start
