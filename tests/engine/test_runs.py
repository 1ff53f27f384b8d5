"""Submitting runs, the shape of their logs, task body kinds and bad input."""

from __future__ import annotations

import asyncio
import threading
from datetime import date, timedelta
from typing import Any

import pytest

import taskcast
from taskcast.stores import store_from_url

from .conftest import assert_gap_free, collect, types


async def test_a_run_completes_with_its_result_and_a_gap_free_log(app: taskcast.App) -> None:
    @app.task(name="count")
    async def count(ctx: taskcast.Context, n: int = 3) -> dict[str, int]:
        for i in range(n):
            await ctx.progress(i + 1, n, message=f"step {i + 1}")
        return {"counted": n}

    run = await app.submit("count", n=3)
    assert run.state is taskcast.RunState.QUEUED
    events = await collect(app, run.id)
    assert types(events) == ["queued", "started", "progress", "progress", "progress", "completed"]
    assert_gap_free(events)
    assert events[2].data == {"current": 1, "total": 3, "message": "step 1"}
    assert events[-1].data["result"] == {"counted": 3}
    done = await app.get(run.id)
    assert done.state is taskcast.RunState.COMPLETED
    assert done.result == {"counted": 3}
    assert done.attempt == 1
    assert done.created_at <= done.started_at <= done.finished_at  # type: ignore[operator]


async def test_arguments_are_coerced_to_the_declared_types(app: taskcast.App) -> None:
    @app.task(name="add")
    async def add(a: int, b: float = 0.5) -> float:
        return a + b

    run = await app.submit("add", a="2")
    assert run.args == {"a": 2}
    assert (await app.wait(run.id, timeout=5)).result == 2.5


async def test_unknown_task_is_refused_with_the_registered_names(app: taskcast.App) -> None:
    @app.task(name="known")
    async def known() -> None: ...

    with pytest.raises(taskcast.UnknownTask, match=r"'nope'.*registered tasks: known"):
        await app.submit("nope")
    assert await app.runs() == []


@pytest.mark.parametrize(
    ("args", "param", "problem"),
    [
        ({}, "url", "required argument is missing"),
        ({"url": "x", "retries": "many"}, "retries", "valid integer"),
        ({"url": "x", "colour": "red"}, "colour", "unexpected argument"),
    ],
)
async def test_arguments_that_do_not_fit_are_refused_naming_the_parameter(
    app: taskcast.App, args: dict[str, Any], param: str, problem: str
) -> None:
    @app.task(name="fetch")
    async def fetch(ctx: taskcast.Context, url: str, retries: int = 1) -> None: ...

    with pytest.raises(taskcast.InvalidArguments) as caught:
        await app.submit("fetch", **args)
    problems = caught.value.details["problems"]
    assert any(p["param"] == param and problem in p["problem"] for p in problems), problems
    assert param in str(caught.value)
    assert await app.runs() == []


async def test_non_json_arguments_are_refused_and_nothing_is_written(app: taskcast.App) -> None:
    @app.task(name="take")
    async def take(thing: Any) -> None: ...

    with pytest.raises(taskcast.NotSerializable):
        await app.submit("take", thing=object())
    assert await app.runs() == []


async def test_a_result_that_is_not_json_fails_the_run(app: taskcast.App) -> None:
    @app.task(name="bad_result")
    async def bad_result() -> object:
        return object()

    run = await app.wait((await app.submit("bad_result")).id, timeout=5)
    assert run.state is taskcast.RunState.FAILED
    assert run.error is not None and run.error["type"] == "NotSerializable"


async def test_emitting_non_json_data_or_reserved_types_raises_in_the_task(
    app: taskcast.App,
) -> None:
    seen: list[str] = []

    @app.task(name="emitter")
    async def emitter(ctx: taskcast.Context) -> None:
        for type_, data in [("x", object()), ("completed", {}), ("", 1)]:
            try:
                await ctx.emit(type_, data)
            except taskcast.TaskcastError as exc:
                seen.append(exc.code)

    run = await app.wait((await app.submit("emitter")).id, timeout=5)
    assert run.state is taskcast.RunState.COMPLETED
    assert seen == ["not_serializable", "invalid_request", "invalid_request"]
    assert types(await collect(app, run.id)) == ["queued", "started", "completed"]


