"""The Schedules view and scheduled runs on the dashboard: real Chromium, real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from ..server.live import LiveServer, live_server
from .pages import Dashboard


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    """A server with two schedules: ``nightly`` (cron, active) and ``hourly`` (paused)."""
    args = ("--app", "tests.dashboard.schedules_app:app", "--grace", "0")
    with live_server(tmp_path, *args, "--shutdown-timeout", "1") as started:
        yield started


def open_schedules(page: Page, server: LiveServer) -> None:
    page.goto(f"{server.url}/#/schedules")
    expect(page.locator("#schedules-view")).to_be_visible()


def test_the_schedules_view_lists_each_schedule_with_when_it_ticks(
    page: Page, server: LiveServer
) -> None:
    open_schedules(page, server)
    nightly = page.locator('#schedules-body tr[data-name="nightly"] td')
    expect(nightly.nth(2)).to_have_text("0 3 * * * (UTC)")
    expect(nightly.nth(3)).to_have_text("active")
    expect(nightly.nth(4)).not_to_have_text("—")  # its next tick
    hourly = page.locator('#schedules-body tr[data-name="hourly"] td')
    expect(hourly.nth(3)).to_have_text("paused")
    expect(hourly.nth(4)).to_have_text("—")


def test_a_schedule_is_paused_and_resumed_from_the_page(
    page: Page, server: LiveServer, api: httpx.Client
) -> None:
    open_schedules(page, server)
    page.get_by_role("button", name="Pause nightly").click()
    expect(page.locator('#schedules-body tr[data-name="nightly"] td').nth(3)).to_have_text("paused")
    assert api.get("/schedules").json()["schedules"][0]["paused"] is True
    page.get_by_role("button", name="Resume nightly").click()
    expect(page.locator('#schedules-body tr[data-name="nightly"] td').nth(3)).to_have_text("active")


def test_run_now_starts_a_run_and_links_it(page: Page, server: LiveServer) -> None:
    open_schedules(page, server)
    page.get_by_role("button", name="Run hourly now").click()
    link = page.locator('#schedules-body tr[data-name="hourly"] td').nth(6).locator("a")
    expect(link).to_have_count(1)
    link.click()
    expect(page.locator("#run-state")).to_have_text("completed")
    expect(page.locator("#run-task")).to_have_text("sample.report")


def test_the_counter_and_a_runs_page_show_a_scheduled_run(
    dashboard: Dashboard, api: httpx.Client
) -> None:
    dashboard.open_list()
    expect(dashboard.count_of("scheduled")).to_have_text("scheduled 0")
    response = api.post("/runs", json={"task": "sample.report", "delay": 3600, "priority": 7})
    run_id = response.json()["id"]
    expect(dashboard.count_of("scheduled")).to_have_text("scheduled 1")
    expect(dashboard.row_state(run_id)).to_have_text("scheduled")
    dashboard.open_run(run_id)
    expect(dashboard.state).to_have_text("scheduled")
    expect(dashboard.page.locator("#run-at")).to_be_visible()
    expect(dashboard.page.locator("#run-priority")).to_have_text("7")
    dashboard.cancel()
    expect(dashboard.state).to_have_text("cancelled")
