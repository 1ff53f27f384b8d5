"""A fan-out of N children over 2 workers on Redis: taskcast against Celery's group and chord on
the same Redis, and against taskcast's own SQLite figure, side by side in one run.

For each repetition (Redis FLUSHALLed before each measurement):

1. **taskcast on Redis**: 2 ``taskcast worker`` processes (``--concurrency 100`` each); an API
   node in this process submits one parent run, which does ``await ctx.map("noop", [...])`` over
   N children (each a stored run with its log, queued in Redis and taken by either worker);
   timed from the parent's submit until its ``completed`` event reaches this process.
2. **Celery group**: 2 ``celery worker`` processes on the same Redis (broker on db 0, result
   backend on db 1); this process sends ``group(noop.s(i) for i in range(N))`` and waits for
   every result (``GroupResult.get``, the backend's native join); timed from the send.
3. **Celery chord**: the same group with a callback that sums the results
   (``chord(header)(total.s())``; the Redis backend counts finished parts itself); timed from
   the send until the callback's result is in.
4. **taskcast on SQLite**: the same parent and children in one process (``bench/workflows.py``).

Celery's workers use the pool that ran this no-op fan-out fastest here (``--pool`` and
``--concurrency`` below, with ``--prefetch-multiplier``); every other option is Celery's default.

Run:  .venv/bin/python bench/redis_workflows.py [--children 10000] [--reps 3]
(needs ``pip install -e '.[bench]'``: celery[redis]; starts its own redis-server on a free port,
and stops every process it starts by pid). Prints one JSON line per measurement and a markdown
table of medians at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import taskcast

REPO = Path(__file__).resolve().parents[1]
CONCURRENCY = 100
CELERY_POOL = ("--pool", "threads", "--concurrency", "16", "--prefetch-multiplier", "16")

app = taskcast.App("memory://", max_concurrency=CONCURRENCY, max_queue=1_000_000, grace=0.0)


@app.task(name="noop")
async def noop(i: int) -> int:
    """The child every system runs."""
    return i


@app.task(name="fan")
async def fan(ctx: taskcast.Context, n: int) -> int:
    """The parent: N children, their results summed."""
    return sum(await ctx.map("noop", [{"i": i} for i in range(n)]))


_celery_apps: dict[str, Any] = {}


def celery_app() -> Any:
    """Celery on the bench's Redis (``BENCH_REDIS_PORT``), with the same two tasks (one app per
    port: Celery refuses a task name registered twice)."""
    from celery import Celery

    made = _celery_apps.get(os.environ["BENCH_REDIS_PORT"])
    if made is not None:
        return made

    port = os.environ["BENCH_REDIS_PORT"]
    celery = Celery(
        "bench", broker=f"redis://127.0.0.1:{port}/0", backend=f"redis://127.0.0.1:{port}/1"
    )
    celery.conf.update(worker_hijack_root_logger=False, broker_connection_retry_on_startup=True)

    @celery.task(name="noop")
    def celery_noop(i: int) -> int:
        return i

    @celery.task(name="total")
    def celery_total(results: list[int]) -> int:
        return sum(results)

    _celery_apps[port] = celery
    return celery


#: The Celery app of ``celery -A bench.redis_workflows:celery worker`` (made in that process).
celery = celery_app() if "BENCH_REDIS_PORT" in os.environ else None


# -- processes --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start(command: list[str], ready: str, log: Path, env: dict[str, str] | None = None) -> Any:
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env or None
        )
    deadline = time.monotonic() + 60
    while ready not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(process)
            raise RuntimeError(f"{command} did not start:\n{log.read_text()}")
        time.sleep(0.02)  # polling a subprocess's log for its start, bounded by the deadline
    return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


async def _flush(port: int) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}")
    try:
        await client.flushall()
    finally:
        await client.aclose()


# -- the measurements -------------------------------------------------------------------------


async def taskcast_on_redis(port: int, n: int, workdir: Path) -> float:
    url = f"redis://127.0.0.1:{port}/0"
    command = [sys.executable, "-m", "taskcast", "worker", "--store", url, "--no-demo"]
    command += ["--app", "bench.redis_workflows:app", "--concurrency", str(CONCURRENCY)]
    command += ["--log-level", "warning"]
    workers = [_start(command, "ready", workdir / f"taskcast-{i}.log") for i in range(2)]
    try:
        api = taskcast.App(url, worker=False)
        api.tasks.update(app.tasks)
        async with api:
            began = time.perf_counter()
            run = await api.submit("fan", n=n)
            done = await api.wait(run.id, timeout=600)
            elapsed = time.perf_counter() - began
        assert done.state is taskcast.RunState.COMPLETED, done.error
        assert done.result == n * (n - 1) // 2
        return elapsed
    finally:
        for worker in workers:
            _stop(worker)


def celery_fan(port: int, n: int, workdir: Path, kind: str) -> float:
    env = {**os.environ, "BENCH_REDIS_PORT": str(port), "PYTHONUNBUFFERED": "1"}
    os.environ["BENCH_REDIS_PORT"] = str(port)
    command = [sys.executable, "-m", "celery", "-A", "bench.redis_workflows:celery"]
    command += ["worker", *CELERY_POOL, "--loglevel", "info"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    workers = [
        _start([*command, "-n", f"w{i}@bench"], "ready.", workdir / f"celery-{i}.log", env)
        for i in range(2)
    ]
    try:
        from celery import chord, group

        client = celery_app()
        noop_task, total_task = client.tasks["noop"], client.tasks["total"]
        header = group(noop_task.s(i) for i in range(n))
        began = time.perf_counter()
        if kind == "group":
            results = header.apply_async().get(timeout=600)
            value = sum(results)
        else:
            value = chord(header)(total_task.s()).get(timeout=600)
        elapsed = time.perf_counter() - began
        assert value == n * (n - 1) // 2, value
        return elapsed
    finally:
        for worker in workers:
            _stop(worker)


async def taskcast_on_sqlite(n: int, workdir: Path, rep: int) -> float:
    sys.path.insert(0, str(REPO / "bench"))
    from workflows import taskcast_fan  # bench/workflows.py: the same fan-out in one process

    return n / await taskcast_fan(n, 0, f"sqlite:///{workdir / f'fan{rep}.db'}")


async def main(options: argparse.Namespace) -> None:
    port = _free_port()
    n = options.children
    systems = ("taskcast redis", "celery group", "celery chord", "taskcast sqlite")
    seconds: dict[str, list[float]] = {system: [] for system in systems}
    with tempfile.TemporaryDirectory(prefix="taskcast-bench-") as directory:
        workdir = Path(directory)
        command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", directory]
        server = _start(command, "Ready to accept connections", workdir / "redis.log")
        try:
            for rep in range(options.reps):
                for system in systems:
                    await _flush(port)
                    if system == "taskcast redis":
                        elapsed = await taskcast_on_redis(port, n, workdir)
                    elif system == "taskcast sqlite":
                        elapsed = await taskcast_on_sqlite(n, workdir, rep)
                    else:
                        kind = system.split()[1]
                        elapsed = await asyncio.to_thread(celery_fan, port, n, workdir, kind)
                    seconds[system].append(elapsed)
                    print(
                        json.dumps(
                            {
                                "rep": rep,
                                "system": system,
                                "seconds": round(elapsed, 3),
                                "children_per_s": round(n / elapsed),
                            }
                        )
                    )
        finally:
            _stop(server)
    group_median = statistics.median(n / s for s in seconds["celery group"])
    print()
    print(f"fan-out of {n:,} no-op children, {options.reps} reps; 2 workers on Redis")
    print("| system | children/s (median, min to max) | parent end to end, s | vs Celery group |")
    print("|---|---:|---:|---:|")
    for system in systems:
        rates = [n / s for s in seconds[system]]
        print(
            f"| {system} | {statistics.median(rates):,.0f} ({min(rates):,.0f} to"
            f" {max(rates):,.0f}) | {statistics.median(seconds[system]):.2f} |"
            f" {statistics.median(rates) / group_median:.2f} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--children", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=3)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(main(parser.parse_args()))
