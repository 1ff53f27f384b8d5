"""The seed scenario: a view submits a task that writes model rows, a browser watches it over
SSE, a second view cancels it, and every watcher sees ``cancelled``."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
from playwright.sync_api import Page, expect

from ..uvicorn_server import Uvicorn
from .conftest import SignIn
from .shop.models import Item


def read_events(response: httpx.Response) -> Iterator[tuple[str, object]]:
    kind = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: ") and kind is not None:
            yield kind, json.loads(line[6:])


def test_a_view_submits_a_browser_watches_another_view_cancels_and_every_watcher_sees_it(
    server: Uvicorn, sign_in: SignIn, service: httpx.Client, page: Page
) -> None:
    alice = sign_in("alice", "submit_run", "cancel_run")
    started = alice.post("/shop/imports/", data={"name": "spring", "rows": "3"})
    assert started.status_code == 200, started.text
    run_id, batch = started.json()["run"], started.json()["batch"]
    assert started.json()["owner"] == str(alice.user.pk)  # type: ignore[attr-defined]

    watchers = [
        alice.stream("GET", f"/taskcast/runs/{run_id}/events"),
        service.stream("GET", f"/taskcast/runs/{run_id}/events"),
    ]
    streams = [watcher.__enter__() for watcher in watchers]
    try:
        readers = [read_events(stream) for stream in streams]
        seen: list[list[str]] = [[], []]
        for index, reader in enumerate(readers):
            for kind, _ in reader:
                seen[index].append(kind)
                if kind == "rows_written":
                    break

        page.context.add_cookies(
            [{"name": "sessionid", "value": alice.cookies["sessionid"], "url": server.url}]
        )
        page.goto(f"{server.url}/shop/runs/{run_id}/")
        expect(page.locator("#events li").filter(has_text="rows_written")).to_have_count(1)

        stopped = alice.post(f"/shop/imports/{run_id}/cancel/")
        assert stopped.status_code == 200 and stopped.json() == {"cancelled": True}

        for index, reader in enumerate(readers):
            seen[index].extend(kind for kind, _ in reader)
    finally:
        for watcher in watchers:
            watcher.__exit__(None, None, None)

    expect(page.locator("#state")).to_have_text("cancelled")
    for kinds in seen:
        assert kinds[:2] == ["queued", "started"] and kinds[-1] == "cancelled"
        assert kinds.count("row") == 3
    assert sorted(Item.objects.filter(batch_id=batch).values_list("number", flat=True)) == [0, 1, 2]
    run = service.get(f"/taskcast/runs/{run_id}").json()
    assert run["state"] == "cancelled" and run["error"]["message"] == "stopped from the shop"
