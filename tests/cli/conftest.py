from collections.abc import Iterator
from pathlib import Path

import pytest

from ..server.live import LiveServer, live_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(tmp_path) as s:
        yield s
