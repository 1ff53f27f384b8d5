"""Every run of the store, page by page: the ``before`` cursor, search by id prefix with the
task and state filters, and a summary that counts the whole store, not the page."""

from __future__ import annotations

import httpx
from playwright.sync_api import expect

from .pages import Dashboard, submit


def submit_with_id(api: httpx.Client, run_id: str, task: str, **args: object) -> str:
    response = api.post("/runs", json={"task": task, "args": args, "id": run_id})
    assert response.status_code == 201, response.text
    return run_id


def test_older_and_newer_pages_reach_every_run_once(
    dashboard: Dashboard, api: httpx.Client
) -> None:
    ids = [submit(api, "demo.count", n=0) for _ in range(120)]
    dashboard.open_list("limit=50")
    page = dashboard.page
    expect(page.locator("#runs-body tr")).to_have_count(50)
    expect(page.locator("#list-summary")).to_have_text("50 runs shown of 120 in all")
    seen = dashboard.listed_ids()
    for size in (50, 20):
        page.get_by_role("button", name="Older →").click()
        expect(page.locator("#runs-body tr")).to_have_count(size)
        seen += dashboard.listed_ids()
    assert seen == ids[::-1]
    expect(page.get_by_role("button", name="Older →")).to_be_disabled()
    page.get_by_role("button", name="← Newer").click()
    expect(page.locator("#runs-body tr").first).to_have_attribute("data-run-id", ids[69])
    page.get_by_role("button", name="Newest").click()
    expect(page.locator("#runs-body tr").first).to_have_attribute("data-run-id", ids[-1])
    expect(page.get_by_role("button", name="← Newer")).to_be_disabled()


def test_an_older_page_is_a_link_that_keeps_its_rows_live(
    dashboard: Dashboard, api: httpx.Client
) -> None:
    waiting = submit(api, "demo.wait")
    newer = [submit(api, "demo.count", n=0) for _ in range(50)]
    dashboard.open_list(f"limit=50&before={newer[0]}")
    expect(dashboard.page.locator("#runs-body tr")).to_have_count(1)
    expect(dashboard.row_state(waiting)).to_have_text("running")
    api.post(f"/runs/{waiting}/signals/continue")
    expect(dashboard.row_state(waiting)).to_have_text("completed")
    submit(api, "demo.count", n=0)  # a new run belongs to the newest page, not this one
    expect(dashboard.page.locator("#runs-body tr")).to_have_count(1)


def test_runs_are_found_by_id_prefix_together_with_task_and_state(
    dashboard: Dashboard, api: httpx.Client
) -> None:
    submit_with_id(api, "nightly-report-1", "demo.fail")
    submit_with_id(api, "nightly-report-2", "demo.count", n=0)
    submit_with_id(api, "nightly-sync-1", "demo.fail")
    submit_with_id(api, "hourly-report-1", "demo.fail")
    dashboard.open_list()
    page = dashboard.page
    expect(page.locator("#runs-body tr")).to_have_count(4)
    page.get_by_label("Run id starts with").fill("nightly-report")
    expect(page.locator("#runs-body tr")).to_have_count(2)
    page.get_by_label("Filter by task").select_option("demo.fail")
    expect(page.locator("#runs-body tr")).to_have_count(1)
    page.get_by_label("Filter by state").select_option("failed")
    # The list is redrawn for the new filter: wait for the summary that names it, then its row.
    expect(page.locator("#list-summary")).to_have_text(
        "1 run (failed, demo.fail, id starting with nightly-report)"
    )
    expect(page.locator("#runs-body tr")).to_have_count(1)
    assert dashboard.listed_ids() == ["nightly-report-1"]
    page.get_by_label("Run id starts with").fill("nightly-")
    expect(page.locator("#runs-body tr")).to_have_count(2)  # nightly-report-1, nightly-sync-1
    # Live: a new failing run with the prefix joins the list, another prefix does not.
    submit_with_id(api, "nightly-sync-2", "demo.fail")
    submit_with_id(api, "hourly-report-2", "demo.fail")
    expect(dashboard.row_state("nightly-sync-2")).to_have_text("failed")
    expect(page.locator("#runs-body tr")).to_have_count(3)


def test_the_summary_counts_the_whole_store_for_the_filter_not_the_page(
    dashboard: Dashboard, api: httpx.Client
) -> None:
    failed = [submit(api, "demo.fail") for _ in range(55)]
    for _ in range(5):
        submit(api, "demo.count", n=0)
    with api.stream("GET", f"/runs/{failed[-1]}/events") as stream:
        stream.read()
    dashboard.open_list("limit=50&task=demo.fail")
    expect(dashboard.page.locator("#runs-body tr")).to_have_count(50)
    expect(dashboard.page.locator("#list-summary")).to_have_text(
        "50 runs shown (demo.fail) of 55 in all"
    )
    dashboard.open_list("limit=50&state=completed")
    expect(dashboard.page.locator("#list-summary")).to_have_text("5 runs (completed)")
