"""Instructions per run, counted by valgrind: a figure a busy, noisy machine cannot blur.

Seconds on a shared 2-core machine vary by 2-3x from one run to the next; instruction counts do
not (callgrind counts the same total for the same program and inputs whatever else runs). This
counts the instructions of a fixed workload at two sizes and reports the difference per item,
so start-up and imports cancel out:

* ``runs``: N no-op runs submitted (500 at a time) and finished, memory store;
* ``throughput``: N no-op runs as ``bench/engine.py`` measures them: submitted one after another
  (memory store), until a listener has seen the N-th ``completed``;
* ``sqlite``: the same on SQLite, as ``submit_many`` of 500 at a time (instructions of both
  threads: the loop's and the writer's);
* ``children``: one parent that maps N no-op children, memory store;
* ``aiojobs``: the baseline of the first: N no-op jobs through ``aiojobs.Scheduler`` (spawn
  and wait, ``limit=None``), as ``bench/engine.py`` runs them;
* ``taskgroup``: the baseline of the second: N no-op coroutines in an ``asyncio.TaskGroup``.

Run:  .venv/bin/python bench/instructions.py [--n 2000]
      [--workload runs|children|aiojobs|taskgroup]
      (needs valgrind; each measurement takes a minute or two under it)
It prints ``instructions per run`` (or per child). Use it to compare two versions of the code
(e.g. PYTHONPATH=/path/to/other/src), not as an absolute speed.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import taskcast


async def _runs(n: int) -> None:
    app = taskcast.App("memory://", max_queue=n + 1, max_concurrency=100)

    @app.task(name="noop")
    async def noop() -> None:
        pass

    async with app:
        done = 0
        while done < n:
            chunk = min(500, n - done)
            runs = await asyncio.gather(*(app.submit("noop") for _ in range(chunk)))
            for run in runs:
                await app.wait(run.id, timeout=60)
            done += chunk


async def _throughput(n: int, url: str = "memory://") -> None:
    app = taskcast.App(url, max_concurrency=100, max_queue=n + 1)

    @app.task(name="noop")
    async def noop() -> None:
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
        if url.startswith("memory"):
            for _ in range(n):
                await app.submit("noop")
        else:
            for offset in range(0, n, 500):
                await app.submit_many("noop", [{}] * min(500, n - offset))
        await finished.wait()


async def _sqlite(n: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        await _throughput(n, f"sqlite:///{directory}/bench.db")


async def _children(n: int) -> None:
    app = taskcast.App("memory://", max_queue=n + 10, max_concurrency=100)

    @app.task(name="noop")
    async def noop() -> None:
        pass

    @app.task(name="parent")
    async def parent(ctx: taskcast.Context, n: int) -> int:
        return len(await ctx.map("noop", [{} for _ in range(n)]))

    async with app:
        run = await app.submit("parent", n=n)
        assert (await app.wait(run.id, timeout=600)).result == n


async def _aiojobs(n: int) -> None:
    import aiojobs  # the bench extra

    done = 0
    finished = asyncio.Event()

    async def job() -> None:
        nonlocal done
        done += 1
        if done == n:
            finished.set()

    scheduler = aiojobs.Scheduler(limit=None)
    for _ in range(n):
        await scheduler.spawn(job())
    await finished.wait()
    await scheduler.close()


async def _taskgroup(n: int) -> None:
    async def noop() -> None:
        pass

    async with asyncio.TaskGroup() as group:
        for _ in range(n):
            group.create_task(noop())


WORKLOADS = {
    "runs": _runs,
    "throughput": _throughput,
    "sqlite": _sqlite,
    "children": _children,
    "aiojobs": _aiojobs,
    "taskgroup": _taskgroup,
}


def _count(workload: str, n: int) -> int:
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "callgrind.out"
        completed = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                __file__,
                "--inner",
                workload,
                "--n",
                str(n),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    found = re.search(r"Collected : (\d+)", completed.stderr)
    assert found is not None, completed.stderr[-2000:]
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--workload", choices=list(WORKLOADS), default="runs")
    parser.add_argument("--inner", choices=list(WORKLOADS), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.inner:
        asyncio.run(WORKLOADS[options.inner](options.n))
        return
    small = _count(options.workload, options.n)
    large = _count(options.workload, 2 * options.n)
    per_item = (large - small) / options.n
    item = {"children": "child", "aiojobs": "job", "taskgroup": "task"}.get(options.workload, "run")
    print(f"{options.workload}: {per_item:,.0f} instructions per {item} (n={options.n})")


if __name__ == "__main__":
    main()
