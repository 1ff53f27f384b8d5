"""Browser tests of the dashboard: the machine's real headless Chromium (Playwright) against a
real ``taskcast serve``.

Playwright's sync API runs its own event loop in the main thread for as long as it is open, and
pytest-asyncio cannot run a test's loop meanwhile. So the browser lives for this package only
(every test here is a plain function; keep it so), and is closed before other packages' async
tests run. One browser for the package; a fresh context (cookies, session storage) per test.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from ..server.live import LiveServer, live_server
from .pages import Dashboard

CHROMIUM = os.environ.get("TASKCAST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = os.environ.get("TASKCAST_SCREENSHOTS")
"""A folder to save the main views' screenshots in (``docs/screenshots`` refreshes the docs')."""


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Headless Chromium from the system (never downloaded): a test fails without it."""
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.fail(
            f"no Chromium at {CHROMIUM}: `scripts/system-deps` installs it (as root: apt-get"
            " update && apt-get install -y chromium fonts-liberation), or set TASKCAST_CHROMIUM",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page in a fresh context; the test fails if the page's script throws."""
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    context.set_default_timeout(15_000)
    errors: list[str] = []
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"the dashboard's script threw: {errors}"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    """A fresh server with the demo tasks and short shutdown timings."""
    with live_server(tmp_path, "--grace", "0", "--shutdown-timeout", "1") as started:
        yield started


@pytest.fixture
def api(server: LiveServer) -> Iterator[httpx.Client]:
    """An HTTP client of ``server``, to arrange runs and to check what the page shows."""
    with httpx.Client(base_url=server.url, timeout=15) as client:
        yield client


@pytest.fixture
def dashboard(page: Page, server: LiveServer) -> Dashboard:
    """The dashboard of ``server`` in ``page``."""
    return Dashboard(page, server.url)


@pytest.fixture
def screenshot() -> Callable[[Page, str], None]:
    """``screenshot(page, name)``: saves ``name.png`` under $TASKCAST_SCREENSHOTS, if set."""

    def take(page: Page, name: str) -> None:
        if SCREENSHOTS:
            Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)

    return take
