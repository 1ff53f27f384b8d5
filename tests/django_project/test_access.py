"""Access from Django's auth: runs are seen by their owner (or with view_all_runs), submitted
with submit_run, cancelled with cancel_run; the HTTP API and the dashboard hold to it."""

from __future__ import annotations

import json

import httpx
from playwright.sync_api import Page, expect

from ..uvicorn_server import Uvicorn
from .conftest import SignIn
from .shop.models import Batch, Item


def start(client: httpx.Client) -> str:
    answer = client.post("/shop/imports/", data={"rows": "1"})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["run"])


def test_another_user_neither_sees_nor_cancels_a_run(sign_in: SignIn) -> None:
    alice = sign_in("alice", "submit_run", "cancel_run")
    bob = sign_in("bob", "submit_run", "cancel_run")
    run_id = start(alice)
    assert bob.get(f"/taskcast/runs/{run_id}").status_code == 404
    assert bob.get(f"/taskcast/runs/{run_id}/events").status_code == 404
    assert bob.post(f"/taskcast/runs/{run_id}/cancel").status_code == 404
    assert bob.post(f"/shop/imports/{run_id}/cancel/").status_code == 404
    assert bob.get("/taskcast/runs").json()["runs"] == []
    # Asking for alice's runs by name does not widen bob's view.
    owner = str(alice.user.pk)  # type: ignore[attr-defined]
    assert bob.get("/taskcast/runs", params={"owner": owner}).json()["runs"] == []
    assert [run["id"] for run in alice.get("/taskcast/runs").json()["runs"]] == [run_id]
    assert alice.get(f"/taskcast/runs/{run_id}").json()["state"] in ("queued", "running")


def test_a_user_with_view_all_runs_sees_every_run_and_the_statistics(sign_in: SignIn) -> None:
    alice = sign_in("alice", "submit_run")
    carol = sign_in("carol", "view_all_runs")
    run_id = start(alice)
    assert carol.get(f"/taskcast/runs/{run_id}").status_code == 200
    assert [run["id"] for run in carol.get("/taskcast/runs").json()["runs"]] == [run_id]
    assert carol.get("/taskcast/stats").status_code == 200
    refused = alice.get("/taskcast/stats")
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    assert alice.get("/taskcast/metrics").status_code == 403
    # Seeing is not cancelling: carol lacks cancel_run.
    assert carol.post(f"/taskcast/runs/{run_id}/cancel").status_code == 403


def test_submitting_needs_the_permission_in_views_and_over_http(sign_in: SignIn) -> None:
    dave = sign_in("dave")
    assert dave.post("/shop/imports/", data={"rows": "1"}).status_code == 403
    refused = dave.post("/taskcast/runs", json={"task": "import_rows", "args": {}})
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"


def test_nobody_signed_in_gets_401_and_the_pages_stay_open(server: Uvicorn) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as anonymous:
        assert anonymous.get("/taskcast/runs").status_code == 401
        assert (
            anonymous.get("/taskcast/runs", headers={"Authorization": "Bearer no"}).status_code
            == 401
        )
        assert anonymous.get("/taskcast/health").status_code == 200
        assert anonymous.get("/taskcast/").status_code == 200


def test_a_run_submitted_over_http_is_owned_by_the_user_and_another_owner_is_refused(
    sign_in: SignIn,
) -> None:
    alice = sign_in("alice", "submit_run")
    batch = Batch.objects.create(name="b")
    body = {"task": "count_items", "args": {"batch": batch.pk}}
    mine = alice.post("/taskcast/runs", json=body)
    assert mine.status_code == 201, mine.text
    assert mine.json()["owner"] == str(alice.user.pk)  # type: ignore[attr-defined]
    other = alice.post("/taskcast/runs", json={**body, "owner": "someone-else"})
    assert other.status_code == 403 and other.json()["param"] == "owner"
    bad = alice.post("/taskcast/runs", json={**body, "owner": "not an owner!"})
    assert bad.status_code == 422 and "owner" in bad.text
    assert len(alice.get("/taskcast/runs").json()["runs"]) == 1  # nothing else was stored


def test_a_change_from_another_site_is_refused(sign_in: SignIn, server: Uvicorn) -> None:
    alice = sign_in("alice", "submit_run", "cancel_run")
    run_id = start(alice)
    forged = alice.post(
        f"/taskcast/runs/{run_id}/cancel", headers={"Origin": "https://evil.example"}
    )
    assert forged.status_code == 401
    assert alice.get(f"/taskcast/runs/{run_id}").json()["state"] != "cancelled"
    same = alice.post(f"/taskcast/runs/{run_id}/cancel", headers={"Origin": server.url})
    assert same.status_code == 202


