"""Reading event streams in tests with httpx-sse."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import aconnect_sse


@dataclass
class Seen:
    seq: int
    type: str
    data: Any


async def read_events(
    client: httpx.AsyncClient,
    run_id: str,
    *,
    until: str | None = None,
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
) -> list[Seen]:
    """The events of one stream, until it ends (or until an event of type ``until``)."""
    seen: list[Seen] = []
    async with aconnect_sse(
        client, "GET", f"/runs/{run_id}/events", headers=dict(headers or {}), params=params
    ) as source:
        source.response.raise_for_status()
        async with contextlib.aclosing(source.aiter_sse()) as events:
            async for event in events:
                seen.append(Seen(int(event.id), event.event, json.loads(event.data)))
                if event.event == until:
                    break
    return seen
