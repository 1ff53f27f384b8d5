"""SIGTERM/SIGINT with open streams, 503 while draining, a second signal, restart and recovery."""

import asyncio
import contextlib
import re
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest
from httpx_sse import aconnect_sse

from .live import LiveServer, live_server
from .sse_client import Seen, read_events

STREAMS = 200
GRACE, SHUTDOWN_TIMEOUT = 1.0, 1.0
# The bound is checked on the server's own clock (it prints how long its shutdown took) and by its
# exit code (the force-exit watchdog exits 70), never by this process's clock: a busy machine
# delays the client's view of the exit, not the server's shutdown.


async def wait_draining(api: httpx.AsyncClient) -> None:
    async with asyncio.timeout(10):
        while (await api.get("/health")).status_code != 503:  # noqa: ASYNC110 (remote)
            await asyncio.sleep(0.02)  # polled: the signal is handled on the server's own time


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_signal_ends_every_stream_with_shutdown_and_exits_0_in_time(
    server: LiveServer, signum: int
) -> None:
    limits = httpx.Limits(max_connections=STREAMS + 10)
    async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as api:
        run_ids = [
            (await api.post("/runs", json={"task": "demo.wait"})).json()["id"] for _ in range(4)
        ]
        all_started = asyncio.Event()
        started = 0

        async def watch(run_id: str) -> list[str]:
            nonlocal started
            types = []
            async with aconnect_sse(api, "GET", f"/runs/{run_id}/events") as source:
                async for event in source.aiter_sse():
                    types.append(event.event)
                    if event.event == "started":
                        started += 1
                        if started == STREAMS:
                            all_started.set()
            return types

        async with asyncio.TaskGroup() as tasks:
            watchers = [tasks.create_task(watch(run_ids[i % 4])) for i in range(STREAMS)]
            await all_started.wait()
            server.signal(signum)
    code = await asyncio.to_thread(server.wait, 30)
    assert code == 0, server.output()  # 70 if the watchdog had to force the exit
    assert [w.result()[-1] for w in watchers] == ["shutdown"] * STREAMS
    output = server.output()
    assert "did not finish before shutdown: interrupted" in output
    assert "4 interrupted" in output
    found = re.search(r"taskcast stopped: shutdown in ([0-9.]+)s", output)
    assert found and float(found.group(1)) < GRACE + SHUTDOWN_TIMEOUT, "the server's own time"


async def test_new_runs_get_503_while_draining(tmp_path: Path) -> None:
    with live_server(tmp_path, "--grace", "20") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as api:
            run_id = (await api.post("/runs", json={"task": "demo.wait"})).json()["id"]
            async with aconnect_sse(api, "GET", f"/runs/{run_id}/events") as source:
                async with contextlib.aclosing(source.aiter_sse()) as events:
                    async for event in events:
                        if event.event == "started":
                            break
                    server.signal(signal.SIGTERM)
                    await wait_draining(api)
                    refused = await api.post("/runs", json={"task": "demo.count"})
                    assert refused.status_code == 503
                    assert refused.json()["error"] == "shutting_down"
                    # A running run may still finish during its grace; then the server exits.
                    await api.post(f"/runs/{run_id}/signals/continue", json="done")
                    rest = [event.event async for event in events]
                    assert rest[-1] == "completed"
        assert await asyncio.to_thread(server.wait, 10) == 0


async def test_a_second_signal_exits_at_once(tmp_path: Path) -> None:
    with live_server(tmp_path, "--grace", "60") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as api:
            run_id = (await api.post("/runs", json={"task": "demo.wait"})).json()["id"]
            await read_events(api, run_id, until="started")
            server.signal(signal.SIGTERM)
            await wait_draining(api)
            server.signal(signal.SIGTERM)
            # Within 10 s of a 60 s grace: the second signal did not wait for the run.
            assert await asyncio.to_thread(server.wait, 10) == 128 + signal.SIGTERM


async def test_the_next_serve_resumes_interrupted_runs(tmp_path: Path) -> None:
    with live_server(tmp_path, "--grace", "0", "--shutdown-timeout", "1") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as api:
            submitted = await api.post(
                "/runs", json={"task": "demo.count", "args": {"n": 3, "delay": 0.5}}
            )
            run_id = submitted.json()["id"]
            await read_events(api, run_id, until="progress")
            server.signal(signal.SIGTERM)
            assert await asyncio.to_thread(server.wait, 10) == 0
    with live_server(tmp_path, name="restarted") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=20) as api:
            events = await read_events(api, run_id)
            types = [e.type for e in events]
            assert "shutdown" in types and "retrying" in types
            assert types[-1] == "completed"
            run = (await api.get(f"/runs/{run_id}")).json()
            assert run["state"] == "completed" and run["attempt"] == 2


