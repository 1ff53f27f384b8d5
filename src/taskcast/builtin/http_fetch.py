"""The ``http.fetch`` built-in task: one HTTP request (and its redirects) to a public address.

``http.fetch(url, method="GET", headers=None, body=None, timeout=30, max_bytes=10 MiB)``
streams the response, emitting ``progress`` (``current`` = bytes received so far, ``total`` =
the Content-Length, or ``None`` when the server does not say) at most every 0.1 s and once at
the end, and returns ``{"url", "status", "headers", "body", "bytes"}``. ``body`` is the parsed
JSON when the response says it is JSON, text for text types, else base64 (then
``"body_encoding": "base64"``). Any status is a result, not a failure: the caller decides.

A body that says it is JSON but holds what no store could keep (``NaN``, a lone surrogate
``"\\ud800"``) is returned as its text, like a body that is not JSON at all: a result is
stored, listed and streamed, and must be read back.

Where it connects is checked (``fetch_guard.py``): loopback, private, link-local and other
non-public addresses are refused (``AddressNotAllowed``) unless the ``FetchPolicy`` allows
them. Each run has its own client, closed with the run; with ``allow_private`` it uses the
app's shared one (``ctx.http``, which honours proxy variables).

Fails (the run ends ``failed``) on a network error, a refused address, a body over
``max_bytes``, or after ``timeout`` seconds for the whole request (``TimeoutError``).
Cancelled, it closes its connection at once: the response is closed unread, so the connection
is dropped, never returned to the pool half-read.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import httpx
from pydantic import Field

from ..app import App
from ..models import strict_loads
from ..runs.context import Context
from .fetch_guard import FetchPolicy, GuardedTransport

TASK_NAME = "http.fetch"
PROGRESS_INTERVAL = 0.1
"""Seconds between two ``progress`` events of one download."""
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
_TEXT_TYPES = ("text/", "application/xml", "application/javascript", "+xml")

Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def register_http_fetch(app: App, policy: FetchPolicy | None = None) -> None:
    """Register ``http.fetch`` on ``app`` (``ValueError`` if the name is taken); ``policy``
    says which non-public addresses it may reach (default: none)."""
    policy = policy or FetchPolicy()
    ssl_contexts: list[ssl.SSLContext] = []  # made once, at the first fetch (it takes ~40 ms)

    @contextlib.asynccontextmanager
    async def client(ctx: Context) -> AsyncIterator[httpx.AsyncClient]:
        if policy.allow_private:
            yield ctx.http
            return
        if not ssl_contexts:
            ssl_contexts.append(httpx.create_ssl_context())
        transport = GuardedTransport(policy, ssl_contexts[0])
        async with httpx.AsyncClient(
            transport=transport, follow_redirects=True, trust_env=False
        ) as guarded:
            yield guarded

    @app.task(name=TASK_NAME)
    async def fetch(
        ctx: Context,
        url: Annotated[str, Field(pattern=r"^https?://", max_length=8192)],
        method: Method = "GET",
        headers: dict[str, str] | None = None,
        body: str | None = None,
        timeout: Annotated[float, Field(gt=0, le=86_400)] = 30.0,
        max_bytes: Annotated[int, Field(ge=0)] = DEFAULT_MAX_BYTES,
    ) -> dict[str, Any]:
        """Fetch a URL, streaming download progress; returns status, headers and body."""
        try:
            # The client first: the timeout is the request's (making a TLS context can take
            # tens of milliseconds on a busy machine).
            async with client(ctx) as http, asyncio.timeout(timeout):
                return await _fetch(ctx, http, url, method, headers, body, timeout, max_bytes)
        except TimeoutError:
            raise TimeoutError(f"{method} {url} did not finish within {timeout:g} s") from None


async def _fetch(
    ctx: Context,
    http: httpx.AsyncClient,
    url: str,
    method: str,
    headers: dict[str, str] | None,
    body: str | None,
    timeout: float,
    max_bytes: int,
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    chunks: list[bytes] = []
    size = 0
    async with http.stream(
        method, url, headers=headers, content=body, timeout=httpx.Timeout(timeout)
    ) as response:
        total = _content_length(response)
        last_progress = float("-inf")
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise ValueError(
                    f"the response of {url} is larger than max_bytes ({max_bytes} bytes)"
                )
            chunks.append(chunk)
            now = loop.time()
            if now - last_progress >= PROGRESS_INTERVAL:
                last_progress = now
                await ctx.progress(response.num_bytes_downloaded, total)
        await ctx.progress(response.num_bytes_downloaded, total, message="done")
        result: dict[str, Any] = {
            "url": str(response.url),
            "status": response.status_code,
            "headers": dict(response.headers),
            "bytes": response.num_bytes_downloaded,
        }
        result.update(_decode(response, b"".join(chunks)))
    return result


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length")
    # ASCII digits only (``str.isdigit`` takes "²", which ``int`` cannot read), and a length
    # ``int`` reads quickly.
    if value is None or not (value.isascii() and value.isdigit() and len(value) <= 19):
        return None
    return int(value)


def _decode(response: httpx.Response, content: bytes) -> dict[str, Any]:
    """The body as JSON, text or base64, by the response's Content-Type."""
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    text: str | None = None
    if "json" in kind or kind.startswith(_TEXT_TYPES) or kind.endswith(_TEXT_TYPES):
        text = content.decode(response.encoding or "utf-8", errors="replace")
    if text is not None and "json" in kind:
        try:
            return {"body": strict_loads(text)}
        except (ValueError, RecursionError):
            pass  # says JSON, is not (or not JSON a store keeps): hand the text over as it is
    if text is not None:
        return {"body": text}
    if not content:
        return {"body": None}
    return {"body": base64.b64encode(content).decode("ascii"), "body_encoding": "base64"}
