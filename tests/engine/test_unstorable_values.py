"""What a store could not write back is refused where it enters, and fails alone.

A lone surrogate (``"\\ud800"``) is not Unicode text; NaN, infinity and ``1e400`` are not JSON
numbers. A run holding one could be stored and never read back, and would break every listing
that includes it; in SQLite it would kill the writer that commits every run's changes. So the
Python API refuses them (``NotSerializable`` naming the value, nothing stored), a task that
returns or emits one fails that run alone, and the store goes on.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

import taskcast
from taskcast.stores.sqlite import SQLiteStore

from .conftest import collect, types

UNSTORABLE = [
    pytest.param(float("nan"), "value is nan, which is not a JSON number", id="nan"),
    pytest.param({"x": float("inf")}, "value.x is inf", id="infinity"),
    pytest.param("caf\ud800", "lone surrogate", id="lone-surrogate"),
    pytest.param({"ok": [1, {"deep": "\udfff"}]}, "ok\\[1\\].deep holds a lone", id="nested"),
    pytest.param({"\ud800": 1}, "lone surrogate", id="key"),
]


@pytest.mark.parametrize(("value", "problem"), UNSTORABLE)
async def test_an_argument_the_store_cannot_keep_is_refused_and_nothing_is_stored(
    app: taskcast.App, value: object, problem: str
) -> None:
    @app.task(name="takes")
    async def takes(value: object) -> None: ...

    with pytest.raises(taskcast.NotSerializable, match=problem) as refused:
        await app.submit("takes", value=value)
    assert "the arguments of 'takes'" in refused.value.message
    assert await app.runs() == []
    run = await app.wait((await app.submit("takes", value=1.5)).id, timeout=10)
    assert run.state is taskcast.RunState.COMPLETED  # the store goes on


async def test_a_float_parameter_refuses_nan_and_infinity_naming_it(app: taskcast.App) -> None:
    @app.task(name="scale")
    async def scale(x: float) -> float:
        return x * 2

    for bad in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(taskcast.InvalidArguments) as refused:
            await app.submit("scale", x=bad)
        assert refused.value.details["problems"][0]["param"] == "x"
    assert await app.runs() == []
    assert (await app.wait((await app.submit("scale", x=2.5)).id, timeout=10)).result == 5.0


@pytest.mark.parametrize(("value", "problem"), UNSTORABLE)
async def test_a_result_the_store_cannot_keep_fails_that_run_alone(
    app: taskcast.App, value: object, problem: str
) -> None:
    @app.task(name="returns")
    async def returns(bad: bool) -> object:
        return value if bad else "fine"

    bad = await app.wait((await app.submit("returns", bad=True)).id, timeout=10)
    assert bad.state is taskcast.RunState.FAILED
    assert bad.error is not None and bad.error["type"] == "NotSerializable"
    assert "the result of task 'returns'" in bad.error["message"]
    good = await app.wait((await app.submit("returns", bad=False)).id, timeout=10)
    assert good.result == "fine"
    assert {run.id for run in await app.runs()} == {bad.id, good.id}  # the listing works


@pytest.mark.parametrize(("value", "problem"), UNSTORABLE)
async def test_event_data_the_store_cannot_keep_is_refused_in_the_task(
    app: taskcast.App, value: object, problem: str
) -> None:
    @app.task(name="emits")
    async def emits(ctx: taskcast.Context) -> str:
        try:
            await ctx.emit("row", value)
        except taskcast.NotSerializable as exc:
            return exc.message
        return "emitted"

    run = await app.wait((await app.submit("emits")).id, timeout=10)
    assert run.state is taskcast.RunState.COMPLETED
    assert "the data of event 'row'" in run.result
    assert "row" not in types(await collect(app, run.id))  # no event, no gap in the log


async def test_an_exception_message_with_a_lone_surrogate_is_kept_escaped(
    app: taskcast.App,
) -> None:
    @app.task(name="raises")
    async def raises() -> None:
        raise ValueError("bad byte \udc80 here")

    run = await app.wait((await app.submit("raises")).id, timeout=10)
    assert run.state is taskcast.RunState.FAILED
    assert run.error == {"type": "ValueError", "message": "bad byte \\udc80 here"}
    (listed,) = await app.runs()
    assert listed.error == run.error
    (*_, failed) = await collect(app, run.id)
    assert failed.type == "failed" and failed.data["error"] == run.error


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"id": "has space"}, "id must be a string of 1 to 128 letters"),
        ({"id": "x\ud800"}, "id must be a string of 1 to 128 letters"),
        ({"id": "a" * 129}, "id must be a string of 1 to 128 letters"),
        ({"after": ["ok", "new\nline"]}, "after must be a list of run ids"),
    ],
)
async def test_ids_are_what_urls_and_headers_can_carry(
    app: taskcast.App, options: dict[str, object], message: str
) -> None:
    @app.task(name="t")
    async def t() -> None: ...

    with pytest.raises(taskcast.InvalidRequest, match=message):
        await app.submit_with("t", {}, **options)  # type: ignore[arg-type]
    assert await app.runs() == []


@pytest.mark.parametrize("reason", ["bad \ud800", "x" * 1001, 42])
async def test_a_cancel_reason_must_be_text_a_store_can_keep(
    app: taskcast.App, reason: object
) -> None:
    @app.task(name="t")
    async def t() -> None: ...

    run = await app.submit("t")
    with pytest.raises(taskcast.InvalidRequest, match="reason must be text"):
        await app.cancel(run.id, reason)  # type: ignore[arg-type]


async def test_a_row_that_cannot_be_built_fails_its_batch_and_the_writer_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Defence in depth: values are checked before they are staged, but should one slip through
    (a bug), only its batch fails: the writer, and every later write, go on."""
    store = SQLiteStore(f"sqlite:///{tmp_path / 'runs.db'}")
    await store.open()
    try:
        poisoned = taskcast.Run(id="poisoned", task="t", args={})
        await store.create_run(poisoned, {}, fresh_id=True)
        store._live["poisoned"].result = float("nan")  # what no check would let in
        with caplog.at_level(logging.ERROR, logger="taskcast"):
            with pytest.raises(taskcast.StoreError, match="row could not be built"):
                await store.append("poisoned", "row", None, "null")
        assert "could not be built" in caplog.text
        assert await store.problem() is None  # the writer lives
        kept = taskcast.Run(id="kept", task="t", args={})
        _, event = await store.create_run(kept, {}, fresh_id=True)
        assert event is not None and (await store.get_run("kept")) is not None
    finally:
        await store.close()


async def test_a_stopped_writer_is_said_at_once_and_every_write_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = taskcast.App(f"sqlite:///{tmp_path / 'runs.db'}", grace=0, shutdown_timeout=1)

    @app.task(name="t")
    async def t() -> None: ...

    async with app:
        store = app.store
        assert isinstance(store, SQLiteStore) and store._flusher is not None
        with caplog.at_level(logging.ERROR, logger="taskcast"):
            store._flusher.cancel()  # whatever stops it
            await asyncio.wait([store._flusher])
        assert "no write can be stored until the process restarts" in caplog.text
        with pytest.raises(taskcast.StoreUnavailable, match="cannot write") as refused:
            await app.submit("t")
        assert refused.value.status == 503
        assert "commit task stopped" in (await store.problem() or "")
    # ...and shutting down still ends (the test would hang otherwise: the hang guard reports).
    assert app.stopped
