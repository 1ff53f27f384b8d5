"""Labels, keyboard use, contrast, and a phone-sized screen."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from playwright.sync_api import Page, expect

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
