"""Why the SQLite store writes multi-row INSERTs and reads pages in one step: its threads
beside a busy event loop.

Writes: commits the same batches (run rows and events, as the engine bench writes them: one
batch of ``queued`` writes, then one of ``started`` + ``completed``, per chunk of runs) two ways:
``executemany`` (one step per row) and the store's multi-row statements. Reads: reads the same
pages of a run's log (``--page`` events each, as a catching-up watcher does) two ways:
``fetchall`` (one step per row) and the store's ``json_group_array`` read (one step per page).
Each alone, then again while other threads run Python code without pause, as an event loop
under load (and, for reads, the writer thread too) does. The ``sqlite3`` module lets go of the
GIL around every step, and a thread that wants it back while others run Python can wait for
the switch interval (``sys.getswitchinterval()``, 5 ms).

Run:  .venv/bin/python bench/sqlite_writer.py [--runs 1000] [--chunk 100] [--events 8000]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from taskcast.stores.sqlite import _INSERT_EVENT, _SCHEMA, _UPSERT_RUN, SQLiteStore

Batch = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]


def batches(runs: int, chunk: int) -> list[Batch]:
    now = time.time()
    ids = [f"01K{i:023d}" for i in range(runs)]
    out: list[Batch] = []
    for offset in range(0, runs, chunk):
        part = ids[offset : offset + chunk]
        for state, kinds in (("queued", ("queued",)), ("completed", ("started", "completed"))):
            seqs = range(len(kinds)) if state == "queued" else range(1, 3)
            rows = [
                (
                    i,
                    "noop",
                    "{}",
                    state,
                    1,
                    1,
                    None,
                    "null",
                    None,
                    now,
                    now,
                    now,
                    None,
                    3,
                    None,
                    "[]",
                    "fail",
                    None,
                )
                for i in part
            ]
            events = [
                (i, seq + 1, kind, '{"attempt":1}', now)
                for i in part
                for seq, kind in zip(seqs, kinds, strict=True)
            ]
            out.append((rows, events))
    return out


def connect(directory: Path, name: str) -> sqlite3.Connection:
    conn = sqlite3.connect(directory / name, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(_SCHEMA)
    return conn


def with_executemany(conn: sqlite3.Connection, batch: Batch) -> None:
    conn.execute("BEGIN")
    conn.executemany(_UPSERT_RUN, batch[0])
    conn.executemany(_INSERT_EVENT, batch[1])
    conn.execute("COMMIT")


def multi_row(store: SQLiteStore) -> Callable[[sqlite3.Connection, Batch], None]:
    def commit(conn: sqlite3.Connection, batch: Batch) -> None:
        conn.execute("BEGIN")
        store._insert_rows(conn, _UPSERT_RUN, batch[0])
        store._insert_rows(conn, _INSERT_EVENT, batch[1])
        conn.execute("COMMIT")

    return commit


def timed(work: Callable[[], object], busy: int) -> float:
    """Seconds ``work()`` takes while ``busy`` other threads run Python code without pause."""
    stop = threading.Event()

    def spin() -> None:  # Python code without pause, like a loaded event loop
        while not stop.is_set():
            sum(range(100))

    spinners = [threading.Thread(target=spin) for _ in range(busy)]
    for spinner in spinners:
        spinner.start()
    started = time.perf_counter()
    try:
        work()
    finally:
        stop.set()
        for spinner in spinners:
            spinner.join()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--chunk", type=int, default=100)
    parser.add_argument("--events", type=int, default=8000)
    parser.add_argument("--page", type=int, default=1000)
    args = parser.parse_args()
    work = batches(args.runs, args.chunk)
    rows = sum(len(r) + len(e) for r, e in work)
    print(
        f"{len(work)} batches, {rows:,} rows; switch interval {sys.getswitchinterval() * 1000:g} ms"
    )
    with tempfile.TemporaryDirectory() as workdir:
        directory = Path(workdir)
        store = SQLiteStore(f"sqlite:///{directory / 'unused.db'}")
        for name, commit in (("executemany", with_executemany), ("multi-row", multi_row(store))):
            for busy in (False, True):
                conn = connect(directory, f"{name}-{busy}.db")
                store._max_variables = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
                elapsed = timed(lambda: [commit(conn, b) for b in work], int(busy))  # noqa: B023
                conn.close()
                beside = "beside a busy thread" if busy else "alone"
                print(f"{name:12s} {beside:21s} {elapsed:8.3f} s  {rows / elapsed:12,.0f} rows/s")
        reads(directory, args.events, args.page)


def reads(directory: Path, events: int, page: int) -> None:
    """Read a run's whole log in pages, the old way and the store's way."""
    store = SQLiteStore(f"sqlite:///{directory / 'log.db'}")
    conn = connect(directory, "log.db")
    now = time.time()
    conn.executemany(
        _INSERT_EVENT,
        [
            ("run", seq, "tick", f'{{"i":{seq},"text":"{"x" * 40}"}}', now)
            for seq in range(1, events + 1)
        ],
    )
    store._read_conn = conn
    where = "FROM events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?"

    def with_fetchall() -> None:
        for after in range(0, events, page):
            rows = conn.execute(f"SELECT seq, type, data, at {where}", ["run", after, page])
            assert len(rows.fetchall()) == min(page, events - after)

    def packed() -> None:
        for after in range(0, events, page):
            rows = store._query_packed(
                "json_array(seq, type, data, quote(at))",
                f"SELECT seq, type, data, at {where}",
                ["run", after, page],
            )
            assert len(rows) == min(page, events - after)

    print(f"reads: {events:,} events in pages of {page:,}")
    for name, read in (("fetchall", with_fetchall), ("one-step", packed)):
        for busy in (0, 1, 2):  # 2: the event loop and the writer thread, as a server has
            elapsed = timed(read, busy)
            beside = f"beside {busy} busy thread{'s' * (busy > 1)}" if busy else "alone"
            per_page = elapsed / -(-events // page) * 1000
            print(f"{name:12s} {beside:22s} {elapsed:8.3f} s  {per_page:9.1f} ms per page")
    conn.close()


if __name__ == "__main__":
    main()
