"""``GET /docs``: Swagger UI for ``/openapi.json``, served from the package, offline.

FastAPI's own page loads Swagger UI from a CDN and starts it with an inline script: it needs
the internet, and a Content-Security-Policy as strict as the dashboard's blocks it. This page
is the same Swagger UI from a packaged copy (``swagger-ui-bundle-v2`` on PyPI: the static
files, no build step), started by a script file of ours, under the dashboard's policy. The
page and its files hold no data and are served without a token; its Authorize button sends
the token with each request it makes (the bearer scheme is in ``/openapi.json`` when the
server has a token).
"""

from __future__ import annotations

import functools
import hashlib

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from swagger_ui_bundle import swagger_ui_path

from .dashboard import PAGE_HEADERS

PATH = "/docs"
PREFIX = "/docs/"
"""Where the page's files are served (open without a token, like the page)."""

_PAGE = b"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>taskcast API</title>
<link rel="stylesheet" href="docs/swagger-ui.css">
<link rel="icon" type="image/png" href="docs/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script src="docs/start.js"></script>
</body>
</html>
"""

# Relative URLs: the page works behind a proxy that serves the API under a prefix.
_START = b"""window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
"""

_TYPES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "start.js": "text/javascript; charset=utf-8",
}


@functools.cache
def _files() -> dict[str, tuple[bytes, str]]:
    """Each file's bytes and ETag, read once per process (the bundle is about 1.5 MB)."""
    contents = {
        name: (swagger_ui_path / name).read_bytes() for name in _TYPES if name != "start.js"
    }
    contents["start.js"] = _START
    contents[""] = _PAGE
    return {
        name: (data, '"' + hashlib.sha256(data).hexdigest()[:32] + '"')
        for name, data in contents.items()
    }


def _serve(request: Request, name: str, media_type: str) -> Response:
    data, etag = _files()[name]
    headers = {**PAGE_HEADERS, "etag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=media_type, headers=headers)


router = APIRouter(include_in_schema=False)
"""The docs page (``/docs``) and its files (``/docs/<name>``)."""


@router.get(PATH)
async def page(request: Request) -> Response:
    """Swagger UI for /openapi.json."""
    return _serve(request, "", "text/html; charset=utf-8")


@router.get(PREFIX + "{name}")
async def page_file(request: Request, name: str) -> Response:
    """One of the page's files; 404 for any other name."""
    if name not in _TYPES:
        raise HTTPException(404)  # the usual not_found body
    return _serve(request, name, _TYPES[name])
