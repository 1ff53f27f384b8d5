"""``sqlite:///PATH``: runs and logs in one SQLite file, for the embedded single-process mode.

How it is fast and safe:

* WAL journal, so reads (a reader thread with its own connection) never block writes;
* group commit: every write joins the pending batch and one writer thread commits whole batches,
  so many concurrent runs share one transaction instead of paying one commit each; a writer's
  ``await`` returns when its batch is committed;
* the state of every unfinished run is kept in memory twice: as staged (``_live``: what the
  compare-and-set of ``transition`` checks, a dict lookup; it also lets one process own ``seq``
  numbering) and as committed (``_committed``: what readers see, so nobody sees a state whose
  events are not readable yet). The file is locked (``flock``) so a second process cannot open
  it at the same time;
* the schema is versioned with ``PRAGMA user_version``.

``synchronous=NORMAL`` (the default) survives a crash of the process; add ``?synchronous=full`` to
the URL to also survive power loss (one fsync per batch, still shared by the batch).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import time
from collections import Counter, deque
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from operator import itemgetter
from typing import Any, TypeVar

from ..errors import RunFinished, RunNotFound, SchemaError, StoreError, StoreUnavailable
from ..ids import ids_with_prefix_below
from ..models import Event, Run, ScheduleState, compact_json, encode_json
from ..states import TERMINAL_STATES, RunState
from ..stats import Activity, RunTimes, Tally, TaskDurations, Window, durations_of
from .base import Store, apply_transition

logger = logging.getLogger("taskcast")

SCHEMA_VERSION = 7
"""1: the engine's runs and events. 2: adds the workflow columns ``parent_id``, ``after_ids`` and
``after_policy``. 3: the index by state keeps only the rarely listed end states (see
``_RARE_STATES``). 4: adds ``retry_of``, ``runs_by_finished`` for ``activity`` (see
``_FINISHED_INDEX``) and ``ended_runs``, the count of finished runs by task and state, kept with
each commit (``count_runs`` reads it and the unfinished runs in memory, never the whole table).
5: adds ``not_after`` (a child's cap: its parent's deadline). 6: time and order: the columns
``run_at`` and ``priority``, the index of finished runs by task and finish time (retention),
the ``schedules`` table. 7: the columns ``owner`` (who submitted the run, for access control)
and ``traceparent`` (the trace it continues). ``_MIGRATIONS`` moves an older file up."""

_RARE_STATES = ("failed", "cancelled", "timed_out")
"""The states the ``runs_by_state`` index covers. Unfinished runs are listed from memory (every
one is there), and most finished runs are ``completed``, so the newest of them are found by
walking the table from its newest id; indexing those would cost every run three index writes
for queries that do not need them."""
_RARE_STATES_SQL = ", ".join(f"'{state}'" for state in _RARE_STATES)
_TERMINAL_STATES_SQL = ", ".join(f"'{state.value}'" for state in RunState if state.is_terminal)

_FINISHED_INDEX = (
    "CREATE INDEX IF NOT EXISTS runs_by_finished"
    " ON runs (finished_at, state, task, started_at, created_at) WHERE finished_at IS NOT NULL"
)
"""Finished runs by finish time, with what ``activity`` counts: the runs of a time window are one
range of it, read without touching the table (a covering index), however many runs the file
holds. Written once per run, when it finishes (an update that leaves these columns alone does
not touch it)."""

MAX_UNCOMMITTED_EVENTS = 10_000
"""Non-durable writes wait for the commit once this many events are pending."""

_SCHEMA_TEMPLATE = """
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
    after_policy TEXT NOT NULL DEFAULT 'fail',
    retry_of TEXT,
    not_after REAL,
    run_at REAL,
    priority INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    traceparent TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS runs_by_state ON runs (state, id) WHERE state IN ({rare});
