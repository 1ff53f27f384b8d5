"""What ``GET /stats`` costs with a million runs stored in SQLite, side by side with a scan.

Builds a SQLite file with the store's own schema holding ``--runs`` finished runs spread over
``--days`` days (five tasks; 90% completed, 5% failed, 3% cancelled, 2% timed out; durations
from 0.1 s to a few minutes), plus ``--recent`` runs that finished in the last hour (a busy
hour) and ``--unfinished`` runs queued or running. Rows are written straight into the file
(a million runs through the engine would take a minute and measure the engine). Then, on the
opened store, the median of ``--reps`` calls of:

* ``activity``: the store's query, for the last hour by the minute and the last day by the
  quarter hour (what the dashboard asks), read from ``runs_by_finished``;
* the baseline, side by side: the very same query with the index out of reach (``finished_at +
  0``), i.e. counting over the whole table, as a store without that index must;
* ``count_runs``: the counts by task and state that the counter and ``/stats`` show, beside
  the ``GROUP BY`` over the whole table it was before schema 4;
* ``GET /stats`` and ``GET /health`` (the floor of a request) through a real ``taskcast serve``
  on that file, from a client in this process.

And on Redis (a redis-server of its own, as the tests start it), with ``--redis-runs`` runs
that ended in the last hour written through the store: ``activity`` for the last hour, beside
the way it read them first (a pipeline of one ``HMGET`` per run and a ``json.loads`` per value).

Run:  .venv/bin/python bench/stats.py [--runs 1000000] [--days 30] [--recent 10000]
      [--unfinished 1000] [--reps 7] [--redis-runs 10000]
Prints one JSON document and markdown tables.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

import taskcast
from taskcast.ids import new_run_id
from taskcast.states import RunState
from taskcast.stats import RunTimes, Window, tally
from taskcast.stores.redis import RedisStore
from taskcast.stores.sqlite import _ACTIVITY_DURATIONS, _ACTIVITY_ENDED, SQLiteStore

REPO = str(Path(__file__).resolve().parents[1])
TASKS = ["report.build", "http.fetch", "agent.step", "mail.send", "data.load"]
ENDS = [("completed", 0.90), ("failed", 0.05), ("cancelled", 0.03), ("timed_out", 0.02)]
WINDOWS = [("1h by the minute", 3600.0, 60.0), ("24h by 15 minutes", 86400.0, 900.0)]


def rows(count: int, since: float, until: float, rng: random.Random, prefix: str) -> list[Any]:
    """``count`` finished runs created between ``since`` and ``until``, oldest first."""
    states = [state for state, _ in ENDS]
    weights = [weight for _, weight in ENDS]
    created = sorted(rng.uniform(since, until) for _ in range(count))
    out = []
    for index, at in enumerate(created):
        started = at + rng.uniform(0.0, 2.0)
        state = rng.choices(states, weights)[0]
        finished = started + min(rng.lognormvariate(0.5, 1.2), 600.0)
        out.append(
            (
                f"{prefix}{index:024d}",
                TASKS[index % len(TASKS)],
                "{}",
                state,
                1,
                1,
                None,
                "null",
                None if state == "completed" else '{"type":"E","message":"m"}',
                at,
                started,
                min(finished, until),
                None,
                3,
                None,
                "[]",
                "fail",
                None,
            )
        )
    return out


def build(path: Path, args: argparse.Namespace) -> None:
    asyncio.run(_create_schema(path))
    rng = random.Random(1)
    now = time.time()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    insert = (
        "INSERT INTO runs (id, task, args, state, attempt, max_attempts, timeout, result, error,"
        " created_at, started_at, finished_at, not_before, last_seq, parent_id, after_ids,"
        " after_policy, retry_of) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
    )
    chunk = 100_000
    old_until = now - 3600
    for offset in range(0, args.runs, chunk):
        # Chunks of consecutive time spans, so ids (by creation) keep their order.
        span = (old_until - (now - args.days * 86400)) / max(1, args.runs / chunk)
        since = now - args.days * 86400 + (offset / chunk) * span
        part = rows(min(chunk, args.runs - offset), since, since + span, rng, f"A{offset:07d}")
        conn.executemany(insert, part)
        conn.commit()
    conn.executemany(insert, rows(args.recent, now - 3600, now - 5, rng, "B"))
    unfinished = []
    for index in range(args.unfinished):
        at = now - rng.uniform(0, 600)
        running = index % 10 == 0
        unfinished.append(
            (f"C{index:025d}", TASKS[index % len(TASKS)], "{}", "running" if running else "queued",
             1 if running else 0, 1, None, "null", None, at, at + 1 if running else None, None,
             None, 2 if running else 1, None, "[]", "fail", None)
        )  # fmt: skip
    conn.executemany(insert, unfinished)
    # What the store keeps with each commit (and a migration computes): runs ended, by task and
    # state.
    conn.execute(
        "INSERT INTO ended_runs (task, state, runs) SELECT task, state, count(*) FROM runs"
        " WHERE finished_at IS NOT NULL GROUP BY task, state"
    )
    conn.commit()
    conn.close()


async def _create_schema(path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{path}")
    await store.open()
    await store.close()


async def timed(reps: int, call: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    """Median seconds of ``reps`` calls (after one warm-up call) and the last result."""
    result = await call()
    samples = []
    for _ in range(reps):
        started = time.perf_counter()
        result = await call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples), result


def scan_counts(store: SQLiteStore, window: Window) -> tuple[list[Any], list[Any]]:
    """The baseline: the store's own queries with the index out of reach."""
    params = {"start": window.start, "end": window.end, "step": window.step}
    unindexed = [
        sql.replace("INDEXED BY runs_by_finished", "").replace(
            "finished_at >= :start", "finished_at + 0 >= :start"
        )
        for sql in (_ACTIVITY_ENDED, _ACTIVITY_DURATIONS)
    ]
    return store._query(unindexed[0], params), store._query(unindexed[1], params)