async def test_a_failing_task_records_the_error_type_and_message(app: taskcast.App) -> None:
    @app.task(name="boom")
    async def boom() -> None:
        raise ValueError("no such thing")

    run = await app.wait((await app.submit("boom")).id, timeout=5)
    assert run.state is taskcast.RunState.FAILED
    assert run.error == {"type": "ValueError", "message": "no such thing"}
    events = await collect(app, run.id)
    assert events[-1].type == "failed"
    assert events[-1].data["error"] == {"type": "ValueError", "message": "no such thing"}


async def test_failures_are_isolated_between_runs(app: taskcast.App) -> None:
    @app.task(name="maybe")
    async def maybe(fail: bool) -> str:
        await asyncio.sleep(0)
        if fail:
            raise RuntimeError("this one fails")
        return "ok"

    runs = [await app.submit("maybe", fail=i % 3 == 0) for i in range(30)]
    finished = [await app.wait(r.id, timeout=5) for r in runs]
    for i, run in enumerate(finished):
        expected = taskcast.RunState.FAILED if i % 3 == 0 else taskcast.RunState.COMPLETED
        assert run.state is expected


async def test_an_async_generator_yields_progress_and_its_last_item_is_the_result(
    app: taskcast.App,
) -> None:
    @app.task(name="agen")
    async def agen(n: int):  # type: ignore[no-untyped-def]
        for i in range(n):
            yield {"current": i + 1, "total": n}

    run = await app.wait((await app.submit("agen", n=3)).id, timeout=5)
    assert run.result == {"current": 3, "total": 3}
    events = await collect(app, run.id)
    assert types(events) == ["queued", "started", "progress", "progress", "progress", "completed"]


async def test_a_sync_generator_runs_in_a_thread_and_streams_progress(app: taskcast.App) -> None:
    threads: list[str] = []

    @app.task(name="sgen")
    def sgen(n: int):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread().name)
        for i in range(n):
            yield {"current": i + 1, "total": n}

    run = await app.wait((await app.submit("sgen", n=2)).id, timeout=5)
    assert run.result == {"current": 2, "total": 2}
    assert threads and threads[0] != threading.main_thread().name
    assert types(await collect(app, run.id))[2:4] == ["progress", "progress"]


async def test_a_sync_function_runs_in_a_worker_thread_not_on_the_loop(
    app: taskcast.App,
) -> None:
    @app.task(name="blocking")
    def blocking(ctx: taskcast.ThreadContext, x: int) -> dict[str, Any]:
        ctx.progress(1, 1, message="in thread")
        return {"x": x * 2, "thread": threading.current_thread().name}

    run = await app.wait((await app.submit("blocking", x=21)).id, timeout=5)
    assert run.result["x"] == 42
    assert run.result["thread"] != threading.main_thread().name
    assert "progress" in types(await collect(app, run.id))


async def test_an_id_given_at_submit_is_an_idempotency_key(app: taskcast.App) -> None:
    @app.task(name="once")
    async def once() -> int:
        return 1

    first = await app.submit_with("once", {}, id="order-42")
    second = await app.submit_with("once", {}, id="order-42")
    assert first.id == second.id == "order-42"
    await app.wait("order-42", timeout=5)
    assert len(await app.runs(task="once")) == 1
    assert types(await collect(app, "order-42")).count("started") == 1


async def test_run_ids_sort_in_submit_order(app: taskcast.App) -> None:
    @app.task(name="noop")
    async def noop() -> None: ...

    ids = [(await app.submit("noop")).id for _ in range(50)]
    assert ids == sorted(ids) and len(set(ids)) == 50 and all(len(i) == 26 for i in ids)


async def test_runs_are_listed_newest_first_with_filters_and_paging(app: taskcast.App) -> None:
    @app.task(name="a")
    async def a() -> None: ...

    @app.task(name="b")
    async def b() -> None:
        raise RuntimeError("b fails")

    ids = [(await app.submit("a" if i % 2 else "b")).id for i in range(6)]
    for run_id in ids:
        await app.wait(run_id, timeout=5)
    listed = await app.runs()
    assert [r.id for r in listed] == ids[::-1]
    assert {r.task for r in await app.runs(task="a")} == {"a"}
    assert {r.state for r in await app.runs(state="failed")} == {taskcast.RunState.FAILED}
    page = await app.runs(limit=2, before=ids[3])
    assert [r.id for r in page] == [ids[2], ids[1]]
    with pytest.raises(taskcast.InvalidRequest, match="unknown state 'finished'"):
        await app.runs(state="finished")


