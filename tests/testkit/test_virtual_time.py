"""Virtual time: timers jump, real work outside the loop still completes."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from taskcast.testing import VirtualTime, virtual_time


@pytest.mark.virtual_time
async def test_one_hour_timeout_fires_in_milliseconds() -> None:
    loop = asyncio.get_running_loop()
    started_virtual, started_real = loop.time(), time.perf_counter()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(3600):
            await asyncio.Event().wait()
    assert loop.time() - started_virtual == pytest.approx(3600)
    assert time.perf_counter() - started_real < 1.0


async def test_timers_fire_in_order_of_their_deadlines(virtual_time: VirtualTime) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    fired: list[tuple[str, float]] = []
    loop.call_later(10, lambda: fired.append(("ten", loop.time() - start)))
    loop.call_later(5, lambda: fired.append(("five", loop.time() - start)))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.sleep(60), timeout=20)
    assert [name for name, _ in fired] == ["five", "ten"]
    assert [at for _, at in fired] == pytest.approx([5.0, 10.0])
    assert loop.time() - start == pytest.approx(20)
    assert virtual_time.jumped >= 20


def _real_work() -> bytes:
    # CPU work in a thread: however long it takes, the clock must wait for it.
    return hashlib.pbkdf2_hmac("sha256", b"password", b"salt", 100_000)


@pytest.mark.virtual_time
async def test_executor_work_completes_before_the_clock_jumps() -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    digest = await asyncio.wait_for(asyncio.to_thread(_real_work), timeout=0.001)
    assert len(digest) == 32
    assert loop.time() - start < 0.001


@pytest.fixture
def echo_server() -> Iterator[int]:
    """A blocking echo server in a thread: a peer the event loop cannot see."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        with server:
            conn, _ = server.accept()
            with conn:
                data = conn.recv(100)
                _real_work()  # the reply takes real time to compute
                conn.sendall(data)

    thread = threading.Thread(target=serve)
    thread.start()
    yield port
    thread.join()


@pytest.mark.virtual_time(io_idle=30.0)
async def test_socket_reply_arrives_before_a_virtual_timeout(echo_server: int) -> None:
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", echo_server)
    start = loop.time()
    writer.write(b"ping\n")
    line = await asyncio.wait_for(reader.readline(), timeout=0.5)
    assert line == b"ping\n"
    assert loop.time() - start < 0.5
    writer.close()
    await writer.wait_closed()


@pytest.mark.virtual_time(io_idle=0.0)
async def test_silent_peer_times_out_in_virtual_time() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.readline(), timeout=3600)
        writer.close()
        await writer.wait_closed()


def test_context_manager_fakes_time_for_asyncio_run() -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.sleep(7200)
        return loop.time() - start

    started = time.perf_counter()
    with virtual_time() as clock:
        assert asyncio.run(main()) == pytest.approx(7200)
    assert clock.jumped == pytest.approx(7200)
    assert time.perf_counter() - started < 1.0


def test_loops_get_their_real_clock_back_after_the_block() -> None:
    async def elapsed_of_short_sleep() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.sleep(0)
        return loop.time() - start

    with virtual_time():
        pass
    assert asyncio.run(elapsed_of_short_sleep()) < 1.0


@pytest.mark.parametrize("io_idle", [-1.0, float("nan"), float("inf")])
def test_io_idle_must_be_finite_and_not_negative(io_idle: float) -> None:
    with pytest.raises(ValueError, match="io_idle"):
        VirtualTime(io_idle=io_idle)


async def _close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def test_a_listening_server_does_not_slow_a_periodic_timer(
    virtual_time: VirtualTime,
) -> None:
    server = await asyncio.start_server(_close_at_once, "127.0.0.1", 0)
    async with server:
        for _ in range(100):
            await asyncio.sleep(0.01)
    assert virtual_time.idle_waits == 0
    assert virtual_time.jumped == pytest.approx(1.0)


async def _echo_later(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    line = await reader.readline()
    await asyncio.sleep(30)  # virtual: the client's timeout must not fire first
    writer.write(line)
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def test_a_client_and_server_of_one_loop_talk_without_real_waits(
    virtual_time: VirtualTime,
) -> None:
    server = await asyncio.start_server(_echo_later, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping\n")
        assert await asyncio.wait_for(reader.readline(), timeout=60) == b"ping\n"
        writer.close()
        await writer.wait_closed()
    assert virtual_time.idle_waits == 0
    assert virtual_time.jumped >= 30


@pytest.fixture
def echo_thread() -> Iterator[int]:
    """An echo server in a thread that serves one connection until it closes."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with server:
            conn, _ = server.accept()
            with conn:
                while data := conn.recv(100):
                    conn.sendall(data)

    thread = threading.Thread(target=serve)
    thread.start()
    yield server.getsockname()[1]
    thread.join()


async def test_a_connection_to_another_thread_stops_costing_once_it_is_quiet(
    echo_thread: int, virtual_time: VirtualTime
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", echo_thread)
    writer.write(b"ping\n")
    assert await reader.readline() == b"ping\n"
    for _ in range(50):  # the connection stays open and idle, as in a pool
        await asyncio.sleep(0.01)
    writer.close()
    await writer.wait_closed()
    assert virtual_time.idle_waits < 5  # once after the reply, not once per tick


@pytest.mark.virtual_time(io_idle=30.0)
async def test_a_request_from_a_client_in_another_thread_is_awaited() -> None:
    lines: list[bytes] = []
    replied = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lines.append(await asyncio.wait_for(reader.readline(), timeout=0.5))
        writer.write(b"ok\n")
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        replied.set()

    def client(port: int) -> None:
        with socket.create_connection(("127.0.0.1", port)) as conn:
            _real_work()  # the request takes real time to arrive
            conn.sendall(b"hello\n")
            conn.recv(100)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        thread = threading.Thread(target=client, args=(server.sockets[0].getsockname()[1],))
        thread.start()
        await replied.wait()
    thread.join()
    assert lines == [b"hello\n"]
