"""The SQLite store: WAL, group commit, versioned schema, one process per file."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

import taskcast
from taskcast.stores.sqlite import SCHEMA_VERSION, SQLiteStore


async def test_the_file_uses_wal_and_records_its_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    async with taskcast.App(f"sqlite:///{path}"):
        pass
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


async def test_a_second_process_cannot_open_the_same_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    async with taskcast.App(url):
        with pytest.raises(taskcast.StoreError, match="another process is using it"):
            await SQLiteStore(url).open()


async def test_a_file_from_a_newer_taskcast_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(taskcast.SchemaError, match="newer than this taskcast"):
        await SQLiteStore(f"sqlite:///{path}").open()


async def test_a_bad_synchronous_option_is_refused(tmp_path: Path) -> None:
    with pytest.raises(taskcast.StoreError, match="synchronous must be"):
        SQLiteStore(f"sqlite:///{tmp_path / 'x.db'}?synchronous=sometimes")


async def test_concurrent_runs_share_commits(tmp_path: Path) -> None:
    app = taskcast.App(f"sqlite:///{tmp_path / 'runs.db'}", max_concurrency=200)

    @app.task(name="noop")
    async def noop() -> None: ...

    async with app:
        store = app.store
        assert isinstance(store, SQLiteStore)
        before = store.batches_committed
        runs = await asyncio.gather(*(app.submit("noop") for _ in range(200)))
        for run in runs:
            await app.wait(run.id, timeout=10)
        writes = 200 * 3  # queued, started, completed: each a durable write
        assert store.batches_committed - before < writes / 4


async def test_a_long_reader_does_not_block_writes(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    app = taskcast.App(f"sqlite:///{path}")

    @app.task(name="noop")
    async def noop() -> str:
        return "written"

    async with app:
        reader = sqlite3.connect(path)
        try:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM events").fetchone()  # holds a read snapshot
            run = await app.wait((await app.submit("noop")).id, timeout=5)
            assert run.result == "written"
            reader.execute("COMMIT")
        finally:
            reader.close()


async def test_logs_survive_a_restart_and_seq_continues(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    first = taskcast.App(url)

    @first.task(name="chatty")
    async def chatty(ctx: taskcast.Context) -> None:
        for i in range(5):
            await ctx.emit("tick", {"i": i})

    async with first:
        run = await first.wait((await first.submit("chatty")).id, timeout=5)
    second = taskcast.App(url)
    second.task(name="chatty")(chatty)
    async with second:
        events = [e async for e in second.events(run.id)]
        assert [e.seq for e in events] == list(range(1, 9))
        assert events[-1].type == "completed"
        assert (await second.get(run.id)).state is taskcast.RunState.COMPLETED


async def test_a_writer_cancelled_while_waiting_for_its_commit_keeps_its_write(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    app = taskcast.App(url)

    @app.task(name="noop")
    async def noop() -> None: ...

    async with app:
        submitting = asyncio.ensure_future(app.submit("noop"))
        await asyncio.sleep(0)  # the write is staged; its commit is on its way
        submitting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await submitting
        (run,) = await app.runs()
        assert run.task == "noop"  # cancelling the wait never undoes the write


async def test_waiters_get_an_error_not_a_hang_when_the_flusher_is_cancelled(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'runs.db'}")
    await store.open()
    try:
        run = taskcast.Run(id="r1", task="noop", args={})
        creating = asyncio.ensure_future(store.create_run(run, {}, fresh_id=True))
        await asyncio.sleep(0)  # staged
        assert store._flusher is not None
        store._flusher.cancel()  # what a torn-down loop does
        with pytest.raises(taskcast.StoreError, match="closed before the write was committed"):
            await creating
        late = taskcast.Run(id="r2", task="noop", args={})
        with pytest.raises(taskcast.StoreError, match="is closed"):
            await store.create_run(late, {}, fresh_id=True)
    finally:
        await store.close()
