"""Time-and-order benchmarks, each side by side with its baseline in one run.

1. due at once: N runs scheduled for one instant (``submit_many(..., run_at=T)``), how long from
   T until every one has started, against the same N runs submitted without a start time (from
   the submit until every one has started); and how late the first one started after T.
   Memory and SQLite stores.
2. rate-limit checks on Redis: runs of a task with a rate limit that never holds one back
   (``100000/s``: the check is made, the GCRA key written, per start) against runs of the same
   task without a limit, one worker in this process: microseconds per start, the difference
   being the cost of the check.
3. retention: RSS of a process that runs 1,000,000 no-op runs on the memory store with the
   default retention (the newest 10,000 per task, an hour), sampled every 100,000 runs, against
   ``retention="forever"`` for the first runs.

Run:  .venv/bin/python bench/time_and_order.py [--due 100000] [--rated 5000]
      [--runs 1000000] [--forever 200000] [--redis redis://127.0.0.1:6379/0]
(without --redis a redis-server is started on a free port for part 2).
Prints one JSON line per measure, then a markdown summary.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import taskcast

BATCH = 10_000


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def emit(record: dict[str, object]) -> None:
    print(json.dumps(record), flush=True)


class Started:
    """Counts ``started`` events (a listener); ``all`` is set once ``n`` were committed, or
    ``n`` of ``type`` events (``completed``: every run done)."""

    def __init__(self, n: int, type: str = "started") -> None:
        self.n = n
        self.type = type
        self.count = 0
        self.first: float | None = None
        self.all = asyncio.Event()

    def __call__(self, events: Sequence[taskcast.Event]) -> None:
        for event in events:
            if event.type == self.type:
                self.count += 1
                if self.first is None:
                    self.first = time.time()
        if self.count >= self.n:
            self.all.set()


def noop_app(url: str, **options: object) -> taskcast.App:
    app = taskcast.App(url, grace=0.0, max_queue=10_000_000, **options)  # type: ignore[arg-type]

    @app.task
    async def noop() -> None:
        return None

    return app


# -- 1. due at once ---------------------------------------------------------------------------


async def due_at_once(url: str, n: int, delayed: bool, margin: float) -> dict[str, float]:
    app = noop_app(url, retention="forever")
    async with app:
        started = Started(n)
        app.add_listener(started)
        began = time.time()
        if not delayed:
            for _ in range(n // BATCH):
                await app.submit_many("noop", [{}] * BATCH)
            await started.all.wait()
            return {"seconds_until_all_started": time.time() - began}
        due = began + margin  # every run is stored before then (checked)
        for _ in range(n // BATCH):
            await app.submit_many("noop", [{}] * BATCH, run_at=_at(due))
        if time.time() >= due:
            raise SystemExit(f"storing {n} runs took over {margin} s: raise --margin")
        await started.all.wait()
        return {
            "seconds_until_all_started": time.time() - due,
            "first_start_late_ms": ((started.first or due) - due) * 1000,
        }


async def lone_lateness(url: str, count: int = 20) -> list[float]:
    """How late (ms) a lone delayed run starts after its time, in an idle process."""
    app = noop_app(url, retention="forever")
    late = []
    async with app:
        for _ in range(count):
            run = await app.submit_with("noop", delay=0.1)
            await app.wait(run.id, timeout=10)
            started = next(e for e in await app.store.read_events(run.id) if e.type == "started")
            late.append((started.at - (run.run_at or 0)) * 1000)
    return late


def _at(when: float) -> datetime:
    return datetime.fromtimestamp(when, UTC)


# -- 2. rate-limit checks on Redis ---------------------------------------------------------


async def per_start(url: str, n: int, rated: bool) -> dict[str, float]:
    """Wall time, this process's CPU time and Redis's CPU time (``INFO cpu``: the server's user
    and system seconds), each per run started and completed."""
    import redis.asyncio as aioredis

    app = taskcast.App(url, grace=0.0, max_queue=10_000_000, retention="forever")

    if rated:

        @app.task(name="work", rate_limit="100000/s")
        async def work_rated() -> None:
            return None
    else:

        @app.task(name="work")
        async def work_free() -> None:
            return None

    server = aioredis.Redis.from_url(url.split("?", 1)[0])
    try:
        async with app:
            started = Started(n, "completed")
            app.add_listener(started)
            redis_before = _redis_cpu(await server.info("cpu"))
            cpu_before, began = time.process_time(), time.perf_counter()
            for _ in range(0, n, 1000):
                await app.submit_many("work", [{}] * 1000)
            await started.all.wait()
            wall, cpu = time.perf_counter() - began, time.process_time() - cpu_before
            redis_cpu = _redis_cpu(await server.info("cpu")) - redis_before
    finally:
        await server.aclose()
    return {
        "wall_us": wall / n * 1e6,
        "process_cpu_us": cpu / n * 1e6,
        "redis_cpu_us": redis_cpu / n * 1e6,
    }


def _redis_cpu(info: dict[str, float]) -> float:
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def redis_server() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    binary = shutil.which("redis-server") or "redis-server"
    process = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as client:
            if client.connect_ex(("127.0.0.1", port)) == 0:
                return process, f"redis://127.0.0.1:{port}/0"
        time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


# -- 3. retention -------------------------------------------------------------------------


async def rss_over_runs(total: int, retention: str | None, every: int) -> list[tuple[int, float]]:
    app = noop_app("memory://", **({} if retention is None else {"retention": retention}))
    samples = []
    completed = 0
    batch_done = asyncio.Event()

    def note(events: Sequence[taskcast.Event]) -> None:
        nonlocal completed
        completed += sum(1 for e in events if e.type == "completed")
        if completed % BATCH == 0:
            batch_done.set()

    async with app:
        app.add_listener(note)
        done = 0
        while done < total:
            batch_done.clear()
            await app.submit_many("noop", [{}] * BATCH)
            while completed < done + BATCH:
                await batch_done.wait()
                batch_done.clear()
            done += BATCH
            if done % every == 0:
                gc.collect()
                samples.append((done, rss_mib()))
                emit(
                    {
                        "bench": "retention",
                        "retention": retention or "default",
                        "runs": done,
                        "rss_mib": round(rss_mib(), 1),
                        "pruned": app.time_counts()["runs_pruned"],
                    }
                )
    return samples


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--due", type=int, default=100_000)
    parser.add_argument("--margin", type=float, default=30.0, help="seconds to store them all")
    parser.add_argument("--rated", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--forever", type=int, default=200_000)
    parser.add_argument("--redis", help="a Redis URL (else one is started)")
    parser.add_argument("--only", choices=["due", "lone", "rate", "retention"])
    args = parser.parse_args()
    logging.getLogger("taskcast").setLevel(logging.ERROR)  # runs left at shutdown: expected
    summary: list[str] = []
    if args.only in (None, "due"):
        for name in ("memory", "sqlite"):
            for delayed in (False, True):
                with tempfile.TemporaryDirectory() as workdir:
                    url = "memory://" if name == "memory" else f"sqlite:///{workdir}/bench.db"
                    result = await due_at_once(url, args.due, delayed, args.margin)
                emit({"bench": "due", "store": name, "delayed": delayed, "n": args.due, **result})
                label = "delayed, due at once" if delayed else "submitted without delay"
                extra = (
                    f"; first start {result['first_start_late_ms']:.0f} ms after its time"
                    if delayed
                    else ""
                )
                summary.append(
                    f"| {name} | {label} | {result['seconds_until_all_started']:.2f} s{extra} |"
                )
    if args.only in (None, "due", "lone"):
        for name in ("memory", "sqlite"):
            with tempfile.TemporaryDirectory() as workdir:
                url = "memory://" if name == "memory" else f"sqlite:///{workdir}/bench.db"
                late = await lone_lateness(url)
            emit({"bench": "lone", "store": name, "late_ms": late})
            summary.append(
                f"| {name} | a lone delayed run | started {statistics.median(late):.1f} ms"
                f" after its time (median of {len(late)}; at most {max(late):.1f} ms) |"
            )
    if args.only in (None, "rate"):
        process = None
        url = args.redis
        if url is None:
            process, url = redis_server()
        try:
            measured: dict[bool, list[dict[str, float]]] = {False: [], True: []}
            for rep in range(3):  # side by side: unlimited, then rate-limited, each repetition
                for rated in (False, True):
                    prefix = f"bench{os.getpid()}r{int(rated)}x{rep}:"
                    result = await per_start(f"{url}?prefix={prefix}", args.rated, rated)
                    measured[rated].append(result)
                    emit({"bench": "rate", "rated": rated, "rep": rep, **result})
            for rated, results in measured.items():
                medians = {k: statistics.median(r[k] for r in results) for k in results[0]}
                summary.append(
                    f"| redis | {'rate-limited' if rated else 'unlimited'} |"
                    f" {medians['wall_us']:.0f} us wall, {medians['process_cpu_us']:.0f} us"
                    f" process CPU, {medians['redis_cpu_us']:.1f} us Redis CPU per run |"
                )
        finally:
            if process is not None:
                process.terminate()
                process.wait(10)
    if args.only in (None, "retention"):
        forever = await rss_over_runs(args.forever, "forever", 100_000)
        default = await rss_over_runs(args.runs, None, 100_000)
        for runs, mib in default:
            summary.append(f"| memory, default retention | {runs:,} runs | {mib:.0f} MiB |")
        for runs, mib in forever:
            summary.append(f"| memory, forever | {runs:,} runs | {mib:.0f} MiB |")
    print()
    print("\n".join(summary))


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
