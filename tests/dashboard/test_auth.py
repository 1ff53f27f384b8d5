"""With a token on the server: the page asks for it once and keeps it for the browser session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from ..server.live import LiveServer, live_server
from .pages import Dashboard, submit

TOKEN = "dashboard-s3cret"


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(tmp_path, "--token", TOKEN) as server:
        yield server


def test_the_token_is_asked_once_and_kept_for_the_session(secured: LiveServer, page: Page) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=secured.url, timeout=15, headers=headers) as api:
        run_id = submit(api, "demo.count", n=2, delay=0.1)
    dashboard = Dashboard(page, secured.url)
    page.goto(secured.url)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(dashboard.row_state(run_id)).to_have_text("completed")
    dashboard.open_run(run_id)  # a new page load in the same session: no second sign-in
    expect(dashboard.state).to_have_text("completed")
    expect(dashboard.log_lines_of("completed")).to_have_count(1)
    expect(page.get_by_role("heading", name="Sign in")).to_be_hidden()


def test_a_wrong_token_is_refused_with_a_message(secured: LiveServer, page: Page) -> None:
    page.goto(secured.url)
    page.get_by_label("Token").fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("That token is wrong.")
    expect(page.locator("#list-view")).to_be_hidden()
