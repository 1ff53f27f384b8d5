"""What both clients are configured with, checked at the door."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import httpx

from .stream import ReconnectPolicy


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """A client's settings; see ``AsyncClient`` for their meaning. Raises ``ValueError`` for a
    timeout that is not a positive number of seconds."""

    url: str
    token: str | None
    timeout: float
    read_timeout: float
    reconnect: ReconnectPolicy

    def __post_init__(self) -> None:
        for name in ("timeout", "read_timeout"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")

    def http_options(self) -> dict[str, Any]:
        """Keyword arguments for ``httpx.Client`` and ``httpx.AsyncClient``."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return {"base_url": self.url, "headers": headers, "timeout": self.timeout}

    def stream_timeout(self, read: float | None = None) -> httpx.Timeout:
        """The timeouts of an event stream: each read waits at most ``read`` seconds (default
        ``read_timeout``); keep-alive comments count as reads, so a quiet but live stream stays."""
        return httpx.Timeout(self.timeout, read=self.read_timeout if read is None else read)
