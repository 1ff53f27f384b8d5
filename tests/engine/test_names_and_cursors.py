"""Event types, signal names and cursors follow one rule wherever they enter.

A name is 1 to 64 characters from letters, digits and ``._:-`` (``taskcast.names``); the types
the engine writes are not a task's to emit. A cursor is an integer from 0 to 2^63 - 1
(``taskcast.cursors``). What breaks the rule is refused with ``InvalidRequest`` naming it, and
nothing is written.
"""

from __future__ import annotations

import asyncio

import pytest

import taskcast
from taskcast.cursors import MAX_SEQ
from taskcast.events import RESERVED_EVENT_TYPES

from .conftest import collect, types, wait_for_event

NOT_NAMES = [
    pytest.param("", id="empty"),
    pytest.param("x" * 65, id="65-characters"),
    pytest.param("two words", id="space"),
    pytest.param("x\nid: 999\nevent: completed\ndata: {}\n\n", id="forged-frame"),
    pytest.param("x\revent: completed", id="carriage-return"),
    pytest.param("caf\u00e9", id="non-ascii"),
    pytest.param("a/b", id="slash"),
    pytest.param("\u00b2", id="superscript"),
    pytest.param(42, id="not-a-string"),
]

NAMES_AT_THE_EDGES = ["a", "x" * 64, "Ab0._:-", "progress:sub.step-2", "9"]


@pytest.mark.parametrize("kind", NOT_NAMES)
async def test_an_event_type_outside_the_rule_is_refused_and_nothing_is_written(
    app: taskcast.App, kind: object
) -> None:
    @app.task(name="emits")
    async def emits(ctx: taskcast.Context) -> dict[str, object]:
        try:
            await ctx.emit(kind, {"x": 1})  # type: ignore[arg-type]
        except taskcast.InvalidRequest as exc:
            return {"param": exc.details.get("param"), "message": exc.message}
        return {}

    run = await app.wait((await app.submit("emits")).id, timeout=10)
    assert run.result["param"] == "type"
    assert "letters, digits and ._:-" in run.result["message"]
    assert types(await collect(app, run.id)) == ["queued", "started", "completed"]


@pytest.mark.parametrize("kind", sorted(RESERVED_EVENT_TYPES))
async def test_the_types_the_engine_writes_are_refused_for_emit(
    app: taskcast.App, kind: str
) -> None:
    @app.task(name="emits")
    async def emits(ctx: taskcast.Context) -> str:
        try:
            await ctx.emit(kind)
        except taskcast.InvalidRequest as exc:
            return exc.message
        return "emitted"

    run = await app.wait((await app.submit("emits")).id, timeout=10)
    assert f"event type {kind!r} is reserved" in run.result
    assert types(await collect(app, run.id)) == ["queued", "started", "completed"]


async def test_event_types_at_the_edges_of_the_rule_are_kept_as_they_are(
    app: taskcast.App,
) -> None:
    @app.task(name="emits")
    async def emits(ctx: taskcast.Context) -> None:
        for kind in NAMES_AT_THE_EDGES:
            await ctx.emit(kind)

    run = await app.wait((await app.submit("emits")).id, timeout=10)
    assert types(await collect(app, run.id))[2:-1] == NAMES_AT_THE_EDGES


@pytest.mark.parametrize("name", NOT_NAMES)
async def test_a_signal_name_outside_the_rule_is_refused_and_not_logged(
    app: taskcast.App, name: object
) -> None:
    @app.task(name="waits")
    async def waits(ctx: taskcast.Context) -> object:
        return await ctx.signal("go")

    run = await app.submit("waits")
    await wait_for_event(app, run.id, "started")
    with pytest.raises(taskcast.InvalidRequest, match="letters, digits") as refused:
        await app.signal(run.id, name, {"x": 1})  # type: ignore[arg-type]
    assert refused.value.details["param"] == "name"
    await app.signal(run.id, "go", "ok")
    done = await app.wait(run.id, timeout=10)
    assert done.result == "ok"
    signals = [e.data for e in await collect(app, run.id) if e.type == "signal"]
    assert signals == [{"name": "go", "data": "ok"}]


async def test_a_task_cannot_wait_for_a_signal_no_one_could_send(app: taskcast.App) -> None:
    @app.task(name="waits")
    async def waits(ctx: taskcast.Context) -> object:
        return await ctx.signal("no\nway", timeout=1)

    run = await app.wait((await app.submit("waits")).id, timeout=10)
    assert run.state is taskcast.RunState.FAILED
    assert run.error["type"] == "InvalidRequest" and "a signal name" in run.error["message"]


@pytest.mark.parametrize("after", [-1, MAX_SEQ + 1, "3", 1.5, True, None])
async def test_a_cursor_must_be_an_integer_from_0_to_2_63_minus_1(
    app: taskcast.App, after: object
) -> None:
    @app.task(name="t")
    async def t() -> None: ...

    run = await app.wait((await app.submit("t")).id, timeout=10)
    with pytest.raises(taskcast.InvalidRequest, match="after must be the seq") as refused:
        await collect(app, run.id, after=after)  # type: ignore[arg-type]
    assert refused.value.details["param"] == "after"


async def test_the_largest_cursor_reads_past_the_end_of_any_log(app: taskcast.App) -> None:
    @app.task(name="t")
    async def t() -> None: ...

    run = await app.wait((await app.submit("t")).id, timeout=10)
    assert await collect(app, run.id, after=MAX_SEQ) == []
    assert types(await collect(app, run.id, after=0)) == ["queued", "started", "completed"]


async def test_the_largest_cursor_on_a_running_run_waits_for_its_end_and_reads_nothing(
    app: taskcast.App,
) -> None:
    @app.task(name="waits")
    async def waits(ctx: taskcast.Context) -> None:
        await ctx.signal("go")

    run = await app.submit("waits")
    await wait_for_event(app, run.id, "started")
    reading = asyncio.ensure_future(collect(app, run.id, after=MAX_SEQ))
    await app.signal(run.id, "go")
    assert await asyncio.wait_for(reading, timeout=10) == []
