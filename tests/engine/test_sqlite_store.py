"""The SQLite store: WAL, group commit, versioned schema, one process per file."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from pathlib import Path

import pytest

import taskcast
from taskcast.stores.sqlite import SCHEMA_VERSION, SQLiteStore

V3_SCHEMA_TEMPLATE = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    args TEXT NOT NULL,
    state TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    timeout REAL,
    result TEXT NOT NULL,
    error TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    not_before REAL,
    last_seq INTEGER NOT NULL,
    parent_id TEXT,
    after_ids TEXT NOT NULL DEFAULT '[]',
    after_policy TEXT NOT NULL DEFAULT 'fail'
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS runs_by_state ON runs (state, id) WHERE state IN ({rare});
CREATE INDEX IF NOT EXISTS runs_by_task ON runs (task, id);
CREATE INDEX IF NOT EXISTS runs_by_parent ON runs (parent_id, id) WHERE parent_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
"""
"""The schema of version 3 files (before time and order), ``{rare}`` for the index's states."""


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


async def test_what_is_read_back_from_the_file_is_exactly_what_was_written(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    first = taskcast.App(url)
    data = [
        {"i": i, "text": 'é\u2028"quoted"', "x": 0.1 + i / 3, "none": None} for i in range(1500)
    ]

    @first.task(name="chatty", timeout=2.5)
    async def chatty(ctx: taskcast.Context) -> str:
        for item in data:
            await ctx.emit("tick", item)
        return "done"

    async with first:
        run = await first.wait((await first.submit("chatty")).id, timeout=10)
        written = [e async for e in first.events(run.id)]
    second = taskcast.App(url)  # nothing in memory: every read goes to the file
    second.task(name="chatty")(chatty)
    async with second:
        store = second.store
        assert isinstance(store, SQLiteStore)
        page = await store.read_events(run.id, 0, 1000)
        rest = await store.read_events(run.id, 1000, 1000)
        again = await second.get(run.id)
        listed = await second.runs()
    read = page + rest
    assert [e.seq for e in read] == list(range(1, len(written) + 1))  # in order, no gap
    assert [(e.seq, e.type, e.data, e.at) for e in read] == [
        (e.seq, e.type, e.data, e.at) for e in written
    ]  # timestamps to the last bit: SQLite's JSON keeps 15 digits, quote() all of them
    assert [e.data for e in read if e.type == "tick"] == data
    assert (again.timeout, again.created_at, again.started_at, again.finished_at) == (
        run.timeout,
        run.created_at,
        run.started_at,
        run.finished_at,
    )
    assert again.result == "done" and again.state is taskcast.RunState.COMPLETED
    assert [r.id for r in listed] == [run.id]


async def test_a_submit_cancelled_while_waiting_for_its_commit_still_runs(
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
        finished = await app.wait(run.id, timeout=5)  # and the stored run is queued, not stranded
        assert finished.state is taskcast.RunState.COMPLETED


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
        # Not closed by anyone: the store is unavailable (a 503 over HTTP), and says so.
        assert "cannot write: its commit task stopped" in (await store.problem() or "")
        late = taskcast.Run(id="r2", task="noop", args={})
        with pytest.raises(taskcast.StoreUnavailable, match="its commit task stopped"):
            await store.create_run(late, {}, fresh_id=True)
    finally:
        await store.close()


def file_rows(path: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Rows read with a connection of our own: what is in the file, whatever the store holds."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


async def test_batches_bigger_than_a_statement_are_stored_whole(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    app = taskcast.App(f"sqlite:///{path}", max_concurrency=50)

    @app.task(name="chatty")
    async def chatty(ctx: taskcast.Context, n: int) -> int:
        for i in range(n):
            await ctx.emit("tick", {"i": i, "text": "nul \x00 and ünïcödé"})
        return n

    async with app:
        store = app.store
        assert isinstance(store, SQLiteStore)
        # As if the library allowed 40 bound variables: 2 run rows or 8 events per statement,
        # so every batch is cut into many statements of uneven sizes.
        store._max_variables = 40
        runs = await app.submit_many("chatty", [{"n": i % 7} for i in range(333)])
        for run in runs:
            assert (await app.wait(run.id, timeout=30)).state is taskcast.RunState.COMPLETED
    expected = {run.id: 3 + i % 7 for i, run in enumerate(runs)}  # queued, started, ticks, end
    stored = dict(file_rows(path, "SELECT run_id, count(*) FROM events GROUP BY run_id"))
    assert stored == expected
    assert file_rows(path, "SELECT count(*) FROM runs WHERE state = 'completed'") == [(333,)]
    ((data,),) = file_rows(
        path, "SELECT data FROM events WHERE run_id = ? AND seq = 3", (runs[1].id,)
    )
    assert data == '{"i":0,"text":"nul \\u0000 and \\u00fcn\\u00efc\\u00f6d\\u00e9"}'


async def test_a_run_is_finished_in_the_file_when_wait_returns(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    app = taskcast.App(f"sqlite:///{path}")

    @app.task(name="answer")
    async def answer() -> int:
        return 42

    async with app:
        for _ in range(20):
            run = await app.wait((await app.submit("answer")).id, timeout=5)
            assert file_rows(path, "SELECT state, result FROM runs WHERE id = ?", (run.id,)) == [
                ("completed", "42")
            ]
            assert file_rows(path, "SELECT max(seq) FROM events WHERE run_id = ?", (run.id,)) == [
                (3,)
            ]


async def test_runs_that_just_ended_are_committed_when_the_app_closes(tmp_path: Path) -> None:
    """A run's task does not wait for its terminal commit; closing the store commits it."""
    path = tmp_path / "runs.db"
    app = taskcast.App(f"sqlite:///{path}", max_concurrency=300)
    ran = 0
    all_ran = asyncio.Event()

    @app.task(name="noop")
    async def noop() -> None:
        nonlocal ran
        ran += 1
        if ran == 300:
            all_ran.set()

    async with app:
        await app.submit_many("noop", [{}] * 300)
        await all_ran.wait()  # every body is over; their terminal writes may be pending
    assert file_rows(path, "SELECT state, count(*) FROM runs GROUP BY state") == [
        ("completed", 300)
    ]
    assert file_rows(path, "SELECT type, count(*) FROM events GROUP BY type ORDER BY type") == [
        ("completed", 300),
        ("queued", 300),
        ("started", 300),
    ]


async def test_a_failed_commit_is_logged_and_the_next_ones_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'runs.db'}")
    await store.open()
    commit = store._commit
    failures = [sqlite3.OperationalError("database or disk is full")]

    def failing_once(*args: object) -> None:
        if failures:
            raise failures.pop()
        commit(*args)  # type: ignore[arg-type]

    store._commit = failing_once  # type: ignore[method-assign]
    try:
        with caplog.at_level(logging.ERROR, logger="taskcast"):
            lost = taskcast.Run(id="lost", task="noop", args={})
            with pytest.raises(taskcast.StoreError, match="disk is full"):
                await store.create_run(lost, {}, fresh_id=True)
        assert "failed; they are lost: database or disk is full" in caplog.text
        kept = taskcast.Run(id="kept", task="noop", args={})
        stored, event = await store.create_run(kept, {}, fresh_id=True)
        assert event is not None and event.seq == 1
        assert (await store.get_run("kept")) == stored
    finally:
        await store.close()


async def test_listing_by_state_finds_every_run_in_that_state(tmp_path: Path) -> None:
    """Unfinished states are listed from memory, rare end states from their index and
    ``completed`` from the newest ids down: all three agree with the plain list."""
    app = taskcast.App(f"sqlite:///{tmp_path / 'runs.db'}", max_concurrency=1)
    release = asyncio.Event()
    started = asyncio.Event()

    @app.task(name="hold")
    async def hold() -> None:
        started.set()
        await release.wait()

    @app.task(name="end", timeout=5)
    async def end(how: str) -> str:
        if how == "fail":
            raise ValueError("failed on purpose")
        if how == "slow":
            await asyncio.Event().wait()  # only its timeout ends it
        return how

    async with app:
        done = []
        for how in ["ok", "fail", "ok", "fail", "ok"]:
            run = await app.submit("end", how=how)
            done.append(await app.wait(run.id, timeout=5))
        slow = await app.submit_with("end", {"how": "slow"}, timeout=0.01)
        done.append(await app.wait(slow.id, timeout=5))
        holding = await app.submit("hold")
        await started.wait()
        queued = [await app.submit("end", how="ok") for _ in range(4)]
        cancelled = await app.submit("end", how="ok")
        assert await app.cancel(cancelled.id)
        everything = await app.runs(limit=1000)
        assert len(everything) == 12
        for state in taskcast.RunState:
            expected = [run.id for run in everything if run.state is state]
            assert [run.id for run in await app.runs(state=state)] == expected, state
            for task in ("end", "hold"):
                assert [run.id for run in await app.runs(state=state, task=task)] == [
                    run.id for run in everything if run.state is state and run.task == task
                ]
            if len(expected) > 2:  # pages of 2, each before the last id of the previous one
                page = await app.runs(state=state, limit=2, before=expected[1])
                assert [run.id for run in page] == expected[2:4]
        states = {run.id: run.state for run in everything}
        assert states[holding.id] is taskcast.RunState.RUNNING
        assert {states[run.id] for run in queued} == {taskcast.RunState.QUEUED}
        assert states[slow.id] is taskcast.RunState.TIMED_OUT
        assert states[cancelled.id] is taskcast.RunState.CANCELLED
        release.set()
        for run in [holding, *queued]:
            assert (await app.wait(run.id, timeout=5)).state is taskcast.RunState.COMPLETED


async def test_listing_a_rare_end_state_does_not_read_the_whole_table(tmp_path: Path) -> None:
    app = taskcast.App(f"sqlite:///{tmp_path / 'runs.db'}")

    @app.task(name="noop")
    async def noop() -> None: ...

    @app.task(name="broken")
    async def broken() -> None:
        raise RuntimeError("broken")

    async with app:
        failed = await app.wait((await app.submit("broken")).id, timeout=5)
        for run in await app.submit_many("noop", [{}] * 3000):
            await app.wait(run.id, timeout=30)
        store = app.store
        assert isinstance(store, SQLiteStore) and store._read_conn is not None
        steps = 0

        def count() -> int:
            nonlocal steps
            steps += 1
            return 0  # go on

        store._read_conn.set_progress_handler(count, 100)  # called every 100 VM instructions
        try:
            assert [run.id for run in await app.runs(state="failed")] == [failed.id]
            listed = steps
            steps = 0
            # The same question with the state bound as a parameter: no index can answer it.
            scan = "SELECT id FROM runs WHERE state = ?"
            assert store._read_conn.execute(scan, ["failed"]).fetchall() == [(failed.id,)]
            scanned = steps
        finally:
            store._read_conn.set_progress_handler(None, 0)
    assert listed * 20 < scanned  # the failed run came from its index, not from a scan


async def test_a_version_2_file_gets_the_new_index_and_keeps_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    conn = sqlite3.connect(path)
    conn.executescript(V3_SCHEMA_TEMPLATE.replace(" WHERE state IN ({rare})", ""))
    conn.execute(
        "INSERT INTO runs (id, task, args, state, attempt, max_attempts, result, created_at,"
        " last_seq) VALUES ('old', 'noop', '{}', 'failed', 1, 1, 'null', 1.0, 3)"
    )
    conn.execute("PRAGMA user_version=2")
    conn.commit()
    conn.close()
    async with taskcast.App(f"sqlite:///{path}") as app:
        assert [run.id for run in await app.runs(state="failed")] == ["old"]
    assert file_rows(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    ((sql,),) = file_rows(path, "SELECT sql FROM sqlite_master WHERE name = 'runs_by_state'")
    assert "WHERE state IN ('failed', 'cancelled', 'timed_out')" in sql


def _version_3_schema() -> str:
    return V3_SCHEMA_TEMPLATE.format(rare="'failed', 'cancelled', 'timed_out'")


async def test_a_version_3_file_gets_retry_of_and_the_finish_index_and_keeps_its_runs(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v3.db"
    conn = sqlite3.connect(path)
    conn.executescript(_version_3_schema())
    conn.execute(
        "INSERT INTO runs (id, task, args, state, attempt, max_attempts, result, error,"
        " created_at, started_at, finished_at, last_seq) VALUES ('old', 'broken', '{\"n\":1}',"
        ' \'failed\', 1, 1, \'null\', \'{"type":"E","message":"m"}\', 1.0, 2.0, 3.0, 3)'
    )
    conn.execute("PRAGMA user_version=3")
    conn.commit()
    conn.close()
    app = taskcast.App(f"sqlite:///{path}")

    @app.task(name="broken")
    async def broken(n: int) -> int:
        return n

    async with app:
        old = await app.get("old")
        assert (old.state, old.retry_of) == ("failed", None)
        assert await app.count_runs() == {("broken", taskcast.RunState.FAILED): 1}
        again = await app.retry("old")
        assert (await app.wait(again.id, timeout=10)).result == 1
        assert await app.count_runs() == {
            ("broken", taskcast.RunState.FAILED): 1,
            ("broken", taskcast.RunState.COMPLETED): 1,
        }
    assert file_rows(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert file_rows(path, "SELECT retry_of FROM runs WHERE id = ?", (again.id,)) == [("old",)]
    assert file_rows(path, "SELECT name FROM sqlite_master WHERE name = 'runs_by_finished'")


async def test_activity_reads_the_runs_of_the_window_not_the_whole_table(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    async with taskcast.App(f"sqlite:///{path}"):
        pass  # the schema
    with sqlite3.connect(path) as conn:
        # 3,000 runs that ended a day ago, and one a minute ago.
        old = time.time() - 86400
        rows = [(f"old{i:05}", old + i, old + i + 1) for i in range(3000)]
        rows.append(("recent", time.time() - 61, time.time() - 60))
        conn.executemany(
            "INSERT INTO runs (id, task, args, state, attempt, max_attempts, result, created_at,"
            " started_at, finished_at, last_seq) VALUES (?, 'noop', '{}', 'completed', 1, 1,"
            " 'null', ?, ?, ? + 1, 3)",
            [(run_id, created, created, started) for run_id, created, started in rows],
        )
    conn.close()
    async with taskcast.App(f"sqlite:///{path}") as app:
        store = app.store
        assert isinstance(store, SQLiteStore) and store._read_conn is not None
        steps = 0

        def count() -> int:
            nonlocal steps
            steps += 1
            return 0  # go on

        store._read_conn.set_progress_handler(count, 100)  # called every 100 VM instructions
        try:
            activity = await app.activity(window=3600, step=60)
            read = steps
            steps = 0
            # The same runs found without the index (``+ 0`` keeps the planner from it).
            scan = "SELECT count(*) FROM runs WHERE finished_at + 0 >= ?"
            assert store._read_conn.execute(scan, [time.time() - 3600]).fetchall() == [(1,)]
            scanned = steps
        finally:
            store._read_conn.set_progress_handler(None, 0)
    assert sum(activity.finished["completed"]) == 1
    assert read * 5 < scanned  # one range of runs_by_finished, not the table


async def test_counts_are_kept_in_the_file_across_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    app = taskcast.App(url)

    @app.task(name="noop")
    async def noop() -> None: ...

    async with app:
        await app.wait((await app.submit("noop")).id, timeout=10)
    async with taskcast.App(url) as again:
        assert await again.count_runs() == {("noop", taskcast.RunState.COMPLETED): 1}
