"""The CLI's one way to talk to a taskcast server over HTTP (to be replaced by the Python
client library once it exists: every request the CLI makes is a method here)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx


class ClientError(Exception):
    """A request did not succeed; ``str()`` is a sentence for a person, ``exit_code`` for a
    script (2: the server refused the request, 3: the server could not be reached or failed)."""

    def __init__(self, message: str, *, exit_code: int, status: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.status = status
        self.code: str | None = None


@dataclass(slots=True)
class StreamEvent:
    """One Server-Sent Event of a run's log."""

    seq: int
    type: str
    data: Any


class ApiClient:
    """A connection to a taskcast server at ``url`` (``http://host:port``), optionally through a
    Unix socket ``uds``, with a bearer ``token``. Use as ``async with ApiClient(...) as api``."""

    def __init__(self, url: str, *, token: str | None = None, uds: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        transport = httpx.AsyncHTTPTransport(uds=uds) if uds else None
        self.url = url
        self._http = httpx.AsyncClient(
            base_url=url,
            headers=headers,
            transport=transport,
            timeout=httpx.Timeout(30.0, read=None),
        )

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        if response.is_error:
            raise _refused(response)
        return response.json()

    def _unreachable(self, exc: Exception) -> ClientError:
        return ClientError(
            f"cannot reach taskcast at {self.url} ({exc or type(exc).__name__}); is"
            " `taskcast serve` running there? (set --url or TASKCAST_URL)",
            exit_code=3,
        )

    async def submit(self, task: str, args: dict[str, Any], **options: Any) -> dict[str, Any]:
        """Submit a run; returns the run as JSON."""
        body = {"task": task, "args": args, **{k: v for k, v in options.items() if v is not None}}
        run: dict[str, Any] = await self._request("POST", "/runs", json=body)
        return run

    async def get(self, run_id: str) -> dict[str, Any]:
        run: dict[str, Any] = await self._request("GET", f"/runs/{run_id}")
        return run

    async def runs(self, **filters: Any) -> list[dict[str, Any]]:
        params = {k: v for k, v in filters.items() if v is not None}
        body = await self._request("GET", "/runs", params=params)
        runs: list[dict[str, Any]] = body["runs"]
        return runs

    async def cancel(self, run_id: str, reason: str) -> None:
        await self._request("POST", f"/runs/{run_id}/cancel", json={"reason": reason})

    async def signal(self, run_id: str, name: str, data: Any) -> None:
        await self._request("POST", f"/runs/{run_id}/signals/{name}", json=data)

    async def events(self, run_id: str, after: int = 0) -> AsyncIterator[StreamEvent]:
        """The run's events after ``after``, live, until the server ends the stream."""
        try:
            async with self._http.stream(
                "GET", f"/runs/{run_id}/events", params={"after": after}
            ) as response:
                if response.status_code == 204:
                    return
                if response.is_error:
                    await response.aread()
                    raise _refused(response)
                async with contextlib.aclosing(_parse_sse(response.aiter_lines())) as events:
                    async for event in events:
                        yield event
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None


def _refused(response: httpx.Response) -> ClientError:
    try:
        body = response.json()
        message = str(body["message"])
        code = str(body.get("error"))
    except (ValueError, KeyError, TypeError):
        message, code = f"the server answered {response.status_code}: {response.text[:200]}", None
    error = ClientError(
        message, exit_code=3 if response.status_code >= 500 else 2, status=response.status_code
    )
    error.code = code
    return error


async def _parse_sse(lines: AsyncIterator[str]) -> AsyncGenerator[StreamEvent, None]:
    """Events from SSE lines (``id``/``event``/``data`` fields; comments and retry ignored)."""
    seq, kind, data = 0, "message", list[str]()
    async for line in lines:
        if not line:
            if data:
                yield StreamEvent(seq, kind, json.loads("\n".join(data)))
            kind, data = "message", []
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "id" and value.isdigit():
            seq = int(value)
        elif field == "event":
            kind = value
        elif field == "data":
            data.append(value)
