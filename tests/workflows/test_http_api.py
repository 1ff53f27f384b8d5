"""Workflows over HTTP: run JSON with parent_id and after, POST /runs with after,
GET /runs?parent=, and the shell task refused with a hint (a real `taskcast serve`)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

import taskcast
from tests.server.live import live_server


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    directory = tmp_path_factory.mktemp("serve")
    with (
        live_server(directory, "--app", "tests.workflows.workflow_app:app") as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        yield client


def wait_finished(api: httpx.Client, run_id: str) -> dict[str, object]:
    with api.stream("GET", f"/runs/{run_id}/events") as stream:
        for _ in stream.iter_lines():
            pass  # the stream ends after the terminal event
    run: dict[str, object] = api.get(f"/runs/{run_id}").json()
    return run


def test_children_are_listed_by_parent_and_name_it(api: httpx.Client) -> None:
    parent = api.post("/runs", json={"task": "wf.fan", "args": {"n": 3}}).json()
    assert parent["parent_id"] is None and parent["after"] == []
    assert wait_finished(api, parent["id"])["result"] == [0, 1, 4]
    children = api.get("/runs", params={"parent": parent["id"]}).json()["runs"]
    assert len(children) == 3
    assert {c["parent_id"] for c in children} == {parent["id"]}
    assert sorted(c["result"] for c in children) == [0, 1, 4]


def test_post_runs_takes_after_and_after_policy(api: httpx.Client) -> None:
    first = api.post("/runs", json={"task": "wf.square", "args": {"i": 2}}).json()
    second = api.post(
        "/runs",
        json={
            "task": "wf.square",
            "args": {"i": 3},
            "after": [first["id"]],
            "after_policy": "always",
        },
    )
    assert second.status_code == 201, second.text
    assert second.json()["after"] == [first["id"]]
    assert second.json()["after_policy"] == "always"
    assert wait_finished(api, second.json()["id"])["state"] == "completed"


def test_an_unknown_dependency_is_refused_with_422_naming_it(api: httpx.Client) -> None:
    response = api.post("/runs", json={"task": "wf.square", "args": {"i": 1}, "after": ["nope"]})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"
    assert "'nope'" in response.json()["message"]


def test_http_fetch_is_served_and_shell_is_refused_with_a_hint(api: httpx.Client) -> None:
    names = {task["name"] for task in api.get("/tasks").json()["tasks"]}
    assert "http.fetch" in names and "shell" not in names
    response = api.post("/runs", json={"task": "shell", "args": {"cmd": "true"}})
    assert response.status_code == 404
    assert "--enable-shell" in response.json()["message"]


async def test_the_client_submits_after_and_lists_children(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    directory = tmp_path_factory.mktemp("client")
    with live_server(directory, "--app", "tests.workflows.workflow_app:app") as server:
        async with taskcast.AsyncClient(server.url) as client:
            parent = await client.submit("wf.fan", n=2)
            dependent = await client.submit_with(
                "wf.square", {"i": 5}, after=[parent.id], after_policy="always"
            )
            assert (dependent.after, dependent.after_policy) == ([parent.id], "always")
            assert (await client.wait(dependent.id, timeout=30)).result == 25
            children = await client.runs(parent=parent.id)
            assert {c.parent_id for c in children} == {parent.id} and len(children) == 2
