"""/openapi.json tells the truth: schemathesis with every check against a real server (bounded
in examples and time), and what the document says about streams, cursors, errors, auth and
methods."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import taskcast
from taskcast.builtin import register_demo_tasks
from taskcast.server import create_app

from .live import live_server

TOKEN = "conformance-s3cret"
MAX_TIME = 20
"""Seconds schemathesis may spend in all (its phases repeat until the budget is spent)."""


def test_the_api_conforms_to_its_openapi_document_under_every_check(tmp_path: Path) -> None:
    with live_server(tmp_path, "--token", TOKEN, store="memory://") as server:
        st = Path(sys.executable).with_name("st")
        result = subprocess.run(
            [
                str(st),
                "--config-file",
                str(Path(__file__).with_name("schemathesis.toml")),
                "run",
                f"{server.url}/openapi.json",
                "--checks",
                "all",
                "--header",
                f"Authorization: Bearer {TOKEN}",  # ignored_auth then checks it is needed
                "--max-examples",
                "10",
                "--max-time",
                str(MAX_TIME),
                "--seed",
                "1",
                "--request-timeout",
                "5",
                "--generation-database",
                "none",
                # A live stream only ends with its run (or never, for /changes): the SSE routes
                # have their own tests (test_events.py, test_doors.py).
                "--exclude-path",
                "/runs/{run_id}/events",
                "--exclude-path",
                "/changes",
            ],
            capture_output=True,
            text=True,
            timeout=MAX_TIME + 40,
            check=False,
            cwd=tmp_path,
        )
    failures = result.stdout.find("FAILURES")
    report = result.stdout[failures:][:8000] if failures >= 0 else result.stdout[-5000:]
    assert result.returncode == 0, report + result.stderr[-2000:]


async def _document(token: str | None = None) -> dict[str, Any]:
    app = taskcast.App(store="memory://")
    register_demo_tasks(app)
    transport = httpx.ASGITransport(app=create_app(app, token=token))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        document: dict[str, Any] = (await client.get("/openapi.json")).json()
    return document


@pytest.fixture
async def document() -> AsyncIterator[dict[str, Any]]:
    yield await _document()


def _error_media_types(document: dict[str, Any]) -> set[str]:
    return {
        media
        for item in document["paths"].values()
        for operation in item.values()
        for status, response in operation["responses"].items()
        if int(status) >= 400
        for media in response.get("content", {})
    }


async def test_event_streams_are_text_event_stream_and_their_errors_are_json(
    document: dict[str, Any],
) -> None:
    for path in ("/runs/{run_id}/events", "/changes"):
        responses = document["paths"][path]["get"]["responses"]
        assert list(responses["200"]["content"]) == ["text/event-stream"]
    assert _error_media_types(document) == {"application/json"}


async def test_cursors_and_signal_names_are_documented_with_their_rule(
    document: dict[str, Any],
) -> None:
    parameters = {
        p["name"]: p["schema"]
        for p in document["paths"]["/runs/{run_id}/events"]["get"]["parameters"]
    }
    assert parameters["Last-Event-ID"]["anyOf"][0]["pattern"] == "^[0-9]{1,19}$"
    assert parameters["after"]["anyOf"][0]["maximum"] == 2**63 - 1
    signal = document["paths"]["/runs/{run_id}/signals/{name}"]["post"]
    (name,) = [p for p in signal["parameters"] if p["name"] == "name"]
    assert "._:-" in name["schema"]["pattern"]


async def test_errors_429_and_503_are_documented_where_they_happen(
    document: dict[str, Any],
) -> None:
    paths = document["paths"]
    assert "429" in paths["/runs"]["post"]["responses"]
    assert "429" in paths["/runs/{run_id}/signals/{name}"]["post"]["responses"]
    for path, item in paths.items():
        for operation in item.values():
            assert "503" in operation["responses"], path  # shutting down, or the store away
            if path != "/health":
                assert "422" in operation["responses"], path


async def test_without_a_token_no_401_and_no_security_is_documented(
    document: dict[str, Any],
) -> None:
    assert "securitySchemes" not in document["components"]
    for item in document["paths"].values():
        for operation in item.values():
            assert "401" not in operation["responses"] and "security" not in operation


async def test_with_a_token_the_bearer_scheme_guards_every_operation_but_health() -> None:
    document = await _document(token=TOKEN)
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "The server's token (`--token`); event streams also take `?token=`.",
    }
    for path, item in document["paths"].items():
        for operation in item.values():
            guarded = path != "/health"
            assert (operation.get("security") == [{"bearer": []}]) == guarded, path
            assert ("401" in operation["responses"]) == guarded, path


async def test_a_submitted_run_links_to_the_operations_on_it(document: dict[str, Any]) -> None:
    links = document["paths"]["/runs"]["post"]["responses"]["201"]["links"]
    operations = {
        operation["operationId"]
        for path, item in document["paths"].items()
        if path.startswith("/runs/{run_id}")
        for operation in item.values()
    }
    assert set(links) == operations
    assert all(link["parameters"] == {"run_id": "$response.body#/id"} for link in links.values())


async def test_options_lists_the_documented_methods_of_every_path(
    document: dict[str, Any],
) -> None:
    app = taskcast.App(store="memory://")
    transport = httpx.ASGITransport(app=create_app(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for path, item in document["paths"].items():
            concrete = path.replace("{run_id}", "R1").replace("{name}", "go")
            answer = await client.options(concrete)
            assert answer.status_code == 204, path
            allowed = {method.strip() for method in answer.headers["allow"].split(",")}
            assert allowed - {"OPTIONS", "HEAD"} == {method.upper() for method in item}, path
            refused = await client.request("PUT", concrete)
            assert (
                refused.status_code == 405 and refused.headers["allow"] == answer.headers["allow"]
            )
            assert refused.json()["error"] == "method_not_allowed"
