"""Durable steps benchmark: what a ``ctx.step`` costs, and steps per second beside DBOS Transact.

1. The cost of a step over a plain await: one run whose body awaits a no-op coroutine N times,
   against one whose body wraps the same call in ``ctx.step`` (each result recorded durably in
   the run's log as a ``step`` event), on the memory store and on SQLite. Reported in
   microseconds per step: (time with steps - time with plain awaits) / N.
2. Steps per second beside DBOS Transact on SQLite: the same workflow of 1,000 no-op async
   steps, timed from the submit to the result. taskcast on its default SQLite settings (WAL,
   ``synchronous=NORMAL``: a crash of the process loses nothing, a power cut may lose the last
   commits) and with ``?synchronous=full`` (a power cut loses nothing either); DBOS on its
   default SQLite settings (rollback journal, ``synchronous=FULL``) and on an engine set to WAL
   and ``synchronous=NORMAL`` like taskcast's default. DBOS runs in a process of its own per
   setting (it is launched once per process).

Run:  .venv/bin/python bench/steps.py [--steps 1000] [--overhead-steps 10000] [--reps 5]
Needs ``pip install -e '.[bench]'`` (dbos). Prints one JSON line per measure and a markdown table
(medians) at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import taskcast


async def noop() -> None:
    return None


async def taskcast_run(store: str, n: int, durable: bool) -> float:
    """Seconds from the submit of one run of ``n`` no-op calls (steps or plain awaits) to its
    result, on ``store`` (a fresh App)."""
    app = taskcast.App(store)

    @app.task(name="work")
    async def work(ctx: taskcast.Context, n: int, durable: bool) -> int:
        if durable:
            for _ in range(n):
                await ctx.step("noop", noop)
        else:
            for _ in range(n):
                await noop()
        return n

    async with app:
        # One warm-up run, so that the figures exclude opening the store.
        await app.wait((await app.submit("work", n=10, durable=durable)).id, timeout=60)
        started = time.perf_counter()
        run = await app.wait((await app.submit("work", n=n, durable=durable)).id, timeout=600)
        elapsed = time.perf_counter() - started
    assert run.result == n, run
    return elapsed


def dbos_child(setting: str, n: int, reps: int) -> None:
    """In a process of its own: DBOS on SQLite (``setting``: ``default`` or ``wal``), ``reps``
    workflows of ``n`` no-op steps; prints their steps/s as one JSON line."""
    import sqlalchemy as sa
    from dbos import DBOS, DBOSConfig

    folder = tempfile.mkdtemp(prefix="dbos-bench-")
    url = f"sqlite:///{folder}/dbos.sqlite"
    config: DBOSConfig = {"name": "bench", "system_database_url": url, "log_level": "WARNING"}
    if setting == "wal":
        engine = sa.create_engine(url)

        @sa.event.listens_for(engine, "connect")
        def pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        config["system_database_engine"] = engine
    DBOS(config=config)

    @DBOS.step()
    async def noop_step() -> None:
        return None

    @DBOS.workflow()
    async def workflow(n: int) -> int:
        for _ in range(n):
            await noop_step()
        return n

    async def measure() -> list[float]:
        DBOS.launch()
        try:
            handle = await DBOS.start_workflow_async(workflow, 10)  # warm-up
            await handle.get_result()
            rates = []
            for _ in range(reps):
                started = time.perf_counter()
                handle = await DBOS.start_workflow_async(workflow, n)
                assert await handle.get_result() == n
                rates.append(n / (time.perf_counter() - started))
            return rates
        finally:
            DBOS.destroy()

    print(json.dumps({"dbos": setting, "steps_per_s": asyncio.run(measure())}))


def dbos_rates(setting: str, n: int, reps: int) -> list[float]:
    done = subprocess.run(
        [sys.executable, __file__, "--dbos-child", setting, "--steps", str(n), "--reps", str(reps)],
        capture_output=True,
        text=True,
        timeout=3600,
        check=True,
    )
    line = [text for text in done.stdout.splitlines() if text.startswith("{")][-1]
    rates: list[float] = json.loads(line)["steps_per_s"]
    return rates


async def main(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="taskcast-steps-bench-"))
    table: list[tuple[str, str]] = []

    # 1. The cost of a step over a plain await.
    n = args.overhead_steps
    for label, make_url in (
        ("memory", lambda rep: "memory://"),
        ("sqlite", lambda rep: f"sqlite:///{folder / f'overhead-{rep}.db'}"),
    ):
        costs = []
        for rep in range(args.reps):
            plain = await taskcast_run(make_url(f"plain-{rep}"), n, durable=False)
            steps = await taskcast_run(make_url(f"steps-{rep}"), n, durable=True)
            cost = (steps - plain) / n * 1e6
            costs.append(cost)
            figures = {"plain_s": plain, "step_s": steps, "us_per_step": cost}
            print(json.dumps({"store": label, "steps": n, **figures}))
        spread = f"{statistics.median(costs):.1f} us ({min(costs):.1f} to {max(costs):.1f})"
        table.append((f"cost of a step over a plain await, {label}", spread))

    # 2. Steps per second beside DBOS Transact on SQLite.
    n = args.steps
    ours: dict[str, list[float]] = {}
    for label, options in (
        ("taskcast sqlite (default: WAL, synchronous=normal)", ""),
        ("taskcast sqlite ?synchronous=full", "?synchronous=full"),
    ):
        rates = []
        for rep in range(args.reps):
            url = f"sqlite:///{folder / f'rate-{len(ours)}-{rep}.db'}{options}"
            rates.append(n / await taskcast_run(url, n, durable=True))
        ours[label] = rates
        print(json.dumps({"taskcast": label, "steps_per_s": rates}))
    theirs: dict[str, list[float]] = {}
    for setting, label in (
        ("default", "DBOS sqlite (default: rollback journal, synchronous=full)"),
        ("wal", "DBOS sqlite engine set to WAL, synchronous=normal"),
    ):
        theirs[label] = dbos_rates(setting, n, args.reps)
        print(json.dumps({"dbos": label, "steps_per_s": theirs[label]}))
    for label, rates in (*ours.items(), *theirs.items()):
        spread = f"{statistics.median(rates):,.0f} ({min(rates):,.0f} to {max(rates):,.0f})"
        table.append((f"{label}: steps/s ({n} no-op steps)", spread))
    default_ours = statistics.median(next(iter(ours.values())))
    full_ours = statistics.median(list(ours.values())[1])
    default_dbos = statistics.median(next(iter(theirs.values())))
    wal_dbos = statistics.median(list(theirs.values())[1])
    table.append(("ratio, both on their defaults", f"{default_ours / default_dbos:.1f}x"))
    table.append(("ratio, both WAL + synchronous=normal", f"{default_ours / wal_dbos:.1f}x"))
    table.append(("ratio, both synchronous=full", f"{full_ours / default_dbos:.1f}x"))
    print()
    print("| measure | median (min to max) |")
    print("|---|---|")
    for label, value in table:
        print(f"| {label} | {value} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--overhead-steps", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--dbos-child", choices=["default", "wal"])
    arguments = parser.parse_args()
    if arguments.dbos_child:
        dbos_child(arguments.dbos_child, arguments.steps, arguments.reps)
    else:
        asyncio.run(main(arguments))
