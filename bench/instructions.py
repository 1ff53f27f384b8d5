"""Instructions per run, counted by valgrind: a figure a busy, noisy machine cannot blur.

Seconds on a shared 2-core machine vary by 2-3x from one run to the next; instruction counts do
not (callgrind counts the same total for the same program and inputs whatever else runs). This
counts the instructions of a fixed workload at two sizes and reports the difference per item,
so start-up and imports cancel out:

* ``runs``: N no-op runs submitted (500 at a time) and finished, memory store;
* ``children``: one parent that maps N no-op children, memory store.

Run:  .venv/bin/python bench/instructions.py [--n 2000] [--workload runs|children]
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
    parser.add_argument("--workload", choices=["runs", "children"], default="runs")
    parser.add_argument("--inner", choices=["runs", "children"], help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.inner:
        work = _runs if options.inner == "runs" else _children
        asyncio.run(work(options.n))
        return
    small = _count(options.workload, options.n)
    large = _count(options.workload, 2 * options.n)
    per_item = (large - small) / options.n
    item = "run" if options.workload == "runs" else "child"
    print(f"{options.workload}: {per_item:,.0f} instructions per {item} (n={options.n})")


if __name__ == "__main__":
    main()