async def measure_store(path: Path, reps: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    # Opening says which unfinished runs no registered task will run: a thousand lines here.
    logging.getLogger("taskcast").setLevel(logging.ERROR)
    async with taskcast.App(f"sqlite:///{path}") as app:
        store = app.store
        assert isinstance(store, SQLiteStore)
        for name, span, step in WINDOWS:
            window = Window.ending_at(time.time(), span, step)
            indexed, activity = await timed(reps, lambda w=window: store.activity(w))  # type: ignore[misc]
            scanned, (counts, _) = await timed(
                reps,
                lambda w=window: store._in_reader(scan_counts, store, w),  # type: ignore[misc]
            )
            finished = sum(sum(values) for values in activity.finished.values())
            assert finished == sum(row[-1] for row in counts if row[0] in activity.finished)
            figures[name] = {"activity_s": indexed, "scan_s": scanned, "finished": finished}
        figures["count_runs_s"], counts = await timed(reps, store.count_runs)
        figures["stored"] = sum(counts.values())
        # The baseline: counting the table (what count_runs did before schema 4).
        figures["count_scan_s"], scanned = await timed(
            reps,
            lambda: store._read("SELECT task, state, count(*) FROM runs GROUP BY task, state", []),
        )
        assert sum(row[2] for row in scanned) == figures["stored"]
    return figures


def measure_http(path: Path, reps: int) -> dict[str, float]:
    command = [sys.executable, "-m", "taskcast", "serve", "--store", f"sqlite:///{path}",
               "--port", "0", "--no-demo", "--log-level", "warning"]  # fmt: skip
    log_path = path.with_suffix(".log")
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline and server.poll() is None:
            found = re.search(r"serving on (http://127\.0\.0\.1:\d+)", log_path.read_text())
            url = found.group(1) if found else None
            time.sleep(0.1)  # polling the server's log for its address
        assert url, f"the server did not start: {log_path.read_text()[-2000:]}"
        figures = {}
        with httpx.Client(base_url=url, timeout=60) as client:
            for name, path_query in (
                ("health_s", "/health"),
                ("stats_1h_s", "/stats?window=1h&step=1m"),
                ("stats_24h_s", "/stats?window=24h&step=15m"),
            ):
                assert client.get(path_query).status_code == 200
                samples = []
                for _ in range(reps):
                    started = time.perf_counter()
                    response = client.get(path_query)
                    samples.append(time.perf_counter() - started)
                    assert response.status_code == 200
                figures[name] = statistics.median(samples)
        return figures
    finally:
        server.terminate()
        server.wait(30)


async def measure_redis(runs: int, reps: int) -> dict[str, float]:
    sys.path.insert(0, REPO)  # for tests.redis_server
    from tests.redis_server import RedisServer

    with tempfile.TemporaryDirectory() as directory:
        server = RedisServer(Path(directory))
        server.start()
        store = RedisStore(server.url + "?prefix=bench:")
        await store.open()
        try:
            now = time.time()

            async def write(index: int) -> None:
                created = now - 3500 + index * 3000 / runs
                run = taskcast.Run(new_run_id(), TASKS[index % len(TASKS)], {}, created_at=created)
                await store.create_run(run, {"task": run.task}, fresh_id=True)
                await store.transition(
                    run.id, RunState.RUNNING, "started", {}, started_at=created + 0.5
                )
                await store.transition(
                    run.id, RunState.COMPLETED, "completed", {}, finished_at=created + 2.0
                )

            for start in range(0, runs, 500):
                await asyncio.gather(*(write(i) for i in range(start, min(runs, start + 500))))
            window = Window.ending_at(time.time(), 3600, 60)

            async def first_way() -> Any:
                ids = await store.client.zrangebyscore(
                    store.prefix + "finished", window.start, "+inf"
                )
                found = []
                for start in range(0, len(ids), 1000):
                    async with store.client.pipeline(transaction=False) as pipe:
                        for raw in ids[start : start + 1000]:
                            pipe.hmget(store.run_key(raw.decode()), *RunTimes._fields)
                        for values in await pipe.execute():
                            found.append(RunTimes(*(json.loads(value) for value in values)))
                return tally(window, found)

            ours, activity = await timed(reps, lambda: store.activity(window))
            theirs, baseline = await timed(reps, first_way)
            assert activity.finished == baseline.finished
            return {"redis_runs": runs, "redis_activity_s": ours, "redis_first_way_s": theirs}
        finally:
            await store.close()
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--recent", type=int, default=10_000)
    parser.add_argument("--unfinished", type=int, default=1_000)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--redis-runs", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "stats.db"
        started = time.perf_counter()
        build(path, args)
        built = time.perf_counter() - started
        store = asyncio.run(measure_store(path, args.reps))
        http = measure_http(path, args.reps)
        size = path.stat().st_size
    redis = asyncio.run(measure_redis(args.redis_runs, args.reps)) if args.redis_runs else {}
    result = {
        "args": vars(args),
        "build_s": built,
        "file_mb": size / 2**20,
        **store,
        **http,
        **redis,
    }
    print(json.dumps(result, indent=1))
    print()
    print(f"{store['stored']:,} runs stored ({size / 2**20:.0f} MB), median of {args.reps}:")
    print()
    print("| figure | indexed (taskcast) | whole-table scan (baseline) | ratio |")
    print("|---|---:|---:|---:|")
    for name, _, _ in WINDOWS:
        item = store[name]
        print(
            f"| activity, {name} ({item['finished']:,} runs in it) | {item['activity_s'] * 1e3:.1f}"
            f" ms | {item['scan_s'] * 1e3:.1f} ms | {item['scan_s'] / item['activity_s']:.0f}x |"
        )
    count, scan = store["count_runs_s"], store["count_scan_s"]
    print(
        f"| count_runs (by task and state) | {count * 1e3:.1f} ms | {scan * 1e3:.1f} ms"
        f" | {scan / count:.0f}x |"
    )
    print(f"| GET /health (the floor of a request) | {http['health_s'] * 1e3:.1f} ms | | |")
    for key, label in (("stats_1h_s", "1h&step=1m"), ("stats_24h_s", "24h&step=15m")):
        print(f"| GET /stats?window={label} | {http[key] * 1e3:.1f} ms | | |")
    if redis:
        ours, theirs = redis["redis_activity_s"], redis["redis_first_way_s"]
        print()
        print(f"Redis, {redis['redis_runs']:,} runs ended in the last hour, median of {args.reps}:")
        print()
        print("| figure | taskcast | one HMGET per run, a loads per value | ratio |")
        print("|---|---:|---:|---:|")
        print(
            f"| activity, 1h by the minute | {ours * 1e3:.1f} ms | {theirs * 1e3:.1f} ms"
            f" | {theirs / ours:.1f}x |"
        )


if __name__ == "__main__":
    main()