async def test_a_task_that_ignores_cancellation_does_not_hold_the_process(tmp_path: Path) -> None:
    args = ("--app", "tests.server.sample_app:app", "--grace", "0", "--shutdown-timeout", "0.5")
    with live_server(tmp_path, *args) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as api:
            run_id = (await api.post("/runs", json={"task": "sample.stubborn"})).json()["id"]
            events = await read_events(api, run_id, until="log")
            assert events[-1].data["message"] == "started"
            server.signal(signal.SIGTERM)
            # The task never ends: exiting 0 at all shows it did not hold the process.
            assert await asyncio.to_thread(server.wait, 10) == 0
    output = server.output()
    assert f"run {run_id} ignored cancellation during shutdown: interrupted" in output
    assert "leaving 1 run(s) that ignore cancellation behind" in output


def _chunks(body: bytes) -> tuple[bytes, bool]:
    """The payload of an HTTP/1.1 chunked body read so far, and whether its last chunk came."""
    payload, rest = bytearray(), body
    while rest:
        size_line, sep, rest = rest.partition(b"\r\n")
        if not sep:
            break
        size = int(size_line, 16)
        if size == 0:
            return bytes(payload), True
        if len(rest) < size + 2:
            break
        payload += rest[:size]
        rest = rest[size + 2 :]
    return bytes(payload), False


def test_a_stream_still_replaying_is_cut_short_when_shutdown_begins_and_resumes_after(
    tmp_path: Path,
) -> None:
    args = ("--app", "tests.server.sample_app:app", "--grace", "60", "--write-timeout", "60")
    with live_server(tmp_path, *args) as server:
        with httpx.Client(base_url=server.url, timeout=10) as api:
            body = {"task": "sample.chatty_then_wait", "args": {"n": 3000, "size": 1000}}
            run_id = api.post("/runs", json=body).json()["id"]
            deadline = time.monotonic() + 30
            while api.get(f"/runs/{run_id}").json()["last_seq"] < 3002:  # queued, started, 3000
                assert time.monotonic() < deadline, "the run did not write its log"
                time.sleep(0.05)  # polling a remote run, bounded by the deadline
            host, port = server.url.removeprefix("http://").split(":")
            with socket.create_connection((host, int(port))) as reader:
                reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
                reader.sendall(
                    f"GET /runs/{run_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
                )
                reader.settimeout(20)
                received = b""
                while b"id: 1\n" not in received:  # the replay began; then the client stops reading
                    data = reader.recv(4096)
                    assert data, "the server closed the stream"
                    received += data
                server.signal(signal.SIGTERM)
                deadline = time.monotonic() + 30
                while api.get("/health").status_code != 503:
                    assert time.monotonic() < deadline, "the server did not begin to stop"
                    time.sleep(0.02)  # polled: the signal is handled on the server's own time
                while not (data := reader.recv(65536)) == b"":
                    received += data
                    if _chunks(received.partition(b"\r\n\r\n")[2])[1]:
                        break
            # The whole body came while the server still waits out its 60 s of grace.
            assert server.process.poll() is None
            assert api.get("/health").json()["status"] == "draining"
        payload, complete = _chunks(received.partition(b"\r\n\r\n")[2])
        assert complete, "the body ended cleanly"
        *events, last, tail = payload.split(b"\n\n")
        assert tail == b""
        seqs = [int(event.split(b"\n")[-4].removeprefix(b"id: ")) for event in events]
        cursor = seqs[-1]
        assert seqs == list(range(1, cursor + 1)) and cursor < 3002, "cut mid-replay, no gap"
        assert last == b'event: shutdown\ndata: {"reason":"shutdown","resume_after":%d}' % cursor
        server.signal(signal.SIGTERM)  # the second signal: exit at once
        assert server.wait(10) == 128 + signal.SIGTERM
    with live_server(tmp_path, *args, name="next") as server:
        resumed = asyncio.run(_first_events(server.url, run_id, cursor, 5))
        assert [seen.seq for seen in resumed] == list(range(cursor + 1, cursor + 6))


async def _first_events(url: str, run_id: str, cursor: int, count: int) -> list[Seen]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as api:
        seen: list[Seen] = []
        headers = {"Last-Event-ID": str(cursor)}
        async with aconnect_sse(api, "GET", f"/runs/{run_id}/events", headers=headers) as source:
            async with contextlib.aclosing(source.aiter_sse()) as events:
                async for event in events:
                    seen.append(Seen(int(event.id), event.event, event.data))
                    if len(seen) == count:
                        break
        return seen
