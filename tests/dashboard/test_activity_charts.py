"""The list page's activity charts: the whole store's figures from ``GET /stats``, drawn with
the uPlot shipped in the package, live, under the page's strict Content-Security-Policy."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from playwright.sync_api import Page, expect

from ..server.live import LiveServer
from .pages import Dashboard, submit

CSP_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


def wait_for(api: httpx.Client, run_id: str) -> None:
    with api.stream("GET", f"/runs/{run_id}/events") as stream:
        stream.read()  # ends after the terminal event


def test_the_charts_count_runs_started_and_ended_by_state_and_queued_and_running(
    dashboard: Dashboard, api: httpx.Client, screenshot: Callable[[Page, str], None]
) -> None:
    for run_id in (submit(api, "demo.fail"), submit(api, "demo.count", n=1, delay=0)):
        wait_for(api, run_id)
    waiting = submit(api, "demo.wait")
    dashboard.open_list()
    ends = dashboard.page.locator("#chart-ends-key li")
    expect(ends).to_have_text(
        ["3 started", "1 completed", "1 failed", "0 cancelled", "0 timed out"]
    )
    expect(dashboard.page.locator("#chart-load-key li").nth(1)).to_have_text(
        "1 running now (at most 1)"
    )
    # Drawn by uPlot on canvases, and described in words for those who cannot see them.
    expect(dashboard.page.locator("#chart-ends canvas")).to_have_count(1)
    expect(dashboard.page.locator("#chart-ends")).to_have_attribute(
        "aria-label",
        "Runs per minute over the last hour: 3 started, 1 completed, 1 failed, 0 cancelled,"
        " 0 timed out.",
    )
    screenshot(dashboard.page, "list")
    api.post(f"/runs/{waiting}/cancel")


def test_the_charts_follow_new_runs_while_the_page_is_open(
    dashboard: Dashboard, api: httpx.Client
) -> None:
    dashboard.open_list()
    expect(dashboard.page.locator("#chart-ends-key li").first).to_have_text("0 started")
    wait_for(api, submit(api, "demo.fail"))
    expect(dashboard.page.locator("#chart-ends-key li").nth(2)).to_have_text("1 failed")


def test_the_durations_table_has_each_tasks_runs_p50_p95_and_longest(
    dashboard: Dashboard, api: httpx.Client
) -> None:
    for run_id in [submit(api, "demo.count", n=1, delay=0) for _ in range(3)]:
        wait_for(api, run_id)
    durations = api.get("/stats").json()["durations"]["demo.count"]
    dashboard.open_list()
    row = dashboard.page.locator("#durations-body tr")
    expect(row).to_have_count(1)
    expect(row.locator("th, td")).to_have_text(
        [
            "demo.count",
            "3",
            f"{durations['p50']:.1f} s",
            f"{durations['p95']:.1f} s",
            f"{durations['max']:.1f} s",
            "",
        ]
    )
    expect(dashboard.page.locator("#durations-empty")).to_be_hidden()


def test_the_period_can_be_the_last_24_hours(dashboard: Dashboard, api: httpx.Client) -> None:
    wait_for(api, submit(api, "demo.fail"))
    dashboard.open_list()
    asked: list[str] = []
    dashboard.page.on("request", lambda request: asked.append(request.url))
    dashboard.page.get_by_label("Period").select_option("24h")
    expect(dashboard.page.locator("#chart-ends")).to_have_attribute(
        "aria-label",
        "Runs per 15 minutes over the last 24 hours: 1 started, 0 completed,"
        " 1 failed, 0 cancelled, 0 timed out.",
    )
    assert any(url.endswith("/stats?window=24h&step=15m") for url in asked)


def test_every_file_comes_from_the_server_and_the_policy_blocks_nothing(
    page: Page, server: LiveServer, api: httpx.Client
) -> None:
    page.add_init_script(CSP_VIOLATIONS)
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    wait_for(api, submit(api, "demo.fail"))
    dashboard = Dashboard(page, server.url)
    dashboard.open_list()
    expect(page.locator("#chart-ends canvas")).to_have_count(1)
    expect(page.locator("#chart-ends-key li").nth(2)).to_have_text("1 failed")
    response = page.request.get(f"{server.url}/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert "style-src 'self'" in response.headers["content-security-policy"]
    assert f"{server.url}/dashboard/uPlot.iife.min.js" in asked
    assert [url for url in asked if not url.startswith(server.url)] == []
    assert page.evaluate("() => window.cspViolations") == []
