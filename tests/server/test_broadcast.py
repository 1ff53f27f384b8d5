"""The broadcast of a run's live events to caught-up streams (in process, fake sockets)."""

import asyncio
import re
from collections.abc import AsyncIterator

import pytest

import taskcast
from taskcast.builtin import register_demo_tasks
from taskcast.server.streams.broadcast import MAX_BUFFERED, Departure, Hub


class FakeTransport:
    def __init__(self) -> None:
        self.written = bytearray()
        self.closing = False
        self.buffered = 0
        self.wrote = asyncio.Event()

    def write(self, data: bytes) -> None:
        self.written += data
        self.wrote.set()

    async def wait_for(self, seq: int) -> None:
        async with asyncio.timeout(5):
            while not self.seqs() or self.seqs()[-1] < seq:
                self.wrote.clear()
                await self.wrote.wait()

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def abort(self) -> None:
        self.closing = True

    def seqs(self) -> list[int]:
        return [int(n) for n in re.findall(rb"id: (\d+)\n", bytes(self.written))]


@pytest.fixture
async def app() -> AsyncIterator[taskcast.App]:
    app = taskcast.App(store="memory://")
    register_demo_tasks(app)
    async with app:
        yield app


async def test_members_get_each_live_event_once_from_where_they_joined(app: taskcast.App) -> None:
    hub = Hub(app)
    run = await app.submit("demo.wait")
    first, second = FakeTransport(), FakeTransport()
    a = hub.try_join(run.id, first, 0)
    b = hub.try_join(run.id, second, 2)  # already has events 1 and 2 (its own replay)
    assert a is not None and b is not None
    await app.signal(run.id, "continue", "ok")
    assert await a.departed is Departure.ENDED
    assert await b.departed is Departure.ENDED
    assert first.seqs() == [1, 2, 3, 4]
    assert second.seqs() == [3, 4]
    await hub.close()


async def test_a_stream_behind_the_broadcast_cannot_join(app: taskcast.App) -> None:
    hub = Hub(app)
    run = await app.submit("demo.wait")
    transport = FakeTransport()
    member = hub.try_join(run.id, transport, 0)
    assert member is not None
    await transport.wait_for(2)  # the broadcast delivered queued and started
    assert hub.try_join(run.id, FakeTransport(), 1) is None
    await app.cancel(run.id)
    await member.departed
    await hub.close()


async def test_a_member_whose_socket_fills_is_handed_back(app: taskcast.App) -> None:
    hub = Hub(app)
    run = await app.submit("demo.wait")
    transport = FakeTransport()
    transport.buffered = MAX_BUFFERED + 1
    member = hub.try_join(run.id, transport, 0)
    assert member is not None
    assert await member.departed is Departure.BEHIND
    assert member.seq == transport.seqs()[-1], "it knows what it was sent"
    await app.cancel(run.id)
    await hub.close()


async def test_a_closed_connection_leaves_and_the_last_one_stops_the_broadcast(
    app: taskcast.App,
) -> None:
    hub = Hub(app)
    run = await app.submit("demo.wait")
    transport = FakeTransport()
    transport.closing = True
    member = hub.try_join(run.id, transport, 0)
    assert member is not None
    assert await member.departed is Departure.GONE
    assert hub.member_count == 0 and hub.run_count == 0
    await hub.close()
    assert app.stats()["watchers"] == 0, "its reader ended"
    await app.cancel(run.id)
