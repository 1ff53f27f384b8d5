"""A run's ``owner`` over HTTP without access control: named at submit, filtered by, checked."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from .live import LiveServer


@pytest.fixture
def api(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def submit(api: httpx.Client, **body: object) -> httpx.Response:
    return api.post("/runs", json={"task": "demo.count", "args": {"n": 1, "delay": 0}, **body})


def test_runs_keep_their_owner_and_the_list_filters_by_it(api: httpx.Client) -> None:
    ada = submit(api, owner="ada@example.org").json()
    submit(api, owner="bob")
    submit(api)
    assert ada["owner"] == "ada@example.org"
    assert api.get(f"/runs/{ada['id']}").json()["owner"] == "ada@example.org"
    listed = api.get("/runs", params={"owner": "ada@example.org"}).json()
    assert [run["id"] for run in listed["runs"]] == [ada["id"]]
    assert len(api.get("/runs").json()["runs"]) == 3


def test_a_retry_keeps_the_owner(api: httpx.Client) -> None:
    failed = api.post("/runs", json={"task": "demo.fail", "owner": "ada"}).json()
    with api.stream("GET", f"/runs/{failed['id']}/events") as stream:
        stream.read()
    retried = api.post(f"/runs/{failed['id']}/retry").json()
    assert retried["owner"] == "ada"


@pytest.mark.parametrize("owner", ["", "has space", "x" * 129, "new\nline", "é", 7])
def test_a_bad_owner_is_refused_naming_it_and_nothing_is_stored(
    api: httpx.Client, owner: object
) -> None:
    refused = submit(api, owner=owner)
    assert refused.status_code == 422
    assert any("owner" in problem["param"] for problem in refused.json()["problems"])
    listed = api.get("/runs", params={"owner": "x" * 129})
    assert listed.status_code == 422 and "owner" in listed.text
    assert api.get("/runs").json()["runs"] == []
