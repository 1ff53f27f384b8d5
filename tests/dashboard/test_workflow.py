"""A workflow's shape on its run's page: dependencies, the run and its child runs as one
timeline (a bar per run, coloured by state), live, and usable with 10,000 children."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from ..server.live import LiveServer, live_server
from .pages import Dashboard, submit


@pytest.fixture
def workflow_server(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(tmp_path, "--app", "tests.dashboard.sample_app:app") as server:
        yield server


@pytest.fixture
def flow_api(workflow_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=workflow_server.url, timeout=60) as client:
        yield client


def finished(api: httpx.Client, run_id: str) -> None:
    with api.stream("GET", f"/runs/{run_id}/events") as stream:
        stream.read()


def test_a_parents_children_are_bars_coloured_by_state_on_one_axis(
    workflow_server: LiveServer,
    flow_api: httpx.Client,
    page: Page,
    screenshot: Callable[[Page, str], None],
) -> None:
    parent = submit(flow_api, "sample.fanout", n=12, seconds=0.05, fail_every=4)
    finished(flow_api, parent)
    dashboard = Dashboard(page, workflow_server.url)
    dashboard.open_run(parent)
    expect(dashboard.state).to_have_text("completed")
    expect(page.locator("#workflow-summary")).to_have_text("12 child runs: 9 completed, 3 failed")
    rows = page.locator("#timeline li")
    expect(rows).to_have_count(13)  # this run, then its children in the order they were created
    expect(rows.first).to_contain_text("this run")
    children = page.locator("#timeline li.child")
    expect(children.locator(".state")).to_have_text(
        ["completed"] * 3
        + ["failed"]
        + ["completed"] * 3
        + ["failed"]
        + ["completed"] * 3
        + ["failed"]
    )
    expect(children.nth(3).locator(".timeline-bar.bar-failed")).to_have_count(2)  # waited, ran
    expect(children.nth(0)).to_contain_text("ran 0.")
    # Every bar lies within the track: one axis, from the first creation to the last end.
    boxes = children.locator(".timeline-bar:not(.waiting)").evaluate_all(
        "bars => bars.map(bar => [bar.offsetLeft, bar.offsetWidth, bar.parentElement.offsetWidth])"
    )
    assert all(0 <= left and left + width <= track + 1 for left, width, track in boxes)
    expect(page.locator("#workflow-chart canvas")).to_have_count(1)
    expect(page.locator("#workflow-chart-key li").nth(2)).to_have_text("12 ended")
    screenshot(page, "run-workflow")
    page.get_by_label("Show").select_option("failed")
    expect(children).to_have_count(3)
    children.first.get_by_role("link").click()
    expect(dashboard.state).to_have_text("failed")


def test_the_timeline_follows_children_as_they_start_and_end(
    workflow_server: LiveServer, flow_api: httpx.Client, page: Page
) -> None:
    parent = submit(flow_api, "sample.parent", tasks=["demo.wait"])
    dashboard = Dashboard(page, workflow_server.url)
    dashboard.open_run(parent)
    child = page.locator("#timeline li.child")
    expect(child.locator(".state")).to_have_text("running")
    expect(child).to_contain_text("so far")
    (child_id,) = [
        run["id"] for run in flow_api.get("/runs", params={"parent": parent}).json()["runs"]
    ]
    flow_api.post(f"/runs/{child_id}/signals/continue")
    expect(child.locator(".state")).to_have_text("completed")
    expect(page.locator("#workflow-summary")).to_have_text("1 child run: 1 completed")
    expect(dashboard.state).to_have_text("completed")


def test_a_dependent_shows_the_runs_it_waited_for_on_its_timeline(
    workflow_server: LiveServer, flow_api: httpx.Client, page: Page
) -> None:
    first = submit(flow_api, "demo.fail")
    finished(flow_api, first)
    response = flow_api.post(
        "/runs",
        json={"task": "demo.count", "args": {"n": 0}, "after": [first], "after_policy": "always"},
    )
    dependent = response.json()["id"]
    dashboard = Dashboard(page, workflow_server.url)
    dashboard.open_run(dependent)
    expect(dashboard.state).to_have_text("completed")
    dependency = page.locator("#timeline li.dependency")
    expect(dependency).to_contain_text("demo.fail (waited for)")
    expect(dependency.locator(".state")).to_have_text("failed")
    expect(page.locator("#workflow-summary")).to_have_text("No child runs; waited for 1 run")


def test_a_parent_with_10000_children_is_shown_a_page_at_a_time_with_counts_of_all(
    workflow_server: LiveServer, flow_api: httpx.Client, page: Page
) -> None:
    parent = submit(flow_api, "sample.fanout", n=10_000, fail_every=1000)
    finished(flow_api, parent)
    dashboard = Dashboard(page, workflow_server.url)
    dashboard.open_run(parent)
    summary = page.locator("#workflow-summary")
    expect(summary).to_have_text("10,000 child runs: 9,990 completed, 10 failed", timeout=60_000)
    children = page.locator("#timeline li.child")
    expect(children).to_have_count(100)  # a page of them in the document, not 10,000
    expect(page.locator("#timeline-position")).to_have_text("child runs 1\u2013100 of 10,000")
    page.get_by_role("button", name="Later →").click()
    expect(page.locator("#timeline-position")).to_have_text("child runs 101\u2013200 of 10,000")
    expect(children.first.get_by_role("link")).to_have_accessible_name(f"Run {parent}.100")
    page.get_by_label("Show").select_option("failed")
    expect(children).to_have_count(10)
    expect(page.locator("#timeline-position")).to_have_text("child runs 1\u201310 of 10")
    expect(page.locator("#workflow-chart-key li").nth(2)).to_have_text("10,000 ended")
    render = page.evaluate(
        "() => { const started = performance.now(); workflow.render();"
        " return performance.now() - started; }"
    )
    print(f"\nrendering the timeline of a 10,000-child workflow: {render:.1f} ms")
