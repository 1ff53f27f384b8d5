"""The list of runs: live updates, the submit form, filters and the counter by state."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from ..server.live import live_server
from .pages import Dashboard, submit


def test_a_run_submitted_from_the_form_appears_in_the_list_and_completes_there(
    dashboard: Dashboard, api: httpx.Client
) -> None:
    others = [submit(api, "demo.fail"), submit(api, "demo.count", n=2, delay=0)]
    waiting = submit(api, "demo.wait")
    dashboard.open_list()
    page = dashboard.page
    expect(dashboard.row_state(waiting)).to_have_text("running")
    page.get_by_text("Submit a run").click()
    page.get_by_label("Task", exact=True).select_option("demo.count")
    page.get_by_label("N (n)").fill("3")
    page.get_by_label("Delay (delay)").fill("0.2")
    page.get_by_role("button", name="Submit").click()
    link = page.locator("#submit-error a")
    expect(link).to_be_visible()
    run_id = link.inner_text()
    expect(dashboard.row(run_id)).to_be_visible()
    expect(dashboard.cell(run_id, "task")).to_have_text("demo.count")
    expect(dashboard.row_state(run_id)).to_have_text("completed")
    expect(dashboard.cell(run_id, "attempt")).to_have_text("1")
    assert dashboard.listed_ids() == [run_id, waiting, *reversed(others)]
    assert api.get(f"/runs/{run_id}").json()["args"] == {"n": 3, "delay": 0.2}
    link.click()
    expect(dashboard.page.locator("#run-id")).to_have_text(run_id)
    expect(dashboard.state).to_have_text("completed")


def test_the_submit_form_names_a_bad_argument(dashboard: Dashboard) -> None:
    dashboard.open_list()
    page = dashboard.page
    page.get_by_text("Submit a run").click()
    page.get_by_label("Task", exact=True).select_option("demo.count")
    # The browser checks the field's own bounds; past them, the server names the argument.
    page.get_by_label("N (n)").evaluate("input => { input.min = ''; input.max = ''; }")
    page.get_by_label("N (n)").fill("-1")
    page.get_by_role("button", name="Submit").click()
    expect(page.locator("#submit-error")).to_contain_text("n:")
    expect(page.locator("#runs-body tr")).to_have_count(0)


def test_runs_submitted_elsewhere_appear_newest_first_while_the_page_is_open(
    dashboard: Dashboard, api: httpx.Client
) -> None:
    first = submit(api, "demo.count", n=0)
    dashboard.open_list()
    expect(dashboard.row(first)).to_be_visible()
    second = submit(api, "demo.fail")
    expect(dashboard.row_state(second)).to_have_text("failed")
    assert dashboard.listed_ids() == [second, first]


def test_the_list_filters_by_state(dashboard: Dashboard, api: httpx.Client) -> None:
    completed = submit(api, "demo.count", n=0)
    failed = submit(api, "demo.fail")
    dashboard.open_list()
    expect(dashboard.row_state(failed)).to_have_text("failed")
    expect(dashboard.row_state(completed)).to_have_text("completed")
    dashboard.page.get_by_label("Filter by state").select_option("failed")
    expect(dashboard.page.locator("#runs-body tr")).to_have_count(1)
    expect(dashboard.row(failed)).to_be_visible()
    # Live too: a run that fails now joins the filtered list, one that completes does not.
    also_failed = submit(api, "demo.fail")
    submit(api, "demo.count", n=0)
    expect(dashboard.row(also_failed)).to_be_visible()
    expect(dashboard.page.locator("#runs-body tr")).to_have_count(2)


def test_the_list_filters_by_task(dashboard: Dashboard, api: httpx.Client) -> None:
    counted = submit(api, "demo.count", n=0)
    failed = submit(api, "demo.fail")
    dashboard.open_list("task=demo.count")
    expect(dashboard.page.get_by_label("Filter by task")).to_have_value("demo.count")
    expect(dashboard.row(counted)).to_be_visible()
    expect(dashboard.row(failed)).to_have_count(0)
    dashboard.page.get_by_label("Filter by task").select_option("")
    expect(dashboard.row(failed)).to_be_visible()


def test_a_run_leaves_a_state_filter_when_its_state_changes(
    dashboard: Dashboard, api: httpx.Client
) -> None:
    run_id = submit(api, "demo.wait")
    dashboard.open_list("state=running")
    expect(dashboard.row(run_id)).to_be_visible()
    api.post(f"/runs/{run_id}/signals/continue")
    expect(dashboard.row(run_id)).to_have_count(0)


def test_the_counter_shows_runs_by_state_live(dashboard: Dashboard, api: httpx.Client) -> None:
    submit(api, "demo.fail")
    dashboard.open_list()
    expect(dashboard.count_of("failed")).to_have_text("failed 1")
    expect(dashboard.count_of("completed")).to_have_text("completed 0")
    submit(api, "demo.fail")
    submit(api, "demo.count", n=0)
    expect(dashboard.count_of("failed")).to_have_text("failed 2")
    expect(dashboard.count_of("completed")).to_have_text("completed 1")
    dashboard.count_of("failed").click()
    expect(dashboard.page.get_by_label("Filter by state")).to_have_value("failed")
    expect(dashboard.page.locator("#runs-body tr")).to_have_count(2)


def test_runs_outside_the_task_filter_cost_the_page_no_request(
    dashboard: Dashboard, api: httpx.Client
) -> None:
    dashboard.open_list("task=demo.fail")
    expect(dashboard.page.locator("#list-summary")).to_have_text("No runs (demo.fail)")
    asked: list[str] = []
    dashboard.page.on("request", lambda request: asked.append(request.url))
    for _ in range(5):
        submit(api, "demo.count", n=0)
    failed = submit(api, "demo.fail")
    expect(dashboard.row_state(failed)).to_have_text("failed")
    expect(dashboard.page.locator("#runs-body tr")).to_have_count(1)
    assert [url for url in asked if "/runs" in url] == []


def test_the_list_shows_interrupted_then_the_recovered_state_across_a_restart(
    tmp_path: Path, page: Page
) -> None:
    args = ("--grace", "0", "--shutdown-timeout", "1")
    with live_server(tmp_path, *args, name="first") as first:
        with httpx.Client(base_url=first.url, timeout=15) as api:
            run_id = submit(api, "demo.count", n=20, delay=0.1)
        dashboard = Dashboard(page, first.url)
        dashboard.open_list()
        expect(dashboard.row_state(run_id)).to_have_text("running")
        first.signal(signal.SIGTERM)
        expect(dashboard.row_state(run_id)).to_have_text("interrupted")
        expect(dashboard.count_of("interrupted")).to_have_text("interrupted 1")
        assert first.wait(15) == 0
    with live_server(tmp_path, *args, name="second", port=first.port):
        expect(dashboard.row_state(run_id)).to_have_text("completed", timeout=30_000)
        expect(dashboard.cell(run_id, "attempt")).to_have_text("2")
        expect(dashboard.count_of("interrupted")).to_have_text("interrupted 0")
        expect(page.locator("#connection")).to_have_text("live")
