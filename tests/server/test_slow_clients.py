"""A client that stops reading is cut after the write deadline and counted; nobody else waits."""

import socket
import time
from pathlib import Path

import httpx

from .live import live_server


def test_a_client_that_stops_reading_is_cut_and_counted(tmp_path: Path) -> None:
    args = ("--app", "tests.server.sample_app:app", "--write-timeout", "0.5")
    with (
        live_server(tmp_path, *args) as server,
        httpx.Client(base_url=server.url, timeout=10) as api,
    ):
        run = api.post("/runs", json={"task": "sample.chatty", "args": {"n": 20000, "size": 1000}})
        run_id = run.json()["id"]
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as stalled:
            # Read nothing: the kernel buffers fill, then the server's writes block.
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stalled.sendall(
                f"GET /runs/{run_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
            )
            deadline = time.monotonic() + 30
            while "taskcast_watchers_dropped_total 1.0" not in api.get("/metrics").text:
                assert time.monotonic() < deadline, "the stalled client was never cut"
                time.sleep(0.1)  # polling a remote counter, bounded by the deadline
            assert api.get("/health").json()["streams"] == 0
        assert "cut a client that stopped reading" in server.output()
        assert "ASGI callable" not in server.output(), "the connection was aborted, not left open"


def test_a_slow_reader_falls_behind_and_catches_up_with_no_gap(tmp_path: Path) -> None:
    args = ("--app", "tests.server.sample_app:app", "--write-timeout", "5")
    with (
        live_server(tmp_path, *args) as server,
        httpx.Client(base_url=server.url, timeout=10) as api,
    ):
        run = api.post("/runs", json={"task": "sample.chatty", "args": {"n": 3000, "size": 2000}})
        run_id = run.json()["id"]
        host, port = server.url.removeprefix("http://").split(":")
        received = bytearray()
        with socket.create_connection((host, int(port))) as slow:
            slow.sendall(f"GET /runs/{run_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            slow.settimeout(20)
            while not received.endswith(b"0\r\n\r\n"):
                data = slow.recv(16384)
                assert data, "the server closed the stream early"
                received += data
                time.sleep(0.001)  # a slow reader, not a synchronisation
        seqs = [int(line[4:]) for line in received.split(b"\n") if line.startswith(b"id: ")]
        assert seqs == list(range(1, 3004)), "every event once, in order"
        assert "taskcast_watchers_dropped_total 0.0" in api.get("/metrics").text
