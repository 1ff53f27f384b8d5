"""serve --uds: the whole API over a Unix socket."""

import signal
import tempfile
from pathlib import Path

import httpx

from .live import live_server


def test_the_api_and_streams_work_over_a_unix_socket(tmp_path: Path) -> None:
    # Unix socket paths are short (108 bytes): pytest's tmp_path can be too long.
    with tempfile.TemporaryDirectory(prefix="tc") as short:
        path = str(Path(short) / "taskcast.sock")
        with live_server(tmp_path, "--uds", path) as server:
            assert server.uds == path
            transport = httpx.HTTPTransport(uds=path)
            with httpx.Client(transport=transport, base_url="http://taskcast", timeout=10) as api:
                assert api.get("/health").json()["status"] == "ok"
                run = api.post("/runs", json={"task": "demo.count", "args": {"n": 2, "delay": 0}})
                with api.stream("GET", f"/runs/{run.json()['id']}/events") as stream:
                    assert "event: completed" in stream.read().decode()
            server.signal(signal.SIGTERM)
            assert server.wait(10) == 0
        assert not Path(path).exists(), "the socket file is removed on exit"
