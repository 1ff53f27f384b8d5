"""Labels, keyboard use, contrast, and a phone-sized screen."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from ..server.live import live_server
from .pages import Dashboard, submit

CONTRAST = """
() => {
  const luminance = (rgb) => {
    const [r, g, b] = rgb.match(/\\d+(\\.\\d+)?/g).slice(0, 3).map(Number).map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const background = (element) => {
    for (let node = element; node; node = node.parentElement) {
      const color = getComputedStyle(node).backgroundColor;
      if (color && !color.startsWith("rgba(0, 0, 0, 0)") && color !== "transparent") return color;
    }
    return "rgb(255, 255, 255)";
  };
  const worst = [];
  for (const element of document.querySelectorAll("body *")) {
    if (!element.offsetParent && element.tagName !== "BODY") continue;
    const own = [...element.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own) continue;
    const a = luminance(getComputedStyle(element).color);
    const b = luminance(background(element));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) worst.push(`${element.tagName}.${element.className}: ${ratio.toFixed(2)}`);
  }
  return worst;
}
"""


def test_every_form_control_has_a_label(dashboard: Dashboard) -> None:
    dashboard.open_list()
    dashboard.page.get_by_text("Submit a run").click()
    unlabelled = dashboard.page.locator("input, select, textarea").evaluate_all(
        "controls => controls.filter(c => !c.labels.length && !c.getAttribute('aria-label'))"
        ".map(c => c.id || c.name)"
    )
    assert unlabelled == []


def test_text_contrast_meets_wcag_aa_on_both_views(dashboard: Dashboard, api: httpx.Client) -> None:
    run_id = submit(api, "demo.fail")
    submit(api, "demo.count", n=1, delay=0)
    dashboard.open_list()
    expect(dashboard.row_state(run_id)).to_have_text("failed")
    assert dashboard.page.evaluate(CONTRAST) == []
    dashboard.open_run(run_id)
    expect(dashboard.outcome).to_be_visible()
    assert dashboard.page.evaluate(CONTRAST) == []


def test_a_run_can_be_opened_and_cancelled_with_the_keyboard_alone(
    dashboard: Dashboard, api: httpx.Client
) -> None:
    run_id = submit(api, "demo.wait")
    dashboard.open_list()
    page = dashboard.page
    link = dashboard.row(run_id).get_by_role("link")
    expect(link).to_be_visible()
    link.focus()
    page.keyboard.press("Enter")
    expect(dashboard.state).to_have_text("running")
    page.get_by_role("button", name="Cancel run…").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog")).to_be_visible()
    # Focus starts on the safe choice; Tab moves to the other one.
    expect(page.get_by_role("button", name="Keep it running")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Cancel the run")).to_be_focused()
    page.keyboard.press("Enter")
    expect(dashboard.state).to_have_text("cancelled")


def test_escape_closes_the_confirmation_without_cancelling(
    dashboard: Dashboard, api: httpx.Client
) -> None:
    run_id = submit(api, "demo.wait")
    dashboard.open_run(run_id)
    expect(dashboard.state).to_have_text("running")
    dashboard.page.get_by_role("button", name="Cancel run…").click()
    dashboard.page.keyboard.press("Escape")
    expect(dashboard.page.get_by_role("dialog")).to_be_hidden()
    api.post(f"/runs/{run_id}/signals/continue")
    expect(dashboard.state).to_have_text("completed")


def test_the_views_fit_a_phone_sized_screen(
    dashboard: Dashboard, api: httpx.Client, screenshot: Callable[[Page, str], None]
) -> None:
    page = dashboard.page
    page.set_viewport_size({"width": 375, "height": 740})
    run_id = submit(api, "demo.count", n=3, delay=0.05)
    submit(api, "demo.fail")
    dashboard.open_list()
    expect(dashboard.row_state(run_id)).to_have_text("completed")
    overflow = "() => document.documentElement.scrollWidth - window.innerWidth"
    assert page.evaluate(overflow) <= 0
    screenshot(page, "phone-list")
    dashboard.open_run(run_id)
    expect(dashboard.state).to_have_text("completed")
    assert page.evaluate(overflow) <= 0
    screenshot(page, "phone-run")


UNLABELLED = (
    "controls => controls.filter(c => !c.labels.length && !c.getAttribute('aria-label'))"
    ".map(c => c.id || c.name || c.outerHTML)"
)
OVERFLOW = "() => document.documentElement.scrollWidth - window.innerWidth"


def finished(api: httpx.Client, run_id: str) -> None:
    with api.stream("GET", f"/runs/{run_id}/events") as stream:
        stream.read()


def test_the_charts_selection_and_timeline_controls_have_labels(
    dashboard: Dashboard, api: httpx.Client
) -> None:
    run_id = submit(api, "demo.fail")
    finished(api, run_id)
    dashboard.open_list()
    expect(dashboard.row_state(run_id)).to_have_text("failed")
    page = dashboard.page
    expect(page.locator("#chart-ends canvas")).to_have_count(1)
    dashboard.select(run_id)
    assert page.locator("input, select, textarea").evaluate_all(UNLABELLED) == []
    # Each chart is an image named in words, and its key says the figures.
    for chart in ("#chart-ends", "#chart-load"):
        expect(page.locator(chart)).to_have_attribute("role", "img")
        expect(page.locator(chart)).to_have_attribute("aria-label", re.compile(r"^Runs .+: .+\."))
    dashboard.open_run(run_id)
    assert page.locator("input, select, textarea").evaluate_all(UNLABELLED) == []


def test_text_contrast_meets_wcag_aa_on_the_charts_bulk_outcome_and_timeline(
    tmp_path: Path, page: Page
) -> None:
    with (
        live_server(tmp_path, "--app", "tests.dashboard.sample_app:app") as server,
        httpx.Client(base_url=server.url, timeout=30) as api,
    ):
        parent = submit(api, "sample.fanout", n=6, fail_every=3)
        finished(api, parent)
        waiting = submit(api, "demo.wait")
        dashboard = Dashboard(page, server.url)
        dashboard.open_list()
        expect(page.locator("#chart-ends canvas")).to_have_count(1)
        expect(page.locator("#durations-body tr")).not_to_have_count(0)
        dashboard.select(waiting)
        dashboard.select(parent)
        assert page.evaluate(CONTRAST) == []
        page.get_by_role("button", name="Cancel selected…").click()
        page.get_by_role("dialog").get_by_role("button", name="Cancel 2 runs").click()
        expect(page.locator("#bulk-progress")).to_have_text("Done: 1 of 2 cancelled, 1 not.")
        assert page.evaluate(CONTRAST) == []
        dashboard.open_run(parent)
        expect(page.locator("#timeline li.child")).to_have_count(6)
        assert page.evaluate(CONTRAST) == []


def test_runs_can_be_selected_and_cancelled_in_bulk_with_the_keyboard_alone(
    dashboard: Dashboard, api: httpx.Client
) -> None:
    run_id = submit(api, "demo.wait")
    dashboard.open_list()
    page = dashboard.page
    expect(dashboard.row_state(run_id)).to_have_text("running")
    page.get_by_role("checkbox", name=f"Select run {run_id}", exact=True).focus()
    page.keyboard.press("Space")
    expect(page.locator("#bulk-count")).to_have_text("1 run selected")
    page.get_by_role("button", name="Cancel selected…").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog")).to_be_visible()
    # Focus starts on the safe choice; Tab moves to the other one.
    expect(page.get_by_role("button", name="Keep them as they are")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Cancel 1 run")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#bulk-outcome")).to_be_focused()
    expect(page.locator("#bulk-progress")).to_have_text("Done: 1 of 1 cancelled, 0 not.")
    expect(dashboard.row_state(run_id)).to_have_text("cancelled")


def test_pages_and_a_retry_are_reached_with_the_keyboard_alone(
    dashboard: Dashboard, api: httpx.Client
) -> None:
    failed = submit(api, "demo.fail")
    for _ in range(50):
        submit(api, "demo.count", n=0)
    dashboard.open_list("limit=50")
    page = dashboard.page
    page.get_by_role("button", name="Older →").focus()
    page.keyboard.press("Enter")
    link = dashboard.row(failed).get_by_role("link")
    expect(link).to_be_visible()
    link.focus()
    page.keyboard.press("Enter")
    expect(dashboard.state).to_have_text("failed")
    page.get_by_role("button", name="Retry run").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#cancel-status")).to_contain_text("Retried as ")


def test_the_charts_selection_and_timeline_fit_a_phone_sized_screen(
    tmp_path: Path, page: Page, screenshot: Callable[[Page, str], None]
) -> None:
    page.set_viewport_size({"width": 375, "height": 740})
    with (
        live_server(tmp_path, "--app", "tests.dashboard.sample_app:app") as server,
        httpx.Client(base_url=server.url, timeout=30) as api,
    ):
        parent = submit(api, "sample.fanout", n=8, seconds=0.05, fail_every=4)
        finished(api, parent)
        dashboard = Dashboard(page, server.url)
        dashboard.open_list()
        expect(page.locator("#chart-ends canvas")).to_have_count(1)
        expect(page.locator("#durations-body tr")).not_to_have_count(0)
        dashboard.select(parent)
        expect(page.locator("#bulk")).to_be_visible()
        assert page.evaluate(OVERFLOW) <= 0
        width = page.locator("#chart-ends canvas").evaluate("canvas => canvas.clientWidth")
        assert width <= 375
        screenshot(page, "phone-charts")
        dashboard.open_run(parent)
        expect(page.locator("#timeline li.child")).to_have_count(8)
        assert page.evaluate(OVERFLOW) <= 0
        screenshot(page, "phone-workflow")
