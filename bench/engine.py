"""Engine benchmarks, each side by side with its baseline in one process and one run.

1. throughput: no-op runs submitted and finished per second (memory and SQLite stores) against
   plain asyncio (create_task + gather of the same no-op coroutine) and aiojobs (spawn + wait).
   A run counts as finished when its terminal event is stored (for SQLite: committed).
2. fan-out: one run emits E events, W watchers read them all, against the same fan-out through
   W plain asyncio.Queues (put_nowait to each, sleep(0) per event).
3. memory: RSS growth per 1,000 idle watchers and per 10,000 finished runs (memory store).

Run:  .venv/bin/python bench/engine.py [--runs 100000] [--events 10000] [--watchers 1000]
      [--reps 3] [--write docs/performance.md]
Prints one JSON line per repetition and a markdown table (medians) at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import aiojobs

import taskcast

SUBMIT_CHUNK = 500  # submits in flight at once (like the peers' "100 in flight" enqueue figure)


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def noop() -> None:
    pass


# -- 1. throughput -------------------------------------------------------------------------


async def asyncio_throughput(n: int) -> float:
    started = time.perf_counter()
    tasks = [asyncio.create_task(noop()) for _ in range(n)]
    await asyncio.gather(*tasks)
    return n / (time.perf_counter() - started)


async def aiojobs_throughput(n: int) -> float:
    done = 0
    finished = asyncio.Event()

    async def job() -> None:
        nonlocal done
        done += 1
        if done == n:
            finished.set()

    scheduler = aiojobs.Scheduler(limit=None)
    try:
        started = time.perf_counter()
        for _ in range(n):
            await scheduler.spawn(job())
        await finished.wait()
        elapsed = time.perf_counter() - started
    finally:
        await scheduler.close()
    return n / elapsed


async def taskcast_throughput(store: str, n: int, *, batched: bool = False) -> float:
    """Runs/s from the first submit to the n-th stored ``completed``.

    Memory store: one ``submit`` after another (none suspends). SQLite: each submit returns once
    committed, so ``SUBMIT_CHUNK`` are kept in flight: as that many concurrent ``submit`` calls,
    or (``batched``) as one ``submit_many`` of that many runs.
    """
    app = taskcast.App(store, max_concurrency=100, max_queue=n + 1)

    @app.task(name="noop")
    async def noop_task() -> None:
        pass

    finished = asyncio.Event()
    count = 0

    def on_events(events: Sequence[taskcast.Event]) -> None:
        nonlocal count
        for event in events:
            if event.type == "completed":
                count += 1
        if count >= n:
            finished.set()

    async with app:
        app.add_listener(on_events)
        started = time.perf_counter()
        if store.startswith("memory"):
            for _ in range(n):  # never suspends: nothing to gain from concurrency
                await app.submit("noop")
        elif batched:
            for offset in range(0, n, SUBMIT_CHUNK):
                await app.submit_many("noop", [{}] * min(SUBMIT_CHUNK, n - offset))
        else:  # each submit waits for its commit: keep many in flight so they share commits
            for offset in range(0, n, SUBMIT_CHUNK):
                size = min(SUBMIT_CHUNK, n - offset)
                await asyncio.gather(*(app.submit("noop") for _ in range(size)))
        await finished.wait()
        elapsed = time.perf_counter() - started
    return n / elapsed


# -- 2. fan-out ----------------------------------------------------------------------------


async def queue_fanout(events: int, watchers: int) -> float:
    queues: list[asyncio.Queue[object]] = [asyncio.Queue() for _ in range(watchers)]

    async def consume(queue: asyncio.Queue[object]) -> int:
        got = 0
        while (await queue.get()) is not None:
            got += 1
        return got

    consumers = [asyncio.create_task(consume(q)) for q in queues]
    await asyncio.sleep(0)
    started = time.perf_counter()
    for i in range(events):
        item = (i, time.perf_counter())
        for queue in queues:
            queue.put_nowait(item)
        await asyncio.sleep(0)
    for queue in queues:
        queue.put_nowait(None)
    counts = await asyncio.gather(*consumers)
    elapsed = time.perf_counter() - started
    assert all(c == events for c in counts)
    return events * watchers / elapsed


async def taskcast_fanout(store: str, events: int, watchers: int) -> float:
    app = taskcast.App(store)
    go = asyncio.Event()

    @app.task(name="emitter")
    async def emitter(ctx: taskcast.Context, n: int) -> None:
        await go.wait()
        for i in range(n):
            await ctx.emit("tick", i)
            await asyncio.sleep(0)

    async def watch(run_id: str, ready: asyncio.Event) -> int:
        got = 0
        async for batch in app.event_batches(run_id):
            for event in batch:
                if event.type == "tick":
                    got += 1
                elif event.type == "started":
                    ready.set()
        return got

    async with app:
        run = await app.submit("emitter", n=events)
        readies = [asyncio.Event() for _ in range(watchers)]
        readers = [asyncio.create_task(watch(run.id, r)) for r in readies]
        for ready in readies:
            await ready.wait()
        started = time.perf_counter()
        go.set()
        counts = await asyncio.gather(*readers)
        elapsed = time.perf_counter() - started
    assert all(c == events for c in counts), set(counts)
    return events * watchers / elapsed


# -- 3. memory -----------------------------------------------------------------------------


async def memory_per_idle_watchers(watchers: int) -> float:
    """KiB per 1,000 idle watchers: readers parked on a run that emits nothing."""
    app = taskcast.App("memory://")
    release = asyncio.Event()
    all_parked = asyncio.Event()
    parked = 0

    @app.task(name="idle")
    async def idle() -> None:
        await release.wait()

    async def watch(run_id: str) -> None:
        nonlocal parked
        async for event in app.events(run_id):
            if event.type == "started":
                parked += 1
                if parked == watchers:
                    all_parked.set()

    async with app:
        run = await app.submit("idle")
        gc.collect()
        before = rss_kib()
        readers = [asyncio.create_task(watch(run.id)) for _ in range(watchers)]
        await all_parked.wait()
        gc.collect()
        after = rss_kib()
        release.set()
        await asyncio.gather(*readers)
    return (after - before) * 1000 / watchers


async def memory_per_finished_runs(runs: int) -> float:
    """KiB per 10,000 finished runs kept by the memory store (3 events each)."""
    app = taskcast.App("memory://", max_queue=runs + 1)
    all_done = asyncio.Event()
    done = 0

    @app.task(name="noop")
    async def noop_task() -> None:
        pass

    def on_events(events: Sequence[taskcast.Event]) -> None:
        nonlocal done
        done += sum(1 for e in events if e.type == "completed")
        if done >= runs:
            all_done.set()

    async with app:
        app.add_listener(on_events)
        gc.collect()
        before = rss_kib()
        for _ in range(runs):
            await app.submit("noop")
        await all_done.wait()
        gc.collect()
        after = rss_kib()
    return (after - before) * 10_000 / runs


def probe_in_fresh_process(kind: str, count: int) -> float:
    """Memory figures in a new interpreter, so earlier steps' freed memory cannot hide growth."""
    output = subprocess.run(
        [sys.executable, __file__, "--memory-probe", kind, "--count", str(count)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    return float(output.strip().splitlines()[-1])


# -- running -------------------------------------------------------------------------------


async def measure(args: argparse.Namespace, workdir: Path, rep: int) -> dict[str, float]:
    def sqlite_url(name: str) -> str:
        return f"sqlite:///{workdir / f'{name}-{rep}.db'}"

    steps: list[tuple[str, Callable[[], Awaitable[float]]]] = [
        ("asyncio_runs_per_s", lambda: asyncio_throughput(args.runs)),
        ("aiojobs_runs_per_s", lambda: aiojobs_throughput(args.runs)),
        ("memory_runs_per_s", lambda: taskcast_throughput("memory://", args.runs)),
        ("sqlite_runs_per_s", lambda: taskcast_throughput(sqlite_url("tp"), args.runs)),
        (
            "sqlite_batched_runs_per_s",
            lambda: taskcast_throughput(sqlite_url("tpb"), args.runs, batched=True),
        ),
        ("queue_fanout_per_s", lambda: queue_fanout(args.events, args.watchers)),
        ("memory_fanout_per_s", lambda: taskcast_fanout("memory://", args.events, args.watchers)),
        (
            "sqlite_fanout_per_s",
            lambda: taskcast_fanout(sqlite_url("fan"), args.events, args.watchers),
        ),
    ]
    memory_steps = [
        ("kib_per_1000_idle_watchers", "watchers", args.watchers * 5),
        ("kib_per_10000_finished_runs", "runs", args.runs),
    ]
    out: dict[str, float] = {}
    for name, step in steps:
        gc.collect()
        out[name] = round(await step(), 1)
        print(f"  {name}: {out[name]:,.1f}", file=sys.stderr, flush=True)
    for name, kind, count in memory_steps:
        out[name] = round(probe_in_fresh_process(kind, count), 1)
        print(f"  {name}: {out[name]:,.1f}", file=sys.stderr, flush=True)
    return out


def table(results: list[dict[str, float]], args: argparse.Namespace) -> str:
    def med(key: str) -> float:
        return statistics.median(r[key] for r in results)

    def span(key: str) -> str:
        values = [r[key] for r in results]
        return f"{min(values):,.0f} to {max(values):,.0f}"

    rows = [
        "| figure | taskcast | baseline | ratio | goal |",
        "|---|---:|---:|---:|---|",
        f"| no-op runs/s, memory store vs aiojobs (limit=None) | {med('memory_runs_per_s'):,.0f}"
        f" ({span('memory_runs_per_s')}) | {med('aiojobs_runs_per_s'):,.0f} |"
        f" {med('memory_runs_per_s') / med('aiojobs_runs_per_s'):.2f} | >= 0.5 |",
        f"| no-op runs/s, memory store vs plain asyncio | {med('memory_runs_per_s'):,.0f} |"
        f" {med('asyncio_runs_per_s'):,.0f} |"
        f" {med('memory_runs_per_s') / med('asyncio_runs_per_s'):.2f} | (ceiling) |",
        f"| no-op runs/s, SQLite store, every event committed, `submit_many` of"
        f" {SUBMIT_CHUNK} | {med('sqlite_batched_runs_per_s'):,.0f}"
        f" ({span('sqlite_batched_runs_per_s')}) | {med('aiojobs_runs_per_s'):,.0f} (aiojobs) |"
        f" {med('sqlite_batched_runs_per_s') / med('aiojobs_runs_per_s'):.2f} |"
        " >= 20,000 runs/s |",
        f"| same, {SUBMIT_CHUNK} concurrent `submit` calls | {med('sqlite_runs_per_s'):,.0f}"
        f" ({span('sqlite_runs_per_s')}) | {med('aiojobs_runs_per_s'):,.0f} (aiojobs) |"
        f" {med('sqlite_runs_per_s') / med('aiojobs_runs_per_s'):.2f} | |",
        f"| fan-out deliveries/s, {args.events:,} events x {args.watchers:,} watchers, memory"
        f" | {med('memory_fanout_per_s'):,.0f} ({span('memory_fanout_per_s')}) |"
        f" {med('queue_fanout_per_s'):,.0f} (asyncio.Queue) |"
        f" {med('memory_fanout_per_s') / med('queue_fanout_per_s'):.2f} | >= 1.0 |",
        f"| fan-out deliveries/s, same, SQLite | {med('sqlite_fanout_per_s'):,.0f} |"
        f" {med('queue_fanout_per_s'):,.0f} (asyncio.Queue) |"
        f" {med('sqlite_fanout_per_s') / med('queue_fanout_per_s'):.2f} | |",
        f"| RSS per 1,000 idle watchers (KiB) | {med('kib_per_1000_idle_watchers'):,.0f} | | | |",
        f"| RSS per 10,000 finished runs, memory store (KiB) |"
        f" {med('kib_per_10000_finished_runs'):,.0f} | | | |",
    ]
    return "\n".join(rows)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--watchers", type=int, default=1_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--memory-probe", choices=["watchers", "runs"], help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_probe == "watchers":
        print(await memory_per_idle_watchers(args.count))
        return
    if args.memory_probe == "runs":
        print(await memory_per_finished_runs(args.count))
        return
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        for rep in range(args.reps):
            print(f"repetition {rep + 1}/{args.reps}", file=sys.stderr, flush=True)
            result = await measure(args, Path(workdir), rep)
            results.append(result)
            print(json.dumps({"bench": "engine", "rep": rep, **result}), flush=True)
    print()
    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} cores, {args.reps} repetitions"
        " (median, and min to max)"
    )
    print(table(results, args))


if __name__ == "__main__":
    asyncio.run(main())
