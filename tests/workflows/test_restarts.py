"""Workflows across a restart on the same SQLite file: dependencies wait again, a resumed parent
gets its earlier children back, and a version-1 file is migrated."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import taskcast
from taskcast.stores.sqlite import SCHEMA_VERSION

V1_SCHEMA = """
CREATE TABLE runs (
    id TEXT PRIMARY KEY, task TEXT NOT NULL, args TEXT NOT NULL, state TEXT NOT NULL,
    attempt INTEGER NOT NULL, max_attempts INTEGER NOT NULL, timeout REAL,
    result TEXT NOT NULL, error TEXT, created_at REAL NOT NULL, started_at REAL,
    finished_at REAL, not_before REAL, last_seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX runs_by_state ON runs (state, id);
CREATE INDEX runs_by_task ON runs (task, id);
CREATE TABLE events (
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL,
    at REAL NOT NULL, PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
"""


def sqlite_app(path: Path) -> taskcast.App:
    return taskcast.App(f"sqlite:///{path}", grace=0.0, shutdown_timeout=2.0)


async def test_a_version_1_file_is_migrated_and_keeps_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(V1_SCHEMA)
        conn.execute(
            "INSERT INTO runs VALUES ('old', 'noop', '{}', 'completed', 1, 1, NULL, '7', NULL,"
            " 1.0, 1.0, 2.0, NULL, 3)"
        )
        conn.execute("PRAGMA user_version=1")
    conn.close()
    app = sqlite_app(path)

    @app.task(name="noop")
    async def noop() -> int:
        return 8

    async with app:
        old = await app.get("old")
        assert (old.state, old.result, old.parent_id, old.after) == ("completed", 7, None, [])
        new = await app.submit_with("noop", after=["old"])
        assert (await app.wait(new.id, timeout=10)).after == ["old"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
        row = conn.execute("SELECT after_ids FROM runs WHERE id = ?", [new.id]).fetchone()
    conn.close()
    assert row == ('["old"]',)


def register_steps(app: taskcast.App, fail: bool, gate: asyncio.Event | None) -> list[str]:
    order: list[str] = []

    @app.task(name="step", retries=1)
    async def step(name: str) -> str:
        if name == "first" and gate is not None:
            await gate.wait()  # held until the shutdown interrupts it
        if name == "first" and fail:
            raise RuntimeError("first broke after the restart")
        order.append(name)
        return name

    return order


async def test_a_run_waiting_for_dependencies_waits_again_after_a_restart(
    tmp_path: Path,
) -> None:
    path = tmp_path / "runs.db"
    app = sqlite_app(path)
    register_steps(app, fail=False, gate=asyncio.Event())
    async with app:
        first = await app.submit("step", name="first")
        second = await app.submit_with("step", {"name": "second"}, after=[first.id])
    assert (await_state := report_state(path, second.id)) == "queued", await_state

    app = sqlite_app(path)
    order = register_steps(app, fail=False, gate=None)
    async with app:
        done = await app.wait(second.id, timeout=10)
    assert done.state is taskcast.RunState.COMPLETED
    assert order == ["first", "second"]


async def test_a_dependency_that_fails_after_a_restart_fails_its_dependents(
    tmp_path: Path,
) -> None:
    path = tmp_path / "runs.db"
    app = sqlite_app(path)
    register_steps(app, fail=False, gate=asyncio.Event())
    async with app:
        first = await app.submit("step", name="first")
        second = await app.submit_with("step", {"name": "second"}, after=[first.id])

    app = sqlite_app(path)
    register_steps(app, fail=True, gate=None)
    async with app:
        done = await app.wait(second.id, timeout=10)
    assert done.state is taskcast.RunState.FAILED
    assert "first broke after the restart" in done.error["message"]


def report_state(path: Path, run_id: str) -> str:
    with sqlite3.connect(path) as conn:
        (state,) = conn.execute("SELECT state FROM runs WHERE id = ?", [run_id]).fetchone()
    conn.close()
    return str(state)


async def test_a_resumed_parent_reuses_its_completed_children_and_adopts_unfinished_ones(
    tmp_path: Path,
) -> None:
    path = tmp_path / "runs.db"
    executions: list[str] = []
    both_spawned = asyncio.Event()

    def build(hold: bool) -> taskcast.App:
        app = sqlite_app(path)

        @app.task(name="part", retries=1)
        async def part(ctx: taskcast.Context, i: int) -> int:
            executions.append(f"{i}@{ctx.attempt}")
            if i == 1 and hold:
                both_spawned.set()
                await asyncio.Event().wait()  # interrupted by the shutdown
            return i * 10

        @app.task(name="whole", retries=2)
        async def whole(ctx: taskcast.Context) -> list[int]:
            first = await ctx.spawn("part", i=0)
            value = await first
            second = await ctx.spawn("part", i=1)
            return [value, await second]

        return app

    app = build(hold=True)
    async with app:
        run = await app.submit("whole")
        await both_spawned.wait()
    assert report_state(path, run.id) == "interrupted"

    app = build(hold=False)
    async with app:
        done = await app.wait(run.id, timeout=10)
        children = await app.runs(parent=run.id)
    assert done.state is taskcast.RunState.COMPLETED, done.error
    assert done.result == [0, 10]
    assert executions == ["0@1", "1@1", "1@2"]  # part 0 ran once; part 1 resumed
    assert sorted(c.id for c in children) == [f"{run.id}.0", f"{run.id}.1"]


async def test_a_retried_parent_runs_again_the_child_that_failed(tmp_path: Path) -> None:
    app = sqlite_app(tmp_path / "runs.db")
    calls: list[int] = []

    @app.task(name="flaky")
    async def flaky(ctx: taskcast.Context) -> int:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first try fails")
        return len(calls)

    @app.task(name="parent", retries=1, backoff=0)
    async def parent(ctx: taskcast.Context) -> int:
        return int(await (await ctx.spawn("flaky")))

    async with app:
        run = await app.wait((await app.submit("parent")).id, timeout=10)
        ids = sorted(c.id for c in await app.runs(parent=run.id))
    assert run.state is taskcast.RunState.COMPLETED and run.result == 2
    assert ids == [f"{run.id}.0", f"{run.id}.0~2"]
