"""A durable run's steps on its page: one bar per recorded step on one axis, with its duration,
and whether it ran or was replayed by a later attempt; live while the run goes on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from ..server.live import LiveServer, live_server
from .pages import Dashboard, submit


@pytest.fixture
def steps_server(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(tmp_path, "--app", "tests.server.steps_app:app") as server:
        yield server


def plan_args(tmp_path: Path, text: str) -> dict[str, str]:
    (tmp_path / "plan.txt").write_text(text)
    return {"counter": str(tmp_path / "calls.txt"), "plan": str(tmp_path / "plan.txt")}


def test_a_retried_run_shows_its_steps_ran_and_replayed(
    steps_server: LiveServer, page: Page, tmp_path: Path
) -> None:
    with httpx.Client(base_url=steps_server.url, timeout=60) as api:
        run_id = submit(api, "durable.plan", **plan_args(tmp_path, "one two crash three"))
        with api.stream("GET", f"/runs/{run_id}/events") as stream:
            stream.read()
    dashboard = Dashboard(page, steps_server.url)
    dashboard.open_run(run_id)
    expect(dashboard.state).to_have_text("completed")
    rows = page.locator("#steps-list li")
    expect(rows).to_have_count(3)
    expect(rows.locator(".timeline-name")).to_have_text(["one", "two", "three"])
    expect(rows.locator(".step-how")).to_have_text(
        ["ran in attempt 1, replayed", "ran in attempt 1, replayed", "ran in attempt 2"]
    )
    expect(page.locator("#steps-summary")).to_have_text(
        "3 steps recorded; 2 replayed in attempt 2 without running again"
    )
    expect(rows.locator(".timeline-bar.replayed")).to_have_count(2)
    for row in range(3):
        expect(rows.nth(row).locator(".step-duration")).to_contain_text(" s")


def test_steps_appear_live_as_the_run_records_them(
    steps_server: LiveServer, page: Page, tmp_path: Path
) -> None:
    with httpx.Client(base_url=steps_server.url, timeout=60) as api:
        run_id = submit(api, "durable.plan", **plan_args(tmp_path, "one two hold three"))
        dashboard = Dashboard(page, steps_server.url)
        dashboard.open_run(run_id)
        rows = page.locator("#steps-list li")
        expect(rows).to_have_count(2)  # the run holds after its second step
        expect(rows.locator(".step-how")).to_have_text(["ran in attempt 1", "ran in attempt 1"])
        expect(page.locator("#run-steps")).to_be_visible()
        api.post(f"/runs/{run_id}/cancel", json={}).raise_for_status()
        expect(dashboard.state).to_have_text("cancelled")
