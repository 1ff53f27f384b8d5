"""Bearer-token auth: required on every route but /health when set, absent otherwise."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .live import LiveServer, live_server

TOKEN = "s3cret-token"


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(tmp_path, "--token", TOKEN) as server:
        yield server


def test_without_the_token_every_route_but_health_and_the_docs_is_401(
    secured: LiveServer,
) -> None:
    with httpx.Client(base_url=secured.url, timeout=10) as api:
        assert api.get("/health").status_code == 200
        # The docs page loads the API's description before its Authorize button is used.
        assert api.get("/openapi.json").status_code == 200
        for method, path in [
            ("GET", "/runs"),
            ("POST", "/runs"),
            ("GET", "/tasks"),
            ("GET", "/metrics"),
            ("GET", "/changes"),
            ("GET", "/runs/X/events"),
        ]:
            response = api.request(method, path)
            assert response.status_code == 401, path
            assert response.json()["error"] == "unauthorized"
            assert response.headers["www-authenticate"] == "Bearer"
        wrong = api.get("/runs", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "wrong" in wrong.json()["message"]


def test_the_token_opens_every_route(secured: LiveServer) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=secured.url, timeout=10, headers=headers) as api:
        run = api.post("/runs", json={"task": "demo.count", "args": {"n": 0}}).json()
        assert api.get(f"/runs/{run['id']}").status_code == 200
        assert api.get("/tasks").status_code == 200


def test_the_event_stream_accepts_the_token_as_a_query_parameter(secured: LiveServer) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=secured.url, timeout=10) as api:
        run = api.post("/runs", json={"task": "demo.count", "args": {"n": 0}}, headers=headers)
        run_id = run.json()["id"]
        with api.stream("GET", f"/runs/{run_id}/events", params={"token": TOKEN}) as stream:
            assert stream.status_code == 200
            assert "event: completed" in stream.read().decode()
        assert api.get("/runs", params={"token": TOKEN}).status_code == 401


def test_without_a_token_configured_no_route_asks_for_one(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as api:
        assert api.get("/runs").status_code == 200
        assert api.get("/metrics").status_code == 200