def test_the_changes_stream_carries_only_the_users_own_runs(
    sign_in: SignIn, service: httpx.Client
) -> None:
    alice = sign_in("alice", "submit_run")
    batch = Batch.objects.create(name="b")
    with alice.stream("GET", "/taskcast/changes") as stream:
        theirs = service.post(
            "/taskcast/runs", json={"task": "count_items", "args": {"batch": batch.pk}}
        )
        mine = alice.post(
            "/taskcast/runs", json={"task": "count_items", "args": {"batch": batch.pk}}
        )
        ids, kinds = [], []
        kind = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
                kinds.append(kind)
            elif line.startswith("data: ") and kind == "run":
                change = json.loads(line[6:])
                ids.append(change["id"])
                if change["id"] == mine.json()["id"] and change["state"] == "completed":
                    break
    assert theirs.json()["id"] not in ids
    assert "counts" not in kinds


def test_sync_and_async_orm_tasks_get_model_instances_by_primary_key(sign_in: SignIn) -> None:
    alice = sign_in("alice", "submit_run")
    batch = Batch.objects.create(name="b")
    Item.objects.bulk_create([Item(batch=batch, number=n) for n in range(4)])
    counted = alice.post("/shop/count/", data={"batch": str(batch.pk)})
    assert counted.json() == {"state": "completed", "result": 4}
    schema = alice.get("/taskcast/tasks").json()["tasks"]
    params = {task["name"]: task["parameters"] for task in schema}
    assert params["count_items"]["properties"]["batch"]["type"] == "integer"
    missing = alice.post("/taskcast/runs", json={"task": "count_items", "args": {"batch": 10**9}})
    run_id = missing.json()["id"]
    with alice.stream("GET", f"/taskcast/runs/{run_id}/events") as stream:
        stream.read()  # the stream ends after the run's last event
    ended = alice.get(f"/taskcast/runs/{run_id}").json()
    assert ended["state"] == "failed" and ended["error"]["type"] == "DoesNotExist"


def test_the_dashboard_under_the_prefix_shows_a_user_with_view_all_runs_every_run(
    sign_in: SignIn, server: Uvicorn, page: Page
) -> None:
    alice = sign_in("alice", "submit_run")
    carol = sign_in("carol", "view_all_runs")
    run_id = start(alice)
    page.context.add_cookies(
        [{"name": "sessionid", "value": carol.cookies["sessionid"], "url": server.url}]
    )
    page.goto(f"{server.url}/taskcast/")
    expect(page.get_by_text(run_id[-8:], exact=False).first).to_be_visible()


def test_the_dashboard_shows_a_user_their_own_runs_only(
    sign_in: SignIn, server: Uvicorn, page: Page
) -> None:
    alice = sign_in("alice", "submit_run")
    bob = sign_in("bob", "submit_run")
    mine, theirs = start(alice), start(bob)
    page.context.add_cookies(
        [{"name": "sessionid", "value": alice.cookies["sessionid"], "url": server.url}]
    )
    page.goto(f"{server.url}/taskcast/")
    expect(page.get_by_text(mine[-8:], exact=False).first).to_be_visible()
    expect(page.get_by_text(theirs[-8:], exact=False)).to_have_count(0)


def test_an_async_view_reads_a_runs_events_and_another_user_gets_404(sign_in: SignIn) -> None:
    alice = sign_in("alice", "submit_run")
    bob = sign_in("bob")
    batch = Batch.objects.create(name="b")
    run_id = alice.post(
        "/taskcast/runs", json={"task": "count_items", "args": {"batch": batch.pk}}
    ).json()["id"]
    read = alice.get(f"/shop/runs/{run_id}/events/")
    assert read.json()["events"] == ["queued", "started", "completed"]
    assert bob.get(f"/shop/runs/{run_id}/events/").status_code == 404


def test_any_signed_in_user_lists_the_tasks_and_nobody_else(
    sign_in: SignIn, server: Uvicorn
) -> None:
    dave = sign_in("dave")
    assert {task["name"] for task in dave.get("/taskcast/tasks").json()["tasks"]} >= {
        "import_rows",
        "count_items",
    }
    assert httpx.get(f"{server.url}/taskcast/tasks").status_code == 401


def test_a_sync_view_cancels_a_run_the_user_sees_with_the_permission(sign_in: SignIn) -> None:
    alice = sign_in("alice", "submit_run", "cancel_run")
    bob = sign_in("bob", "cancel_run")
    carol = sign_in("carol", "view_all_runs")
    run_id = start(alice)
    assert bob.post(f"/shop/imports/{run_id}/cancel-sync/").status_code == 404  # not his
    assert carol.post(f"/shop/imports/{run_id}/cancel-sync/").status_code == 403  # sees, may not
    assert alice.post(f"/shop/imports/{run_id}/cancel-sync/").json() == {"cancelled": True}
    with alice.stream("GET", f"/taskcast/runs/{run_id}/events") as stream:
        stream.read()
    run = alice.get(f"/taskcast/runs/{run_id}").json()
    assert run["state"] == "cancelled" and run["error"]["message"] == "stopped by a sync view"
