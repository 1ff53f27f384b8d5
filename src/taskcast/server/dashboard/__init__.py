"""The browser dashboard: ``GET /`` and its static files under ``/dashboard/``.

Static HTML, CSS and plain JavaScript shipped inside the package (``static/``), read once and
served from memory; no build step, nothing loaded from elsewhere (the Content-Security-Policy
says so to the browser). The page holds no data: it is served without a token, and its script
asks for the token when the API answers 401 (see ``auth.py``). The data comes from the public
API: ``GET /runs``, ``GET /tasks``, ``GET /stats``, ``GET /changes``, ``GET /runs/{id}/events``,
``POST /runs``, ``POST /runs/{id}/cancel`` and ``POST /runs/{id}/retry``.

The charts are drawn with uPlot (``UPLOT_VERSION``, MIT licence in ``uPlot.LICENSE.txt``): its
minified script and stylesheet as the npm registry ships them (``npm pack uplot``), unchanged.
It draws on canvases and styles elements through the DOM, never with inline ``<style>`` or
``style`` attributes, so it runs under the strict policy below.
"""

from __future__ import annotations

import functools
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.exceptions import HTTPException

PREFIX = "/dashboard/"
"""Where the page's static files are served (open without a token, like ``/``)."""

UPLOT_VERSION = "1.6.32"
"""The uPlot release in ``static/`` (its script's first line names it)."""

_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
    "bulk.js": "text/javascript; charset=utf-8",
    "timeline.js": "text/javascript; charset=utf-8",
    "uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "uPlot.min.css": "text/css; charset=utf-8",
    "uPlot.LICENSE.txt": "text/plain; charset=utf-8",
}

PAGE_HEADERS = {
    # The headers of every page and page file (the API docs' too).
    # Everything comes from this server; nothing may be framed, inlined or fetched elsewhere.
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self';"
        " img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    # Reload after an upgrade gets the new files; unchanged ones cost a 304 at most.
    "cache-control": "no-cache",
}


@functools.cache
def _contents() -> dict[str, bytes]:
    """The page's files, read from the package once."""
    static = files(__name__) / "static"
    return {name: (static / name).read_bytes() for name in _TYPES}


def _serve(name: str) -> Response:
    return Response(_contents()[name], media_type=_TYPES[name], headers=PAGE_HEADERS)


router = APIRouter(include_in_schema=False)
"""The dashboard page (``/``) and its files (``/dashboard/<name>``)."""


@router.get("/")
async def home() -> Response:
    """The dashboard page."""
    return _serve("index.html")


@router.get(PREFIX + "{name}")
async def static_file(name: str) -> Response:
    """One of the page's files; 404 for any other name."""
    if name not in _TYPES or name == "index.html":
        raise HTTPException(404)  # the usual not_found body
    return _serve(name)
