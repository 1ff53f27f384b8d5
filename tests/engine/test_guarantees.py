"""Guarantees across features: shielded terminal writes, partial results, bounded memory."""

from __future__ import annotations

import asyncio
from typing import Any

import taskcast
from taskcast import log as event_log
from taskcast.states import RunState
from taskcast.stores.memory import MemoryStore

from .conftest import collect, types


class CancelDuringTerminalWrite(MemoryStore):
    """A store whose terminal writes are hit by a cancellation of the writer, as a shutdown
    or a parent cancel could do at the worst moment."""

    async def transition(
        self,
        run_id: str,
        target: RunState,
        event_type: str,
        data: Any,
        *,
        durable: bool = True,
        **fields: Any,
    ) -> Any:
        result = await super().transition(
            run_id, target, event_type, data, durable=durable, **fields
        )
        if target.is_terminal:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            await asyncio.sleep(0)  # the cancellation lands here, after the write
        return result


async def test_the_terminal_write_is_not_lost_when_its_writer_is_cancelled() -> None:
    app = taskcast.App(CancelDuringTerminalWrite(), grace=0)

    @app.task(name="ok")
    async def ok() -> str:
        return "kept"

    async with app:
        run = await app.wait((await app.submit("ok")).id, timeout=5)
        assert run.state is RunState.COMPLETED and run.result == "kept"
        assert [e.type for e in await collect(app, run.id)][-1] == "completed"
        assert app.stats()["running"] == 0  # the slot was released despite the cancellation


async def test_partial_results_stay_in_the_log_when_a_batch_times_out(app: taskcast.App) -> None:
    @app.task(name="batch", timeout=0.1)
    async def batch(ctx: taskcast.Context, items: list[int]) -> int:
        total = 0
        for item in items:
            if item == 3:
                await asyncio.Event().wait()  # this item hangs
            total += item
            await ctx.emit("item_done", {"item": item, "total": total})
        return total

    run = await app.wait((await app.submit("batch", items=[1, 2, 3, 4])).id, timeout=5)
    assert run.state is RunState.TIMED_OUT
    events = await collect(app, run.id)
    partial = [e.data for e in events if e.type == "item_done"]
    assert partial == [{"item": 1, "total": 1}, {"item": 2, "total": 3}]
    assert types(events)[-1] == "timed_out"


async def test_memory_stays_bounded_under_many_runs_and_watchers(app: taskcast.App) -> None:
    @app.task(name="chatty")
    async def chatty(ctx: taskcast.Context, n: int) -> None:
        for i in range(n):
            await ctx.emit("tick", i)
            if i % 100 == 0:
                await asyncio.sleep(0)

    async def slow_watcher(run_id: str) -> int:
        count = 0
        async for _ in app.events(run_id):
            count += 1
            if count % 500 == 0:
                await asyncio.sleep(0)
        return count

    runs = [await app.submit("chatty", n=3 * event_log.TAIL_SIZE) for _ in range(4)]
    watchers = [asyncio.create_task(slow_watcher(r.id)) for r in runs for _ in range(25)]
    peak_tail = 0
    while not all(w.done() for w in watchers):
        channels = list(app._log._channels.values())  # type: ignore[union-attr]
        peak_tail = max([peak_tail, *(len(c.tail) for c in channels)])
        await asyncio.sleep(0)
    assert {await w for w in watchers} == {3 * event_log.TAIL_SIZE + 3}
    assert 0 < peak_tail <= event_log.TAIL_SIZE  # one bounded tail per run, whatever the lag
    assert app._log._channels == {}  # type: ignore[union-attr]
    assert app.stats()["watchers"] == 0
