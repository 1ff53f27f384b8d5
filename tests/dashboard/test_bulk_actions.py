"""Selecting runs in the list, one by one, by page or all matching the filter, and cancelling
or retrying them, with what happened to each run shown."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from playwright.sync_api import Page, expect

from .pages import Dashboard, submit


def finished(api: httpx.Client, run_id: str) -> str:
    with api.stream("GET", f"/runs/{run_id}/events") as stream:
        stream.read()
    state: str = api.get(f"/runs/{run_id}").json()["state"]
    return state


def confirm(dashboard: Dashboard, button: str) -> None:
    dialog = dashboard.page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name=button).click()
    expect(dialog).to_be_hidden()


def test_selected_runs_are_cancelled_with_an_outcome_for_each(
    dashboard: Dashboard, api: httpx.Client, screenshot: Callable[[Page, str], None]
) -> None:
    waiting = [submit(api, "demo.wait") for _ in range(3)]
    done = submit(api, "demo.count", n=0)
    finished(api, done)
    dashboard.open_list()
    page = dashboard.page
    for run_id in [*waiting, done]:
        expect(dashboard.row(run_id)).to_be_visible()
        dashboard.select(run_id)
    expect(page.locator("#bulk-count")).to_have_text("4 runs selected")
    page.get_by_role("button", name="Cancel selected…").click()
    expect(page.get_by_role("dialog")).to_contain_text("Cancel 4 runs?")
    confirm(dashboard, "Cancel 4 runs")
    expect(page.locator("#bulk-progress")).to_have_text("Done: 3 of 4 cancelled, 1 not.")
    outcomes = page.locator("#bulk-results li")
    for run_id in waiting:
        expect(outcomes.filter(has_text=run_id)).to_have_text(f"{run_id} — cancelling")
        expect(dashboard.row_state(run_id)).to_have_text("cancelled")
    expect(outcomes.filter(has_text=done)).to_have_text(
        f"{done} — not cancelled: run '{done}' already finished (completed)"
    )
    expect(page.locator("#bulk")).to_be_hidden()  # the selection is spent
    screenshot(page, "bulk-cancel")


def test_keeping_the_runs_in_the_confirmation_changes_nothing(
    dashboard: Dashboard, api: httpx.Client
) -> None:
    run_id = submit(api, "demo.wait")
    dashboard.open_list()
    expect(dashboard.row_state(run_id)).to_have_text("running")
    dashboard.select(run_id)
    dashboard.page.get_by_role("button", name="Cancel selected…").click()
    confirm(dashboard, "Keep them as they are")
    expect(dashboard.page.locator("#bulk-count")).to_have_text("1 run selected")
    assert api.get(f"/runs/{run_id}").json()["state"] == "running"
    api.post(f"/runs/{run_id}/cancel")


def test_all_runs_matching_the_filter_are_retried_beyond_the_page(
    dashboard: Dashboard, api: httpx.Client
) -> None:
    failed = [submit(api, "demo.fail") for _ in range(60)]
    submit(api, "demo.count", n=0)
    finished(api, failed[-1])
    dashboard.open_list("limit=50&state=failed")
    page = dashboard.page
    expect(page.locator("#runs-body tr")).to_have_count(50)
    page.get_by_role("checkbox", name="Select every run on this page").check()
    expect(page.locator("#bulk-count")).to_have_text("50 runs selected")
    page.get_by_role("button", name="Select all 60 matching the filter").click()
    expect(page.locator("#bulk-count")).to_have_text("60 runs selected")
    page.get_by_role("button", name="Retry selected…").click()
    confirm(dashboard, "Retry 60 runs")
    expect(page.locator("#bulk-progress")).to_have_text("Done: 60 of 60 retried, 0 not.")
    expect(page.locator("#bulk-results li", has_text="retried as")).to_have_count(60)
    retries = api.get("/runs", params={"task": "demo.fail", "limit": 200}).json()["runs"]
    assert sorted(run["retry_of"] for run in retries if run["retry_of"]) == sorted(failed)