CREATE INDEX IF NOT EXISTS runs_by_task ON runs (task, id);
CREATE INDEX IF NOT EXISTS runs_by_parent ON runs (parent_id, id) WHERE parent_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS ended_runs (
    task TEXT NOT NULL,
    state TEXT NOT NULL,
    runs INTEGER NOT NULL,
    PRIMARY KEY (task, state)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS runs_by_finish ON runs (task, finished_at)
    WHERE finished_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS schedules (
    name TEXT PRIMARY KEY,
    paused INTEGER,
    last_tick REAL,
    last_run TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
"""

_SCHEMA = _SCHEMA_TEMPLATE.format(rare=_RARE_STATES_SQL) + _FINISHED_INDEX + ";\n"

_MIGRATIONS: dict[int, tuple[str, ...]] = {
    # From version 1 to 2: a file written by the engine before workflows existed.
    1: (
        "ALTER TABLE runs ADD COLUMN parent_id TEXT",
        "ALTER TABLE runs ADD COLUMN after_ids TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE runs ADD COLUMN after_policy TEXT NOT NULL DEFAULT 'fail'",
        "CREATE INDEX IF NOT EXISTS runs_by_parent ON runs (parent_id, id)"
        " WHERE parent_id IS NOT NULL",
    ),
    # From version 2 to 3: the index by state covers the rare states only.
    2: (
        "DROP INDEX IF EXISTS runs_by_state",
        f"CREATE INDEX runs_by_state ON runs (state, id) WHERE state IN ({_RARE_STATES_SQL})",
    ),
    # From version 3 to 4: runs link to the run they retry; finished runs indexed by time and
    # counted by task and state.
    3: (
        "ALTER TABLE runs ADD COLUMN retry_of TEXT",
        _FINISHED_INDEX,
        "CREATE TABLE IF NOT EXISTS ended_runs (task TEXT NOT NULL, state TEXT NOT NULL,"
        " runs INTEGER NOT NULL, PRIMARY KEY (task, state)) WITHOUT ROWID",
        "INSERT INTO ended_runs (task, state, runs) SELECT task, state, count(*) FROM runs"
        f" WHERE state IN ({_TERMINAL_STATES_SQL}) GROUP BY task, state",
    ),
    # From version 4 to 5: a child run keeps its parent's deadline.
    4: ("ALTER TABLE runs ADD COLUMN not_after REAL",),
    # From version 5 to 6: time and order.
    5: (
        "ALTER TABLE runs ADD COLUMN run_at REAL",
        "ALTER TABLE runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX IF NOT EXISTS runs_by_finish ON runs (task, finished_at)"
        " WHERE finished_at IS NOT NULL",
        "CREATE TABLE IF NOT EXISTS schedules (name TEXT PRIMARY KEY, paused INTEGER,"
        " last_tick REAL, last_run TEXT) WITHOUT ROWID",
    ),
    # From version 6 to 7: who submitted each run, and the trace it continues.
    6: (
        "ALTER TABLE runs ADD COLUMN owner TEXT",
        "ALTER TABLE runs ADD COLUMN traceparent TEXT",
    ),
}
"""Statements that move a file from version ``key`` to ``key + 1``."""

_RUN_COLUMNS = (
    "id, task, args, state, attempt, max_attempts, timeout, result, error,"
    " created_at, started_at, finished_at, not_before, last_seq,"
    " parent_id, after_ids, after_policy, retry_of, not_after, run_at, priority,"
    " owner, traceparent"
)
_RUN_COLUMN_NAMES = [column.strip() for column in _RUN_COLUMNS.split(",")]
_REAL_RUN_COLUMNS = frozenset(
    {"timeout", "created_at", "started_at", "finished_at", "not_before", "not_after", "run_at"}
)
_PACKED_RUN = "json_array({})".format(
    ", ".join(f"quote({c})" if c in _REAL_RUN_COLUMNS else c for c in _RUN_COLUMN_NAMES)
)
"""A run's row as one JSON array (REAL columns as ``quote()`` text, which round-trips exactly,
where SQLite's JSON rendering keeps only 15 digits); see ``SQLiteStore._query_packed``."""
_REAL_RUN_INDEXES = tuple(i for i, c in enumerate(_RUN_COLUMN_NAMES) if c in _REAL_RUN_COLUMNS)
_UPSERT_RUN = (
    f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
    " ON CONFLICT (id) DO UPDATE SET state=excluded.state, attempt=excluded.attempt,"
    " max_attempts=excluded.max_attempts, timeout=excluded.timeout, result=excluded.result,"
    " error=excluded.error, started_at=excluded.started_at, finished_at=excluded.finished_at,"
    " not_before=excluded.not_before, last_seq=excluded.last_seq"
)
_INSERT_EVENT = "INSERT INTO events (run_id, seq, type, data, at) VALUES (?,?,?,?,?)"
_COUNT_ENDED = (
    "INSERT INTO ended_runs (task, state, runs) VALUES (?,?,?)"
    " ON CONFLICT (task, state) DO UPDATE SET runs = runs + excluded.runs"
)
MAX_ROWS_PER_STATEMENT = 256
"""A batch's rows go in multi-row ``INSERT``s of up to this many rows (fewer where the SQLite
library allows fewer bound variables): far fewer statements than one per row, and each
statement size a power of two, so the few statements needed stay prepared."""

_T = TypeVar("_T")
RunRow = tuple[Any, ...]
EventRow = tuple[str, int, str, str, float]


class _Commit(asyncio.Future[None]):
    """The commit of one batch, awaited by every writer whose write is in it.

    A writer cancelled while it waits must not cancel the commit for the others (nor undo its
    own write), so ``cancel()`` refuses: asyncio then delivers the waiter's ``CancelledError``
    as soon as the commit is done, a few milliseconds later. Cheaper than a ``shield`` per
    waiter, which costs a future and two callbacks for every durable write.
    """

    def cancel(self, msg: Any = None) -> bool:
        return False


class _Batch:
    """Writes committed together: run snapshots by id, events to announce, and ``done``, the
    future their writers await, resolved once the commit (``commit``) and its bookkeeping are
    over."""

    __slots__ = ("announce", "commit", "done", "runs")

    def __init__(
        self,
        runs: dict[str, Run],
        announce: list[Event],
        done: asyncio.Future[None],
        commit: asyncio.Future[None],
    ) -> None:
        self.runs = runs
        self.announce = announce
        self.done = done
        self.commit = commit


def _run_row(run: Run, args_json: str) -> RunRow:
    return (
        run.id,
        run.task,
        args_json,
        run.state.value,
        run.attempt,
        run.max_attempts,
        run.timeout,
        "null" if run.result is None else compact_json(run.result),
        None if run.error is None else compact_json(run.error),
        run.created_at,
        run.started_at,
        run.finished_at,
        run.not_before,
        run.last_seq,
        run.parent_id,
        compact_json(run.after) if run.after else "[]",
        run.after_policy,
        run.retry_of,
        run.not_after,
        run.run_at,
        run.priority,
        run.owner,
        run.traceparent,
    )


def _run_from_row(row: Sequence[Any]) -> Run:
    return Run(
        id=row[0],
        task=row[1],
        args=json.loads(row[2]),
        state=RunState(row[3]),
        attempt=row[4],
        max_attempts=row[5],
        timeout=row[6],
        result=json.loads(row[7]),
        error=None if row[8] is None else json.loads(row[8]),
        created_at=row[9],
        started_at=row[10],
        finished_at=row[11],
        not_before=row[12],
        last_seq=row[13],
        parent_id=row[14],
        after=json.loads(row[15]),
        after_policy=row[16],
        retry_of=row[17],
        not_after=row[18],
        run_at=row[19],
        priority=row[20],
        owner=row[21],
        traceparent=row[22],
    )


def path_from_url(url: str) -> str:
    """``sqlite:///rel/path.db`` -> ``rel/path.db``; ``sqlite:////abs/path.db`` -> ``/abs/...``."""
    rest = url.removeprefix("sqlite://")
    path = rest.split("?", 1)[0]
    if not path.startswith("/") or path == "/":
        raise StoreError(
            f"cannot open store {url!r}: expected sqlite:///relative/path.db "
            "or sqlite:////absolute/path.db"
        )
    return path[1:]


class SQLiteStore(Store):
    """Runs and logs in one SQLite file, written with group commit (see the module docstring)."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.path = path_from_url(url)
        query = url.split("?", 1)[1] if "?" in url else ""
        options = dict(part.split("=", 1) for part in query.split("&") if "=" in part)
        self.synchronous = options.get("synchronous", "normal").upper()
        if self.synchronous not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise StoreError(
                f"cannot open store {url!r}: synchronous must be off, normal, full or extra"
            )
        self._live: dict[str, Run] = {}
        self._committed: dict[str, Run] = {}
        self._args_json: dict[str, str] = {}  # of unfinished runs: encoded once, written often
        self._pending_runs: dict[str, Run] = {}
        self._pending_events: list[EventRow] = []
        self._pending_announce: list[Event] = []
        self._pending_done: asyncio.Future[None] | None = None
        # The batches handed to the writer thread, oldest first (at most two).
        self._inflight: deque[_Batch] = deque()
        self._wake: asyncio.Event | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._write_conn: sqlite3.Connection | None = None
        self._read_conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._closing = False
        self.batches_committed = 0
        self._max_variables = 999  # the smallest SQLite default; read from the library at open
        self._statements: dict[tuple[str, int], str] = {}

    # -- opening and closing ------------------------------------------------------------------

    async def open(self) -> None:
        self._take_file_lock()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="taskcast-sqlite-writer")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="taskcast-sqlite-reader")
        try:
            self._write_conn = await self._in(self._writer, self._connect_writer)
            self._read_conn = await self._in(self._reader, self._connect_reader)
            rows = await self._in(self._reader, self._select_unfinished)
        except BaseException:
            await self._release()
            raise
        self._live = {run.id: run for run in map(_run_from_row, rows)}
        self._committed = {run.id: run.copy() for run in self._live.values()}
        self._wake = asyncio.Event()
        self._closing = False
        self._flusher = asyncio.get_running_loop().create_task(
            self._flush_forever(), name=f"taskcast-sqlite-flusher {self.path}"
        )
        self._flusher.add_done_callback(self._flusher_ended)

    def _take_file_lock(self) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise StoreError(
                f"cannot open store {self.url!r}: directory {directory!r} does not exist"
            )
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot open store {self.url!r}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(
                f"cannot open store {self.url!r}: another process is using it "
                "(one process per SQLite file; use a redis:// store to share runs)"
            ) from None
        self._lock_fd = fd

    def _connect_writer(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("PRAGMA busy_timeout=5000")
            self._max_variables = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                conn.close()
                raise SchemaError(
                    f"cannot open store {self.url!r}: its schema version {version} is newer than"
                    f" this taskcast's ({SCHEMA_VERSION}); upgrade taskcast"
                )
            if version < SCHEMA_VERSION:
                conn.execute("BEGIN IMMEDIATE")
                if version == 0:  # a new file
                    self._create_schema(conn)
                for step in range(version or SCHEMA_VERSION, SCHEMA_VERSION):
                    for statement in _MIGRATIONS[step]:
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                conn.execute("COMMIT")
            return conn
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open store {self.url!r}: {exc}") from None

    @staticmethod
    def _create_schema(conn: sqlite3.Connection) -> None:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)

    def _connect_reader(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=5000")
        return conn

    def _select_unfinished(self) -> list[Any]:
        assert self._read_conn is not None
        marks = ",".join("?" * len(TERMINAL_STATES))
        return self._read_conn.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE state NOT IN ({marks}) ORDER BY id",
            [s.value for s in TERMINAL_STATES],
        ).fetchall()

    def _flusher_ended(self, flusher: asyncio.Task[None]) -> None:
        """Say at once, not at close, that the writer stopped: every write from now on fails
        (``StoreUnavailable``) and ``/health`` answers 503 with the same reason."""
        if not self._closing:
            logger.error(
                "the commit task of %s stopped%s; no write can be stored until the process"
                " restarts",
                self.url,
                " (cancelled)" if flusher.cancelled() else "",
                exc_info=None if flusher.cancelled() else flusher.exception(),
            )

    def _writer_stopped(self) -> str:
        assert self._flusher is not None and self._flusher.done()
        error = None if self._flusher.cancelled() else self._flusher.exception()
        return f"its commit task stopped ({error!r})" if error else "its commit task stopped"

    async def problem(self) -> str | None:
        if self._flusher is not None and self._flusher.done() and not self._closing:
            return f"store {self.url!r} cannot write: {self._writer_stopped()}"
        return None

    async def close(self) -> None:
        if self._flusher is None:
            return
        stopped_before = self._flusher.done()  # and said so (_flusher_ended)
        self._closing = True
        assert self._wake is not None
        self._wake.set()
        # wait() does not raise what the flusher raised (or its own cancellation, when a loop
        # being torn down cancelled it): closing must release the file whatever happened.
        flusher = self._flusher
        await asyncio.wait([flusher])
        if not stopped_before and not flusher.cancelled() and flusher.exception() is not None:
            logger.error("the commit task of %s crashed", self.url, exc_info=flusher.exception())
        self._flusher = None
        await self._release()

    async def _release(self) -> None:
        for executor, attr in ((self._writer, "_write_conn"), (self._reader, "_read_conn")):
            conn = getattr(self, attr)
            if executor is not None and conn is not None:
                await self._in(executor, conn.close)
            setattr(self, attr, None)
            if executor is not None:
                executor.shutdown(wait=True)
        self._writer = self._reader = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    @staticmethod
    async def _in(executor: ThreadPoolExecutor, fn: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    # -- group commit --------------------------------------------------------------------------

    def _stage(self, snapshot: Run, events: list[Event]) -> asyncio.Future[None]:
        """Add a write to the pending batch; the future resolves when that batch is committed.

        ``snapshot`` is a copy of the run as it will be once committed.
        """
        if self._flusher is None or self._closing:
            raise StoreError(f"store {self.url!r} is closed")
        if self._flusher.done():
            raise StoreUnavailable(f"store {self.url!r} cannot write: {self._writer_stopped()}")
        if snapshot.id not in self._args_json:
            # Encoded here, in the writer's caller: what cannot be stored fails this write alone
            # (the other JSON fields are checked by ``transition``).
            self._args_json[snapshot.id] = encode_json(snapshot.args, "the arguments of the run")
        self._pending_runs[snapshot.id] = snapshot  # its row is built at flush: once per batch
        for event in events:
            self._pending_events.append(
                (event.run_id, event.seq, event.type, event.data_json(), event.at)
            )
        self._pending_announce.extend(events)
        if self._pending_done is None:
            self._pending_done = _Commit(loop=asyncio.get_running_loop())
            assert self._wake is not None
            self._wake.set()
        return self._pending_done

    async def _settle(self, committed: asyncio.Future[None], durable: bool) -> None:
        """Wait for the commit if asked to, or if the writer is far behind (bounded memory)."""
        if durable or len(self._pending_events) >= MAX_UNCOMMITTED_EVENTS:
            await committed

    async def _flush_forever(self) -> None:
        try:
            await self._flush_until_closed()
        finally:
            # Waiters cannot be cancelled out of a commit (see _Commit): if the flusher itself
            # is cancelled (the loop is torn down), fail what it will never commit.
            lost = StoreError(f"store {self.url!r} closed before the write was committed")
            for batch in self._inflight:
                batch.commit.cancel()  # a commit still queued in the writer never starts
                if batch.commit.done() and not batch.commit.cancelled():
                    batch.commit.exception()  # retrieved: its writers are told below
            futures = [batch.done for batch in self._inflight]
            for future in (self._pending_done, *futures):
                if future is not None and not future.done():
                    future.set_exception(lost)
                    future.exception()  # retrieved: nobody may be waiting any more
            self._inflight.clear()
            self._pending_runs, self._pending_events, self._pending_announce = {}, [], []
            self._pending_done = None

    async def _flush_until_closed(self) -> None:
        """Hand batches to the writer thread, and do the bookkeeping of each once committed.

        Up to two batches are with the writer at once: while one commits, the next waits in the
        thread's queue, so the writer goes from one commit to the next without waiting for this
        loop to notice the first (the loop may be busy running tasks for a while).
        """
        assert self._wake is not None
        while True:
            self._wake.clear()  # before looking: a wake-up from now on is not lost
            while self._inflight and self._inflight[0].commit.done():
                self._committed_batch(self._inflight.popleft())
            while self._pending_done is not None and len(self._inflight) < 2:
                self._inflight.append(self._send_batch())
            if self._closing and not self._inflight and self._pending_done is None:
                return
            await self._wake.wait()

    def _send_batch(self) -> _Batch:
        """Cut the pending writes into a batch and queue its commit in the writer thread."""
        assert self._pending_done is not None and self._writer is not None
        runs, events, announce, done = (
            self._pending_runs,
            self._pending_events,
            self._pending_announce,
            self._pending_done,
        )
        self._pending_runs, self._pending_events, self._pending_announce = {}, [], []
        self._pending_done = None
        loop = asyncio.get_running_loop()
        try:
            rows = [self._run_row(snapshot) for snapshot in runs.values()]
        except Exception as exc:  # checked before staging: a bug, but it fails this batch only
            logger.exception("a run's row for %s could not be built", self.url)
            commit: asyncio.Future[None] = loop.create_future()
            commit.set_exception(StoreError(f"a run's row could not be built: {exc!r}"))
        else:
            # A run reaches its end state once (no transition leaves it): count it as it does.
            ended = Counter(
                (snapshot.task, snapshot.state.value)
                for snapshot in runs.values()
                if snapshot.state.is_terminal
            )
            commit = loop.run_in_executor(self._writer, self._commit, rows, events, ended)
        commit.add_done_callback(self._wake_flusher)
        return _Batch(runs, announce, done, commit)

    def _wake_flusher(self, _: object) -> None:
        assert self._wake is not None
        self._wake.set()

    def _committed_batch(self, batch: _Batch) -> None:
        """Bookkeeping once a batch's commit is over: what readers see, waiters, listeners."""
        exc = batch.commit.exception()
        if exc is not None:  # the disk is full, the file vanished...
            logger.error(
                "writing %d runs' changes to %s failed; they are lost: %s",
                len(batch.runs),
                self.url,
                exc,
            )
            batch.done.set_exception(StoreUnavailable(f"writing to {self.url!r} failed: {exc}"))
            batch.done.exception()  # non-durable writers do not wait: not an unretrieved error
            return
        self.batches_committed += 1
        for snapshot in batch.runs.values():
            if snapshot.state.is_terminal:
                self._committed.pop(snapshot.id, None)
                self._args_json.pop(snapshot.id, None)
                live = self._live.get(snapshot.id)
                if live is not None and live.state.is_terminal:
                    del self._live[snapshot.id]
            else:
                self._committed[snapshot.id] = snapshot
        batch.done.set_result(None)
        self._announce(batch.announce)

    def _run_row(self, snapshot: Run) -> RunRow:
        args_json = self._args_json.get(snapshot.id)
        if args_json is None:  # encoded once per run, however often its row is written
            args_json = self._args_json[snapshot.id] = compact_json(snapshot.args)
        return _run_row(snapshot, args_json)

    def _insert_rows(self, conn: sqlite3.Connection, sql: str, rows: list[Any]) -> None:
        """Run the one-row ``INSERT`` ``sql`` for every row, as few multi-row statements.

        Why not ``executemany``: it steps once per row, and the module lets go of the GIL
        around every step; taking it back while the event loop's thread is busy can wait for
        the interpreter's switch interval (5 ms), per row. A multi-row statement lets go once.
        """
        width = sql.count("?")
        most = MAX_ROWS_PER_STATEMENT
        while most > 1 and most * width > self._max_variables:
            most //= 2
        start = 0
        while start < len(rows):
            size = most
            while size > len(rows) - start:
                size //= 2
            key = (sql, size)
            statement = self._statements.get(key)
            if statement is None:
                head, _, tail = sql.partition(" VALUES (")
                one, _, rest = tail.partition(")")
                values = ",".join([f"({one})"] * size)
                statement = self._statements[key] = f"{head} VALUES {values}{rest}"
            conn.execute(statement, list(chain.from_iterable(rows[start : start + size])))
            start += size

    def _commit(
        self,
        runs: list[RunRow],
        events: list[EventRow],
        ended: Counter[tuple[str, str]] | None = None,
    ) -> None:
        conn = self._write_conn
        assert conn is not None
        conn.execute("BEGIN")
        try:
            self._insert_rows(conn, _UPSERT_RUN, runs)
            self._insert_rows(conn, _INSERT_EVENT, events)
            if ended:
                self._insert_rows(conn, _COUNT_ENDED, [(*key, n) for key, n in ended.items()])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite may have rolled back by itself (a full disk)
                conn.execute("ROLLBACK")
            raise

    # -- writes --------------------------------------------------------------------------------

    def _new_event(self, run: Run, type: str, data: Any, data_json: str | None) -> Event:
        run.last_seq += 1
        return Event(run.id, run.last_seq, type, data, time.time(), data_json)

    async def create_run(
        self, run: Run, data: dict[str, Any], *, fresh_id: bool = False
    ) -> tuple[Run, Event | None]:
        if not fresh_id:
            existing = self._live.get(run.id) or await self.get_run(run.id)
            if existing is not None:
                return existing.copy(), None
        event = self._new_event(run, run.state.value, data, None)
        snapshot = run.copy()
        committed = self._stage(snapshot, [event])
        self._live[run.id] = run
        await committed
        return snapshot, event

    async def create_runs(self, runs: Sequence[Run], data: dict[str, Any]) -> list[Run]:
        snapshots = []
        committed = None
        data_json = compact_json(data)  # the same for all: encoded once
        for run in runs:
            event = self._new_event(run, run.state.value, data, data_json)
            snapshot = run.copy()
            committed = self._stage(snapshot, [event])
            self._live[run.id] = run
            snapshots.append(snapshot)
        if committed is not None:
            await committed  # one batch (or a few): one wait for all
        return snapshots

    async def append(
        self, run_id: str, type: str, data: Any, data_json: str, *, durable: bool = True
    ) -> Event:
        run = self._live.get(run_id)
        if run is None or run.state.is_terminal:
            stored = run or await self.get_run(run_id)
            if stored is None:
                raise RunNotFound(run_id)
            raise RunFinished(run_id, stored.state)
        event = self._new_event(run, type, data, data_json)
        await self._settle(self._stage(run.copy(), [event]), durable)
        return event

    async def append_many(
        self, run_id: str, entries: Sequence[tuple[str, Any, str]], *, durable: bool = True
    ) -> list[Event]:
        run = self._live.get(run_id)
        if run is None or run.state.is_terminal:
            stored = run or await self.get_run(run_id)
            if stored is None:
                raise RunNotFound(run_id)
            raise RunFinished(run_id, stored.state)
        written = [self._new_event(run, t, d, j) for t, d, j in entries]
        await self._settle(self._stage(run.copy(), written), durable)
        return written

    async def transition(
        self,
        run_id: str,
        target: RunState,
        event_type: str,
        data: Any,
        *,
        durable: bool = True,
        **fields: Any,
    ) -> tuple[Run, Event] | None:
        run = self._live.get(run_id)
        if run is None:
            if await self.get_run(run_id) is None:
                raise RunNotFound(run_id)
            return None  # finished and committed: no transition leaves a terminal state
        data_json = apply_transition(run, target, event_type, data, fields)
        if data_json is None:
            return None
        event = self._new_event(run, event_type, data, data_json)
        snapshot = run if target.is_terminal else run.copy()  # a finished run never changes
        await self._settle(self._stage(snapshot, [event]), durable)
        return snapshot, event

    # -- reads ---------------------------------------------------------------------------------

    def _query(self, sql: str, params: Sequence[Any] | Mapping[str, Any]) -> list[Any]:
        conn = self._read_conn
        try:
            if conn is None:
                raise sqlite3.ProgrammingError("closed")
            return conn.execute(sql, params).fetchall()
        except sqlite3.ProgrammingError:  # closed by close() while this read waited its turn
            raise StoreError(f"store {self.url!r} is closed") from None

    def _query_packed(self, packed: str, sql: str, params: list[Any]) -> list[list[Any]]:
        """The rows of ``sql`` as lists, read in one step: ``packed`` is a ``json_array(...)``
        of its columns, gathered by ``json_group_array`` into a single value.

        Why not ``fetchall``: it steps once per row, and the module lets go of the GIL around
        every step; taking it back while the event loop's thread is busy (many streams, a
        test spinning on ``sleep(0)``) can wait up to the switch interval, 5 ms, per row: with
        a hundred catching-up watchers a 1,000-event page took 0.2-1.6 s (10 ms when quiet),
        and they queued behind the one reader thread for over a minute. One aggregate row
        lets go once (the same page: at most ~0.15 s). Rows come back in ``sql``'s order
        (SQLite feeds an aggregate a sub-query's rows in its ``ORDER BY`` order); callers sort
        where it matters.
        """
        rows = self._query(f"SELECT json_group_array({packed}) FROM ({sql})", params)
        return json.loads(rows[0][0]) if rows and rows[0][0] else []

    async def _read_packed(self, packed: str, sql: str, params: list[Any]) -> list[list[Any]]:
        return await self._in_reader(self._query_packed, packed, sql, params)

    async def _read_runs(self, sql: str, params: list[Any]) -> list[Run]:
        """Runs selected by ``sql`` (which selects ``_RUN_COLUMNS``), in one read step."""
        rows = await self._read_packed(_PACKED_RUN, sql, params)
        for row in rows:
            for index in _REAL_RUN_INDEXES:
                value = row[index]
                row[index] = None if value == "NULL" else float(value)
        return [_run_from_row(row) for row in rows]

    async def _read(self, sql: str, params: list[Any]) -> list[Any]:
        return await self._in_reader(self._query, sql, params)

    async def _in_reader(self, fn: Callable[..., _T], *args: Any) -> _T:
        if self._reader is None:
            raise StoreError(f"store {self.url!r} is closed")
        return await self._in(self._reader, fn, *args)

    async def flush(self) -> None:
        pending = [batch.done for batch in self._inflight]
        if self._pending_done is not None:
            pending.append(self._pending_done)
        if pending:
            await asyncio.wait(pending)  # batches finish in order; failures are logged there

    async def get_run(self, run_id: str) -> Run | None:
        for batch in reversed(self._inflight):
            if run_id in batch.runs:
                # Its batch is committed (or about to be) in the file already; wait for the
                # bookkeeping so we never answer older than what a reader of the file could see.
                with contextlib.suppress(StoreError):
                    await batch.done
                break
        committed = self._committed.get(run_id)
        if committed is not None:
            return committed.copy()
        rows = await self._read_runs(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", [run_id])
        return rows[0] if rows else None

    async def list_runs(
        self,
        *,
        state: RunState | None = None,
        task: str | None = None,
        limit: int = 100,
        before: str | None = None,
        parent: str | None = None,
        prefix: str | None = None,
    ) -> list[Run]:
        if state is not None and not state.is_terminal:  # every unfinished run is in memory
            unfinished = [
                run
                for run_id, run in self._committed.items()
                if run.state == state
                and (task is None or run.task == task)
                and (parent is None or run.parent_id == parent)
                and (before is None or run_id < before)
                and (prefix is None or run_id.startswith(prefix))
            ]
            unfinished.sort(key=lambda run: run.id, reverse=True)
            return [run.copy() for run in unfinished[:limit]]
        where, params = [], []
        if parent is not None:
            where.append("parent_id = ?")
            params.append(parent)
        if state is not None:
            where.append(f"state = '{state.value}'")  # a literal: a RunState's value
            if state.value in _RARE_STATES:  # the index's own condition, so the planner uses it
                where.append(f"state IN ({_RARE_STATES_SQL})")
        if task is not None:
            where.append("task = ?")
            params.append(task)
        if before is not None:
            where.append("id < ?")
            params.append(before)
        if prefix is not None:
            where.append("id >= ? AND id < ?")
            params.extend((prefix, ids_with_prefix_below(prefix)))
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        stored = await self._read_runs(
            f"SELECT {_RUN_COLUMNS} FROM runs {clause} ORDER BY id DESC LIMIT ?", [*params, limit]
        )
        stored.sort(key=lambda run: run.id, reverse=True)
        runs = []
        for run in stored:
            committed = self._committed.get(run.id)  # may be fresher than this read
            runs.append(committed.copy() if committed is not None else run)
        return [r for r in runs if state is None or r.state == state]

    async def count_runs(self) -> dict[tuple[str, RunState], int]:
        rows = await self._read("SELECT task, state, runs FROM ended_runs WHERE runs > 0", [])
        counts = {(task, RunState(state)): n for task, state, n in rows}
        for run in self._committed.values():  # every unfinished run, as committed
            key = (run.task, run.state)
            counts[key] = counts.get(key, 0) + 1
        return counts

    async def read_events(self, run_id: str, after: int = 0, limit: int = 1000) -> list[Event]:
        rows = await self._read_packed(
            "json_array(seq, type, data, quote(at))",
            "SELECT seq, type, data, at FROM events WHERE run_id = ? AND seq > ? ORDER BY seq"
            " LIMIT ?",
            [run_id, after, limit],
        )
        rows.sort(key=itemgetter(0))
        return [Event(run_id, r[0], r[1], json.loads(r[2]), float(r[3]), r[2]) for r in rows]

    async def read_events_of_type(
        self, run_id: str, type: str, after: int = 0, limit: int = 1000
    ) -> list[Event]:
        rows = await self._read_packed(
            "json_array(seq, type, data, quote(at))",
            "SELECT seq, type, data, at FROM events WHERE run_id = ? AND seq > ? AND type = ?"
            " ORDER BY seq LIMIT ?",
            [run_id, after, type, limit],
        )
        rows.sort(key=itemgetter(0))
        return [Event(run_id, r[0], r[1], json.loads(r[2]), float(r[3]), r[2]) for r in rows]

    async def unfinished_runs(self) -> list[Run]:
        return [run.copy() for _, run in sorted(self._live.items()) if not run.state.is_terminal]

    async def prune(self, finished_before: float) -> int:
        if self._writer is None:
            raise StoreError(f"store {self.url!r} is closed")
        return await self._in(self._writer, self._delete_finished, finished_before)

    def _delete_finished(self, finished_before: float) -> int:
        conn = self._write_conn
        assert conn is not None
        marks = ",".join("?" * len(TERMINAL_STATES))
        terminal = [s.value for s in TERMINAL_STATES]
        conn.execute("BEGIN")
        try:
            conn.execute(
                "DELETE FROM events WHERE run_id IN (SELECT id FROM runs"
                f" WHERE state IN ({marks}) AND finished_at < ?)",
                [*terminal, finished_before],
            )
            conn.execute(
                "UPDATE ended_runs SET runs = runs - (SELECT count(*) FROM runs AS r"
                f" WHERE r.task = ended_runs.task AND r.state = ended_runs.state AND r.state IN"
                f" ({marks}) AND r.finished_at < ?)",
                [*terminal, finished_before],
            )
            deleted = conn.execute(
                f"DELETE FROM runs WHERE state IN ({marks}) AND finished_at < ?",
                [*terminal, finished_before],
            ).rowcount
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return int(deleted)

    async def activity(self, window: Window) -> Activity:
        ended, durations = await self._in_reader(self._query_activity, window)
        counter = Tally(window)
        for state, ended_in, created_in, started_in, runs in ended:
            counter.add_ended(state, ended_in, created_in, started_in, runs)
        counter.set_durations(durations)
        # Every unfinished run is in memory (as committed: what the query could see).
        for run in self._committed.values():
            counter.add(RunTimes(run.task, run.state.value, run.created_at, run.started_at, None))
        return counter.activity()

    def _query_activity(self, window: Window) -> tuple[list[Any], dict[str, TaskDurations]]:
        params = {"start": window.start, "end": window.end, "step": window.step}
        ended = self._query(_ACTIVITY_ENDED, params)
        durations = {
            task: durations_of([float(value) for value in values.split(",")])
            for task, values in self._query(_ACTIVITY_DURATIONS, params)
        }
        return ended, durations

    async def prune_task(
        self,
        task: str,
        *,
        finished_before: float | None = None,
        keep: int | None = None,
        spare: Collection[str] = (),
        limit: int = 1000,
    ) -> int:
        if self._writer is None:
            raise StoreError(f"store {self.url!r} is closed")
        return await self._in(
            self._writer, self._delete_task_runs, task, finished_before, keep, set(spare), limit
        )

    def _delete_task_runs(
        self,
        task: str,
        finished_before: float | None,
        keep: int | None,
        spare: set[str],
        limit: int,
    ) -> int:
        """One transaction: find the doomed runs on the index ``runs_by_finish`` (oldest
        finished first), then delete them and their events."""
        conn = self._write_conn
        assert conn is not None
        # Doomed: finished before the time, or at/before the newest run beyond ``keep`` (in
        # finish order, ties by id: many runs may finish within one clock tick).
        rules, params = [], []
        if finished_before is not None:
            rules.append("finished_at < ?")
            params.append(finished_before)
        if keep is not None:
            row = conn.execute(
                "SELECT finished_at, id FROM runs WHERE task = ? AND finished_at IS NOT NULL"
                " ORDER BY finished_at DESC, id DESC LIMIT 1 OFFSET ?",
                [task, keep],
            ).fetchone()
            if row is not None:
                rules.append("finished_at < ? OR (finished_at = ? AND id <= ?)")
                params.extend([row[0], row[0], row[1]])
        if not rules:
            return 0
        found = conn.execute(
            "SELECT id FROM runs WHERE task = ? AND finished_at IS NOT NULL"
            f" AND ({' OR '.join(rules)}) ORDER BY finished_at, id LIMIT ?",
            [task, *params, limit + len(spare)],
        ).fetchall()
        doomed = [run_id for (run_id,) in found if run_id not in spare][:limit]
        if not doomed:
            return 0
        conn.execute("BEGIN")
        try:
            for start in range(0, len(doomed), 500):
                chunk = doomed[start : start + 500]
                marks = ",".join("?" * len(chunk))
                conn.execute(f"DELETE FROM events WHERE run_id IN ({marks})", chunk)
                # ``ended_runs`` counts finished runs by task and state: one fewer of each.
                conn.execute(
                    "UPDATE ended_runs SET runs = runs - (SELECT count(*) FROM runs AS r"
                    f" WHERE r.task = ended_runs.task AND r.state = ended_runs.state"
                    f" AND r.id IN ({marks}))",
                    chunk,
                )
                conn.execute(f"DELETE FROM runs WHERE id IN ({marks})", chunk)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return len(doomed)

    # -- schedules -----------------------------------------------------------------------------

    async def schedule_state(self, name: str) -> ScheduleState:
        rows = await self._read(
            "SELECT paused, last_tick, last_run FROM schedules WHERE name = ?", [name]
        )
        if not rows:
            return ScheduleState(name)
        paused, last_tick, last_run = rows[0]
        return ScheduleState(name, None if paused is None else bool(paused), last_tick, last_run)

    async def set_schedule_paused(self, name: str, paused: bool) -> None:
        await self._write_schedule(
            "INSERT INTO schedules (name, paused) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET paused = excluded.paused",
            [name, int(paused)],
        )

    async def record_tick(self, name: str, tick: float | None, run_id: str) -> None:
        if tick is None:
            await self._write_schedule(
                "INSERT INTO schedules (name, last_run) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET last_run = excluded.last_run",
                [name, run_id],
            )
            return
        await self._write_schedule(
            "INSERT INTO schedules (name, last_tick, last_run) VALUES (?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET last_tick = excluded.last_tick,"
            " last_run = excluded.last_run"
            " WHERE last_tick IS NULL OR excluded.last_tick > last_tick",
            [name, tick, run_id],
        )

    async def _write_schedule(self, sql: str, params: list[Any]) -> None:
        """One statement in its own transaction, in the writer thread (between two batches)."""
        if self._writer is None:
            raise StoreError(f"store {self.url!r} is closed")

        def write() -> None:
            conn = self._write_conn
            assert conn is not None
            conn.execute("BEGIN")
            try:
                conn.execute(sql, params)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

        await self._in(self._writer, write)


def _bucket(column: str) -> str:
    """The bucket of ``column``'s time, as ``Window.bucket`` computes it; -1 for any time before
    the window (``NULL`` stays ``NULL``)."""
    return (
        f"CASE WHEN {column} < :start THEN -1 ELSE CAST(({column} - :start) / :step AS INTEGER) END"
    )


_ACTIVITY_ENDED = f"""
SELECT state, {_bucket("finished_at")}, {_bucket("created_at")}, {_bucket("started_at")}, count(*)
FROM runs INDEXED BY runs_by_finished
WHERE finished_at IS NOT NULL AND finished_at >= :start
GROUP BY 1, 2, 3, 4
"""
"""The runs that ended since the window's start, counted by end state and by the buckets of
their end, creation and start (what ``Tally.add_ended`` takes): one range of
``runs_by_finished``, and few groups, since most runs start and end soon after their creation."""

_ACTIVITY_DURATIONS = """
SELECT task, group_concat(quote(finished_at - started_at)) FROM runs INDEXED BY runs_by_finished
WHERE finished_at IS NOT NULL AND finished_at >= :start AND finished_at < :end
  AND started_at IS NOT NULL
GROUP BY task
"""
"""Per task, how long each run that ended in the window ran (``quote`` writes a REAL exactly);
``stats.durations_of`` sorts them and takes the percentiles."""
