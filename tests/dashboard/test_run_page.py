"""A run's page: its live log, progress, result or error, cancel, and resuming after a reload or
a server restart."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from ..server.live import live_server
from .pages import Dashboard, submit


def test_a_run_page_streams_progress_and_the_result_to_completion(
    dashboard: Dashboard, api: httpx.Client, screenshot: Callable[[Page, str], None]
) -> None:
    run_id = submit(api, "demo.count", n=5, delay=0.2)
    dashboard.open_run(run_id)
    expect(dashboard.state).to_have_text("completed")
    expect(dashboard.page.locator("#progress-text")).to_have_text("5 of 5 — counted 5 of 5")
    expect(dashboard.page.locator("#progress-bar")).to_have_attribute("value", "5")
    expect(dashboard.outcome).to_have_text(json.dumps({"counted": 5}, indent=2))
    last_seq = api.get(f"/runs/{run_id}").json()["last_seq"]
    assert dashboard.log_seqs() == list(range(1, last_seq + 1))
    screenshot(dashboard.page, "run")


def test_a_failed_run_shows_its_error(
    dashboard: Dashboard, api: httpx.Client, screenshot: Callable[[Page, str], None]
) -> None:
    run_id = submit(api, "demo.fail", message="the disk is full")
    dashboard.open_run(run_id)
    expect(dashboard.state).to_have_text("failed")
    expect(dashboard.page.locator("#outcome-title")).to_have_text("Error")
    expect(dashboard.outcome).to_have_text("DemoFailure: the disk is full")
    expect(dashboard.log_lines_of("failed")).to_have_count(1)
    screenshot(dashboard.page, "run-failed")


def test_cancel_ends_a_running_run_and_the_page_shows_cancelled(
    dashboard: Dashboard, api: httpx.Client, screenshot: Callable[[Page, str], None]
) -> None:
    run_id = submit(api, "demo.count", n=10_000, delay=0.05)
    dashboard.open_run(run_id)
    expect(dashboard.state).to_have_text("running")
    screenshot(dashboard.page, "run-running")
    dashboard.cancel()
    expect(dashboard.state).to_have_text("cancelled")
    expect(dashboard.log_lines_of("cancelled")).to_have_count(1)
    expect(dashboard.page.get_by_role("button", name="Cancel run…")).to_be_hidden()
    assert api.get(f"/runs/{run_id}").json()["state"] == "cancelled"


def test_keeping_the_run_in_the_confirmation_does_not_cancel_it(
    dashboard: Dashboard, api: httpx.Client
) -> None:
    run_id = submit(api, "demo.wait")
    dashboard.open_run(run_id)
    expect(dashboard.state).to_have_text("running")
    dashboard.cancel(confirm=False)
    api.post(f"/runs/{run_id}/signals/continue", json={"ok": True})
    expect(dashboard.state).to_have_text("completed")
    expect(dashboard.log_lines_of("cancelled")).to_have_count(0)


def test_a_finished_run_has_no_cancel_button(dashboard: Dashboard, api: httpx.Client) -> None:
    run_id = submit(api, "demo.count", n=0)
    dashboard.open_run(run_id)
    expect(dashboard.state).to_have_text("completed")
    expect(dashboard.page.get_by_role("button", name="Cancel run…")).to_be_hidden()


def test_reloading_in_the_middle_of_a_run_resumes_the_log_without_gaps_or_duplicates(
    dashboard: Dashboard, api: httpx.Client
) -> None:
    run_id = submit(api, "demo.count", n=40, delay=0.05)
    dashboard.open_run(run_id)
    expect(dashboard.log_line(8)).to_be_visible()
    dashboard.page.reload()
    expect(dashboard.state).to_have_text("completed")
    last_seq = api.get(f"/runs/{run_id}").json()["last_seq"]
    assert dashboard.log_seqs() == list(range(1, last_seq + 1))


def test_a_server_restart_shows_shutdown_then_the_recovered_state(
    tmp_path: Path, page: Page
) -> None:
    args = ("--grace", "0", "--shutdown-timeout", "1")
    with live_server(tmp_path, *args, name="first") as first:
        with httpx.Client(base_url=first.url, timeout=15) as api:
            run_id = submit(api, "demo.count", n=30, delay=0.1)
        dashboard = Dashboard(page, first.url)
        dashboard.open_run(run_id)
        expect(dashboard.log_line(5)).to_be_visible()
        first.signal(signal.SIGTERM)
        expect(dashboard.state).to_have_text("interrupted")
        expect(dashboard.log_lines_of("shutdown")).to_have_count(1)
        assert first.wait(15) == 0
    with live_server(tmp_path, *args, name="second", port=first.port):
        expect(dashboard.state).to_have_text("completed", timeout=30_000)
        expect(dashboard.log_lines_of("retrying")).to_have_count(1)
        seqs = dashboard.log_seqs()
        assert seqs == list(range(1, len(seqs) + 1))
        expect(dashboard.outcome).to_have_text(json.dumps({"counted": 30}, indent=2))


def test_parent_dependencies_and_children_are_hidden_when_the_server_reports_none(
    dashboard: Dashboard, api: httpx.Client
) -> None:
    run_id = submit(api, "demo.count", n=0)
    dashboard.open_run(run_id)
    expect(dashboard.state).to_have_text("completed")
    for section in ("#run-parent", "#run-after", "#run-children"):
        expect(dashboard.page.locator(section)).to_be_hidden()


def test_child_events_list_the_children_with_their_state(tmp_path: Path, page: Page) -> None:
    with (
        live_server(tmp_path, "--app", "tests.dashboard.sample_app:app") as server,
        httpx.Client(base_url=server.url, timeout=15) as api,
    ):
        parent = submit(api, "sample.parent", tasks=["demo.fail"])
        dashboard = Dashboard(page, server.url)
        dashboard.open_run(parent)
        expect(dashboard.state).to_have_text("completed")
        (child,) = [run["id"] for run in api.get("/runs", params={"parent": parent}).json()["runs"]]
        children = page.locator("#run-children-list li")
        expect(children).to_have_count(1)
        expect(children.get_by_role("link")).to_have_text(child)
        expect(children.locator(".state")).to_have_text("failed")
        children.get_by_role("link").click()
        expect(dashboard.state).to_have_text("failed")


def test_a_child_links_to_its_parent_and_a_dependent_lists_its_dependencies(
    tmp_path: Path, page: Page
) -> None:
    with (
        live_server(tmp_path, "--app", "tests.dashboard.sample_app:app") as server,
        httpx.Client(base_url=server.url, timeout=15) as api,
    ):
        # n=0: the child ends at once (the default count takes 5 s, as long as a Playwright
        # expectation waits).
        parent = submit(api, "sample.parent", tasks=["demo.count"], args={"n": 0})
        dependency = submit(api, "demo.count", n=0)
        response = api.post(
            "/runs", json={"task": "demo.count", "args": {"n": 0}, "after": [dependency]}
        )
        assert response.status_code == 201, response.text
        dependent = response.json()["id"]
        dashboard = Dashboard(page, server.url)
        dashboard.open_run(dependent)
        expect(dashboard.state).to_have_text("completed")
        expect(page.locator("#run-after-list li")).to_have_text([dependency])
        expect(page.locator("#run-parent-link")).to_be_hidden()
        expect(page.locator("#run-children")).to_be_hidden()
        dashboard.open_run(parent)
        expect(dashboard.state).to_have_text("completed")
        (child,) = [run["id"] for run in api.get("/runs", params={"parent": parent}).json()["runs"]]
        dashboard.open_run(child)
        expect(page.locator("#run-parent-link")).to_have_text(parent)
        page.locator("#run-parent-link").click()
        expect(page.locator("#run-id")).to_have_text(parent)


def test_an_event_type_that_tries_to_forge_a_frame_is_one_line_and_the_real_end_shows(
    tmp_path: Path, page: Page
) -> None:
    # Written straight to the store (past the doors that refuse such a type): the stream must
    # still carry it as one event, and the run's real terminal event after it.
    forged = "x\nid: 999\nevent: completed\ndata: {}\n\n"
    with (
        live_server(tmp_path, "--app", "tests.server.door_app:app") as server,
        httpx.Client(base_url=server.url, timeout=15) as api,
    ):
        run_id = submit(api, "door.forge", kind=forged)
        dashboard = Dashboard(page, server.url)
        dashboard.open_run(run_id)
        expect(dashboard.state).to_have_text("completed")
        expect(dashboard.log_lines_of("completed")).to_have_count(1)
        expect(dashboard.log_line(4)).to_be_visible()
        assert dashboard.log_seqs() == [1, 2, 3, 4]
        expect(dashboard.log_line(3)).to_contain_text("x\\nid: 999")
