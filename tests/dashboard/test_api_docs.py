"""/docs in a real browser: Swagger UI from the package, offline, under the strict CSP, and its
Authorize button sends the server's token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import ConsoleMessage, Page, Request, Route, expect

from ..server.live import LiveServer, live_server

TOKEN = "docs-s3cret"


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(tmp_path, "--token", TOKEN) as server:
        yield server


class Offline:
    """Cuts ``page`` off from every origin but ``url``'s, recording what it tried to reach,
    and records the browser's Content-Security-Policy complaints."""

    def __init__(self, page: Page, url: str) -> None:
        self.elsewhere: list[str] = []
        self.refused_by_policy: list[str] = []
        self._origin = url.rstrip("/")
        page.route("**/*", self._route)
        page.on("console", self._console)

    def _route(self, route: Route, request: Request) -> None:
        if request.url.startswith(self._origin + "/"):
            route.continue_()
        else:
            self.elsewhere.append(request.url)
            route.abort()

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.refused_by_policy.append(message.text)


def test_the_docs_page_works_offline_under_the_content_security_policy(
    server: LiveServer, page: Page
) -> None:
    offline = Offline(page, server.url)
    response = page.goto(f"{server.url}/docs")
    assert response is not None
    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.get_by_text("Submit a run", exact=True)).to_be_visible()
    expect(page.get_by_text("Watch a run's events (SSE)", exact=True)).to_be_visible()
    assert offline.elsewhere == []
    assert offline.refused_by_policy == []


def test_the_docs_authorize_button_sends_the_token(secured: LiveServer, page: Page) -> None:
    offline = Offline(page, secured.url)
    sent: list[str | None] = []
    page.on(
        "request",
        lambda request: (
            sent.append(request.headers.get("authorization"))
            if request.url.endswith("/tasks")
            else None
        ),
    )
    page.goto(f"{secured.url}/docs")  # open without the token, like /openapi.json
    page.get_by_role("button", name="Authorize").first.click()
    page.locator("#auth-bearer-value").fill(TOKEN)
    page.get_by_role("button", name="Apply credentials").click()
    page.locator(".modal-ux").get_by_role("button", name="Close", exact=True).click()
    page.get_by_text("List tasks", exact=True).click()
    page.get_by_role("button", name="Try it out").click()
    page.get_by_role("button", name="Execute").click()
    expect(page.locator(".live-responses-table tbody .response-col_status").first).to_have_text(
        "200"
    )
    assert sent == [f"Bearer {TOKEN}"]
    assert offline.elsewhere == [] and offline.refused_by_policy == []


def test_the_docs_files_are_served_without_a_token_and_revalidate(secured: LiveServer) -> None:
    with httpx.Client(base_url=secured.url, timeout=10) as client:
        bundle = client.get("/docs/swagger-ui-bundle.js")
        assert bundle.status_code == 200 and bundle.headers["content-type"].startswith(
            "text/javascript"
        )
        again = client.get(
            "/docs/swagger-ui-bundle.js", headers={"If-None-Match": bundle.headers["etag"]}
        )
        assert again.status_code == 304 and again.content == b""
        assert client.get("/openapi.json").status_code == 200
        assert client.get("/docs/index.html").status_code == 404  # only the page's own files
        assert client.get("/runs").status_code == 401  # the data still needs the token