async def test_get_and_events_of_an_unknown_run_raise_run_not_found(app: taskcast.App) -> None:
    with pytest.raises(taskcast.RunNotFound):
        await app.get("nope")
    with pytest.raises(taskcast.RunNotFound):
        await collect(app, "nope")


async def test_submit_before_start_raises_shutting_down() -> None:
    app = taskcast.App()

    @app.task(name="t")
    async def t() -> None: ...

    with pytest.raises(taskcast.ShuttingDown, match="not started"):
        await app.submit("t")


@pytest.mark.parametrize(
    "url", ["postgres://x", "sqlite://relative-without-slash", "sqlite:////no/such/dir/x.db"]
)
async def test_a_store_url_that_cannot_be_opened_raises_store_error(url: str) -> None:
    with pytest.raises(taskcast.StoreError, match="cannot open store"):
        store = store_from_url(url)
        await store.open()


async def test_registering_two_tasks_with_one_name_is_refused() -> None:
    app = taskcast.App()

    @app.task(name="dup")
    async def one() -> None: ...

    with pytest.raises(ValueError, match="two tasks named 'dup'"):

        @app.task(name="dup")
        async def two() -> None: ...

    assert app.tasks["dup"].function is one


async def test_a_task_is_named_by_its_function_name_wherever_it_is_defined() -> None:
    app = taskcast.App()

    @app.task
    async def fetch(url: str) -> str:
        return url

    @app.task(timeout=5)
    def report() -> int:
        return 1

    # Not `tests.engine.test_runs.test_...<locals>.fetch`: what the README and curl users type.
    assert set(app.tasks) == {"fetch", "report"}
    async with app:
        run = await app.submit("fetch", url="x")
        assert (await app.wait(run.id, timeout=5)).result == "x"


async def test_name_overrides_the_function_name() -> None:
    app = taskcast.App()

    @app.task(name="reports.nightly")
    async def build() -> None: ...

    assert set(app.tasks) == {"reports.nightly"}


async def test_two_functions_of_one_name_are_refused_naming_both_and_the_way_out() -> None:
    app = taskcast.App()

    def first_module() -> None:
        @app.task
        async def fetch() -> None: ...

    def second_module() -> None:
        @app.task
        async def fetch() -> None: ...

    first_module()
    with pytest.raises(ValueError) as refused:
        second_module()
    message = str(refused.value)
    assert "two tasks named 'fetch'" in message
    assert "first_module.<locals>.fetch" in message
    assert "second_module.<locals>.fetch" in message
    assert "@app.task(name=...)" in message


async def test_prune_deletes_finished_runs_and_their_logs(app: taskcast.App) -> None:
    @app.task(name="noop")
    async def noop() -> None: ...

    run = await app.wait((await app.submit("noop")).id, timeout=5)
    assert await app.prune(older_than=3600) == 0
    assert await app.prune(older_than=0) == 1
    with pytest.raises(taskcast.RunNotFound):
        await app.get(run.id)


async def test_string_annotations_are_resolved_for_validation_and_description(
    app: taskcast.App,
) -> None:
    # This module uses `from __future__ import annotations`: every annotation is a string, and
    # `date` is a name of this module, not of taskcast's.
    @app.task(name="typed")
    async def typed(ctx: taskcast.Context, when: date, n: int = 1) -> str:
        return (when + timedelta(days=n)).isoformat()

    schema = app.tasks["typed"].describe()["parameters"]
    assert schema["properties"]["when"]["format"] == "date"
    assert schema["required"] == ["when"]
    with pytest.raises(taskcast.InvalidArguments, match="when: Input should be a valid date"):
        await app.submit("typed", when="someday")
    run = await app.submit("typed", when="2026-11-21", n="2")
    assert (await app.wait(run.id, timeout=5)).result == "2026-11-23"
