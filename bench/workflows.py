"""Workflow benchmark: a fan-out/fan-in of N no-op children, side by side with plain asyncio.

taskcast: one parent run does ``await ctx.map("noop", [{"i": i} ...], concurrency=C)``; each child
is a real run (stored, with its own event log, a ``child`` event in the parent's log), and the
figure counts from the parent's submit to its stored ``completed``.
Baseline: ``asyncio.TaskGroup`` over the same no-op coroutines (with a semaphore of C when a
concurrency is given), in the same process.

Run:  .venv/bin/python bench/workflows.py [--children 10000] [--concurrency 0] [--reps 3]
      [--stores memory,sqlite]
Prints one JSON line per repetition and a markdown table (medians) at the end. ``--concurrency
0`` means no bound (every child queued at once).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import taskcast


async def noop_body(i: int) -> int:
    return i


async def asyncio_fan(n: int, concurrency: int) -> float:
    """Children per second for a TaskGroup of n no-op coroutines (bounded by a semaphore)."""
    started = time.perf_counter()
    results: list[int] = [0] * n
    if concurrency:
        semaphore = asyncio.Semaphore(concurrency)

        async def child(i: int) -> None:
            async with semaphore:
                results[i] = await noop_body(i)
    else:

        async def child(i: int) -> None:
            results[i] = await noop_body(i)

    async with asyncio.TaskGroup() as group:
        for i in range(n):
            group.create_task(child(i))
    elapsed = time.perf_counter() - started
    assert results[-1] == n - 1
    return n / elapsed


async def taskcast_fan(n: int, concurrency: int, store: str) -> float:
    """Children per second for one parent mapping n no-op children."""
    app = taskcast.App(store=store, max_queue=n + 10, max_concurrency=100)

    @app.task(name="noop")
    async def noop(i: int) -> int:
        return await noop_body(i)

    @app.task(name="fan")
    async def fan(ctx: taskcast.Context, n: int, concurrency: int) -> int:
        results = await ctx.map(
            "noop", [{"i": i} for i in range(n)], concurrency=concurrency or None
        )
        return len(results)

    async with app:
        started = time.perf_counter()
        run = await app.submit("fan", n=n, concurrency=concurrency)
        done = await app.wait(run.id)
        elapsed = time.perf_counter() - started
        assert done.state is taskcast.RunState.COMPLETED and done.result == n, done.error
    return n / elapsed


async def one_rep(n: int, concurrency: int, stores: list[str], directory: Path, rep: int) -> dict:
    figures: dict[str, float] = {"asyncio": await asyncio_fan(n, concurrency)}
    for name in stores:
        url = "memory://" if name == "memory" else f"sqlite:///{directory / f'wf{rep}.db'}"
        figures[name] = await taskcast_fan(n, concurrency, url)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--children", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--stores", default="memory,sqlite")
    options = parser.parse_args()
    stores = [s for s in options.stores.split(",") if s]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as directory:
        for rep in range(options.reps):
            figures = asyncio.run(
                one_rep(options.children, options.concurrency, stores, Path(directory), rep)
            )
            rows.append(figures)
            print(json.dumps({"rep": rep, **{k: round(v) for k, v in figures.items()}}))
    baseline = statistics.median(r["asyncio"] for r in rows)
    bound = options.concurrency or "none"
    print()
    print(f"fan-out/fan-in of {options.children:,} no-op children, concurrency {bound}")
    print("| children/s | median (min to max) | vs asyncio.TaskGroup |")
    print("|---|---:|---:|")
    for name in ["asyncio", *stores]:
        values = [r[name] for r in rows]
        label = "asyncio.TaskGroup" if name == "asyncio" else f"taskcast ctx.map, {name} store"
        print(
            f"| {label} | {statistics.median(values):,.0f} ({min(values):,.0f} to"
            f" {max(values):,.0f}) | {statistics.median(values) / baseline:.3f} |"
        )


if __name__ == "__main__":
    main()
