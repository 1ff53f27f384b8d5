"""``App.submit_many``: many runs queued at once, all or nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import taskcast
from taskcast.stores.sqlite import SQLiteStore

from .conftest import Gate


async def test_every_run_is_queued_in_order_and_completes(app: taskcast.App) -> None:
    @app.task(name="double")
    async def double(n: int) -> int:
        return 2 * n

    runs = await app.submit_many("double", [{"n": n} for n in range(50)])
    assert [run.args for run in runs] == [{"n": n} for n in range(50)]
    assert [run.id for run in runs] == sorted(run.id for run in runs)
    assert all(run.state is taskcast.RunState.QUEUED for run in runs)
    results = [(await app.wait(run.id, timeout=10)).result for run in runs]
    assert results == [2 * n for n in range(50)]


async def test_one_bad_mapping_refuses_them_all_naming_its_index(app: taskcast.App) -> None:
    @app.task(name="double")
    async def double(n: int) -> int:
        return 2 * n

    with pytest.raises(taskcast.InvalidArguments, match=r"\[2\]\.n") as caught:
        await app.submit_many("double", [{"n": 1}, {"n": 2}, {"n": "three"}])
    assert caught.value.details["problems"][0]["param"] == "[2].n"
    assert await app.runs() == []


async def test_a_batch_larger_than_the_room_left_is_refused_whole(
    make_app: Callable[..., taskcast.App],
) -> None:
    app = make_app(max_concurrency=1, max_queue=5)
    gate = Gate()

    @app.task(name="block")
    async def block() -> None:
        await gate()

    async with app:
        first = await app.submit("block")
        await gate.reached.wait()
        await app.submit_many("block", [{}] * 3)
        with pytest.raises(taskcast.QueueFull):
            await app.submit_many("block", [{}] * 3)  # 2 places left
        assert len(await app.runs()) == 4
        gate.opened.set()
        await app.wait(first.id, timeout=5)


async def test_options_apply_to_every_run(app: taskcast.App) -> None:
    @app.task(name="noop")
    async def noop() -> None: ...

    runs = await app.submit_many("noop", [{}, {}], timeout=3.5, max_attempts=2)
    assert [(run.timeout, run.max_attempts) for run in runs] == [(3.5, 2), (3.5, 2)]


async def test_sqlite_stores_a_batch_in_one_commit(tmp_path: Path) -> None:
    app = taskcast.App(f"sqlite:///{tmp_path / 'runs.db'}", max_concurrency=1)
    gate = Gate()

    @app.task(name="block")
    async def block() -> None:
        await gate()

    async with app:
        store = app.store
        assert isinstance(store, SQLiteStore)
        before = store.batches_committed
        runs = await app.submit_many("block", [{}] * 300)
        assert store.batches_committed - before == 1
        gate.opened.set()
        for run in runs:
            await app.wait(run.id, timeout=10)
