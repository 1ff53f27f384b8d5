"""Event streams that resume by themselves: cut connections, a restarted server, a dead peer.

A real server, real clients, and a real TCP proxy on 127.0.0.1 (``proxy.py``) that breaks the
connections between them on purpose.
"""

import asyncio
import contextlib
import signal
from contextlib import ExitStack
from pathlib import Path

import pytest

from taskcast import AsyncClient, Client, ConnectionFailed, Event, StreamLost

from ..server.live import LiveServer, live_server
from .conftest import port_of
from .proxy import Breakage, BreakingProxy

EVERY = 97  # events per connection before the proxy cuts it
MID_EVENT_CONNECTION = 3  # this connection is cut halfway through an event


def cut_often(connection: int) -> Breakage:
    """Cut every connection after EVERY events, one of them mid-event; alternate FIN and RST."""
    return Breakage(
        after=EVERY, mid_event=connection == MID_EVENT_CONNECTION, reset=connection % 2 == 1
    )


def assert_the_whole_count(events: list[Event], run_id: str, n: int) -> None:
    """``demo.count(n)`` seen once each, in order: queued, started, n progress, completed."""
    assert [e.seq for e in events] == list(range(1, n + 4))
    assert [e.type for e in events] == ["queued", "started", *["progress"] * n, "completed"]
    assert [e.data["current"] for e in events[2:-1]] == list(range(1, n + 1))
    assert {e.run_id for e in events} == {run_id}


async def test_events_yield_each_of_1000_events_once_in_order_through_cut_connections(
    server: LiveServer,
) -> None:
    async with (
        BreakingProxy(port_of(server.url), cut_often) as proxy,
        AsyncClient(proxy.url, max_reconnect_delay=0.05) as client,
    ):
        run = await client.submit("demo.count", n=997, delay=0.002)  # 1,000 events in all
        events = [event async for event in client.events(run.id)]
    assert_the_whole_count(events, run.id, 997)
    assert len(proxy.breaks) >= 1000 // EVERY and cut_often(MID_EVENT_CONNECTION) in proxy.breaks


async def test_sync_events_yield_each_of_1000_events_once_in_order_through_cut_connections(
    server: LiveServer,
) -> None:
    def follow(url: str) -> tuple[str, list[Event]]:
        with Client(url, max_reconnect_delay=0.05) as client:
            run = client.submit("demo.count", n=997, delay=0.002)
            return run.id, list(client.events(run.id))

    async with BreakingProxy(port_of(server.url), cut_often) as proxy:
        run_id, events = await asyncio.to_thread(follow, proxy.url)
    assert_the_whole_count(events, run_id, 997)
    assert len(proxy.breaks) >= 1000 // EVERY and cut_often(MID_EVENT_CONNECTION) in proxy.breaks


async def test_events_follow_a_run_across_a_server_restart_to_its_end(tmp_path: Path) -> None:
    # The proxy stands for the service's stable address; the second server, on the same store,
    # gets a port of its own: binding the first one's port again could race with the client's
    # reconnects (a connect to a free port of the ephemeral range can end up connected to itself).
    with ExitStack() as servers:
        first = await asyncio.to_thread(
            servers.enter_context,
            live_server(tmp_path, "--grace", "0", "--shutdown-timeout", "1", name="first"),
        )

        def restart() -> None:
            first.signal(signal.SIGTERM)
            assert first.wait(30) == 0
            second = servers.enter_context(live_server(tmp_path, name="second"))
            proxy.upstream_port = port_of(second.url)

        events: list[Event] = []
        # Reconnects for 25 s at least: enough for a server to start on a busy machine.
        async with (
            BreakingProxy(port_of(first.url)) as proxy,
            AsyncClient(proxy.url, reconnects=100, max_reconnect_delay=0.5) as client,
            asyncio.TaskGroup() as restarting,
        ):
            run = await client.submit("demo.count", n=10, delay=0.1)
            async with contextlib.aclosing(client.events(run.id)) as stream:
                async for event in stream:
                    events.append(event)
                    if event.type == "progress" and "shutdown" not in [e.type for e in events]:
                        if event.data["current"] == 1:  # once: the new attempt counts from 1 too
                            restarting.create_task(asyncio.to_thread(restart))
            resumed = await client.get(run.id)
    types = [e.type for e in events]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert "shutdown" in types and types.index("shutdown") < types.index("retrying")
    assert types[-1] == "completed" and resumed.attempt == 2 and resumed.last_seq == len(events)
    assert events[-1].data["result"] == {"counted": 10}
    assert proxy.connections >= 3  # the stream, then refused reconnects, then the resumed one


async def test_a_silent_connection_is_replaced_within_the_read_timeout(server: LiveServer) -> None:
    read_timeout = 1.0
    # The first connection goes silent after 2 events (queued, started) and stays open.
    async with (
        BreakingProxy(
            port_of(server.url), lambda n: Breakage(after=2, silent=True) if n == 0 else Breakage()
        ) as proxy,
        AsyncClient(proxy.url, read_timeout=read_timeout, max_reconnect_delay=0.05) as client,
    ):
        run = await client.submit("demo.wait")
        async with asyncio.TaskGroup() as tasks:
            following = tasks.create_task(_collect(client.events(run.id)))
            await proxy.wait_until(lambda: proxy.connections == 2)
            await client.signal(run.id, "continue", "done")
        events = following.result()
    assert proxy.silent_since is not None
    noticed_after = proxy.connected_at[1] - proxy.silent_since
    # The bound is the read timeout; the margin is for a busy 2-core machine.
    assert read_timeout * 0.9 <= noticed_after <= read_timeout + 5.0
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert [e.type for e in events] == ["queued", "started", "signal", "step", "completed"]


async def test_keep_alives_keep_a_quiet_stream_open_past_the_read_timeout(
    server: LiveServer,
) -> None:
    # The server sends a keep-alive after 0.5 s of quiet; 6 of them span over 2.5 s.
    async with (
        BreakingProxy(port_of(server.url), lambda n: Breakage()) as proxy,
        AsyncClient(proxy.url, read_timeout=1.5) as client,
    ):
        run = await client.submit("demo.wait")
        async with asyncio.TaskGroup() as tasks:
            following = tasks.create_task(_collect(client.events(run.id)))
            await proxy.wait_until(lambda: proxy.keep_alives >= 6)
            await client.signal(run.id, "continue")
        assert [e.type for e in following.result()][-1] == "completed"
    assert [path for path in proxy.requests if path.endswith(b"/events")] == [
        f"/runs/{run.id}/events".encode()
    ]  # one stream: never reconnected


async def test_events_raise_stream_lost_after_the_configured_failed_reconnects(
    server: LiveServer,
) -> None:
    async with AsyncClient(server.url, reconnects=2, max_reconnect_delay=0.05) as client:
        run = await client.submit("demo.wait")
        async with contextlib.aclosing(client.events(run.id)) as events:
            assert (await anext(events)).type == "queued"
            assert (await anext(events)).type == "started"
            server.process.kill()  # no shutdown event, and nobody listens any more
            with pytest.raises(StreamLost) as caught:
                await anext(events)
    lost = caught.value
    assert (lost.run_id, lost.last_seq, lost.attempts) == (run.id, 2, 2)
    assert isinstance(lost, ConnectionFailed) and f"after={2}" in lost.message


async def _collect(events: object) -> list[Event]:
    collected = []
    async with contextlib.aclosing(events) as stream:  # type: ignore[type-var]
        async for event in stream:
            collected.append(event)
    return collected
