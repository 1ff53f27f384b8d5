"""Why the SQLite store writes multi-row INSERTs: the writer thread beside a busy event loop.

Commits the same batches (run rows and events, as the engine bench writes them: one batch of
``queued`` writes, then one of ``started`` + ``completed``, per chunk of runs) two ways:
``executemany`` (one step per row) and the store's multi-row statements; each alone, then again
while another thread runs Python code without pause, as an event loop under load does. The
``sqlite3`` module lets go of the GIL around every step, and a thread that wants it back while
another runs Python waits for the switch interval (``sys.getswitchinterval()``, 5 ms).

Run:  .venv/bin/python bench/sqlite_writer.py [--runs 1000] [--chunk 100]
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


def timed(
    commit: Callable[[sqlite3.Connection, Batch], None],
    conn: sqlite3.Connection,
    work: list[Batch],
    busy: bool,
) -> float:
    stop = threading.Event()

    def spin() -> None:  # Python code without pause, like a loaded event loop
        while not stop.is_set():
            sum(range(100))

    spinner = threading.Thread(target=spin)
    if busy:
        spinner.start()
    started = time.perf_counter()
    try:
        for batch in work:
            commit(conn, batch)
    finally:
        stop.set()
        if busy:
            spinner.join()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--chunk", type=int, default=100)
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
                elapsed = timed(commit, conn, work, busy)
                conn.close()
                beside = "beside a busy thread" if busy else "alone"
                print(f"{name:12s} {beside:21s} {elapsed:8.3f} s  {rows / elapsed:12,.0f} rows/s")


if __name__ == "__main__":
    main()
