from collections.abc import Iterator
from pathlib import Path

import pytest

from .live import LiveServer, live_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    """A fresh server with the demo tasks and a short keep-alive."""
    with live_server(
        tmp_path, "--keepalive", "0.3", "--grace", "1", "--shutdown-timeout", "1"
    ) as s:
        yield s
