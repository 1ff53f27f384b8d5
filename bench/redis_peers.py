"""taskcast on Redis against arq and SAQ on the same Redis, side by side in one run.

For each system and each repetition (Redis FLUSHALLed before each):

1. **throughput, end to end**: this process submits N no-op jobs (up to 100 in flight) while 2
   worker processes (concurrency 100 each) run them; timed from the first submit until the last
   job is finished (taskcast: its `completed` event reached this process through the store;
   arq/SAQ: their after-job hooks count finished jobs, and each worker adds its count to a Redis
   counter every 2 ms, which this process polls every 2 ms).
2. **pickup latency** (taskcast): P runs submitted one at a time, each after the previous one
   finished; pickup = `started_at - created_at` of each run (the time from the submit to the
   worker's `started` write).

Run:  .venv/bin/python bench/redis_peers.py [--n 10000] [--reps 3] [--pickups 500]
(needs `pip install -e '.[bench]'`: arq and saq; starts its own redis-server on a free port).
Prints one JSON line per measurement and a markdown table of medians at the end.
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
COUNTER = "bench:done"
IN_FLIGHT = 100
CONCURRENCY = 100

app = taskcast.App("memory://", max_concurrency=CONCURRENCY, grace=0.0)


@app.task(name="noop")
async def noop() -> None:
    """The job every system runs."""


# -- the peers' workers (run as `python bench/redis_peers.py worker arq|saq --port P`) -------


async def _flush_count(url: str, counted: list[int], stop: asyncio.Event) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        sent = 0
        while not stop.is_set():
            delta = counted[0] - sent
            if delta:
                await client.incrby(COUNTER, delta)
                sent += delta
            await asyncio.sleep(0.002)
    finally:
        await client.aclose()


async def arq_worker(port: int) -> None:
    from arq.connections import RedisSettings
    from arq.worker import Worker, func

    counted = [0]
    stop = asyncio.Event()

    async def job(ctx: dict[str, Any]) -> None:
        return None

    async def after_job_end(ctx: dict[str, Any]) -> None:
        counted[0] += 1

    worker = Worker(
        functions=[func(job, name="noop")],
        redis_settings=RedisSettings(host="127.0.0.1", port=port),
        max_jobs=CONCURRENCY,
        poll_delay=0.01,  # the short poll delay of ../shared/bench-peers (default 0.5 s)
        handle_signals=False,
        after_job_end=after_job_end,
        keep_result=60,
    )
    await _serve_peer(port, worker.async_run(), worker.close, counted, stop)


async def saq_worker(port: int) -> None:
    from saq import Queue, Worker

    counted = [0]
    stop = asyncio.Event()
    queue = Queue.from_url(f"redis://127.0.0.1:{port}")

    async def job(ctx: dict[str, Any]) -> None:
        return None

    job.__name__ = "noop"

    async def after_process(ctx: dict[str, Any]) -> None:
        counted[0] += 1

    worker = Worker(queue, functions=[job], concurrency=CONCURRENCY, after_process=[after_process])
    await _serve_peer(port, worker.start(), worker.stop, counted, stop)


async def _serve_peer(port: int, run: Any, close: Any, counted: list[int], stop: Any) -> None:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    async with asyncio.TaskGroup() as group:
        runner = group.create_task(run)
        flusher = group.create_task(_flush_count(f"redis://127.0.0.1:{port}", counted, stop))
        print("ready", flush=True)
        await done.wait()
        stop.set()
        await flusher
        runner.cancel()
        await close()


# -- the orchestration -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start(command: list[str], ready: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    deadline = time.monotonic() + 30
    while ready not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{command} did not start:\n{log.read_text()}")
        time.sleep(0.02)
    return process


def _taskcast_worker(url: str, log: Path, loop: str = "asyncio") -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "taskcast", "worker", "--store", url, "--loop", loop]
    command += ["--app", "bench.redis_peers:app", "--no-demo", "--concurrency", str(CONCURRENCY)]
    return _start([*command, "--log-level", "warning"], "ready", log)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
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


async def _submit_all(n: int, submit: Any) -> None:
    limit = asyncio.Semaphore(IN_FLIGHT)

    async def one() -> None:
        async with limit:
            await submit()

    await asyncio.gather(*(one() for _ in range(n)))


async def _wait_counter(port: int, n: int) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}")
    try:
        # Polling the peers' finished-job counter (in Redis: nothing to wait on here).
        while int(await client.get(COUNTER) or 0) < n:  # noqa: ASYNC110
            await asyncio.sleep(0.002)
    finally:
        await client.aclose()


async def taskcast_throughput(port: int, n: int, workdir: Path, loop: str = "asyncio") -> float:
    url = f"redis://127.0.0.1:{port}/0"
    workers = [_taskcast_worker(url, workdir / f"taskcast-worker-{i}.log", loop) for i in range(2)]
    try:
        api = taskcast.App(url, worker=False, max_queue=10 * n)
        api.task(name="noop")(noop)
        finished = asyncio.Event()
        count = 0

        def on_events(events: Any) -> None:
            nonlocal count
            for event in events:
                if event.type == "completed":
                    count += 1
                    if count == n:
                        finished.set()

        async with api:
            api.add_listener(on_events)
            began = time.perf_counter()
            await _submit_all(n, lambda: api.submit("noop"))
            async with asyncio.timeout(300):
                await finished.wait()
            return n / (time.perf_counter() - began)
    finally:
        for worker in workers:
            _stop(worker)


async def taskcast_pickups(
    port: int, runs: int, workdir: Path, loop: str = "asyncio"
) -> list[float]:
    url = f"redis://127.0.0.1:{port}/0"
    workers = [_taskcast_worker(url, workdir / f"taskcast-pickup-{i}.log", loop) for i in range(2)]
    try:
        api = taskcast.App(url, worker=False)
        api.task(name="noop")(noop)
        pickups = []
        async with api:
            for _ in range(runs):
                run = await api.submit("noop")
                done = await api.wait(run.id, timeout=30)
                assert done.started_at is not None
                pickups.append((done.started_at - done.created_at) * 1000)
        return pickups
    finally:
        for worker in workers:
            _stop(worker)


async def peer_throughput(system: str, port: int, n: int, workdir: Path) -> float:
    command = [sys.executable, str(Path(__file__)), "worker", system, "--port", str(port)]
    workers = [_start(command, "ready", workdir / f"{system}-worker-{i}.log") for i in range(2)]
    try:
        if system == "arq":
            from arq import create_pool
            from arq.connections import RedisSettings

            pool = await create_pool(RedisSettings(host="127.0.0.1", port=port))
            try:
                began = time.perf_counter()
                await _submit_all(n, lambda: pool.enqueue_job("noop"))
                await asyncio.wait_for(_wait_counter(port, n), 300)
                return n / (time.perf_counter() - began)
            finally:
                await pool.aclose()
        from saq import Queue

        queue = Queue.from_url(f"redis://127.0.0.1:{port}")
        await queue.connect()
        try:
            began = time.perf_counter()
            await _submit_all(n, lambda: queue.enqueue("noop"))
            await asyncio.wait_for(_wait_counter(port, n), 300)
            return n / (time.perf_counter() - began)
        finally:
            await queue.disconnect()
    finally:
        for worker in workers:
            _stop(worker)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(options: argparse.Namespace) -> None:
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="taskcast-bench-") as directory:
        workdir = Path(directory)
        command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", directory]
        server = _start(command, "Ready to accept connections", workdir / "redis.log")
        loops = options.loops.split(",")
        taskcasts = [f"taskcast ({loop} workers)" for loop in loops]
        results: dict[str, list[float]] = {name: [] for name in (*taskcasts, "arq", "saq")}
        p50s: dict[str, list[float]] = {loop: [] for loop in loops}
        p99s: dict[str, list[float]] = {loop: [] for loop in loops}
        try:
            for rep in range(options.reps):
                for system in results:
                    await _flush(port)
                    if system in taskcasts:
                        loop = loops[taskcasts.index(system)]
                        rate = await taskcast_throughput(port, options.n, workdir, loop)
                    else:
                        rate = await peer_throughput(system, port, options.n, workdir)
                    results[system].append(rate)
                    print(json.dumps({"rep": rep, "system": system, "jobs_per_s": round(rate)}))
                for loop in loops:
                    await _flush(port)
                    pickups = await taskcast_pickups(port, options.pickups, workdir, loop)
                    p50s[loop].append(_percentile(pickups, 0.5))
                    p99s[loop].append(_percentile(pickups, 0.99))
                    print(
                        json.dumps(
                            {
                                "rep": rep,
                                "loop": loop,
                                "pickup_ms_p50": p50s[loop][-1],
                                "pickup_ms_p99": p99s[loop][-1],
                            }
                        )
                    )
        finally:
            _stop(server)
    saq = statistics.median(results["saq"])
    print()
    print(f"N={options.n}, {options.reps} reps, 2 worker processes x concurrency {CONCURRENCY}")
    print("| system | no-op jobs/s end to end (median, min to max) | vs SAQ |")
    print("|---|---:|---:|")
    for system, rates in results.items():
        print(
            f"| {system} | {statistics.median(rates):,.0f} ({min(rates):,.0f} to"
            f" {max(rates):,.0f}) | {statistics.median(rates) / saq:.2f} |"
        )
    for name in taskcasts:
        ratios = [a / b for a, b in zip(results[name], results["saq"], strict=True)]
        print(f"| {name} / SAQ per repetition | {', '.join(f'{r:.2f}' for r in ratios)} | |")
    for loop in loops:
        print(
            f"| taskcast pickup latency ({loop} workers) | p50 {statistics.median(p50s[loop]):.2f}"
            f" ms, p99 {statistics.median(p99s[loop]):.2f} ms (median over reps) | |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode")
    peer = sub.add_parser("worker", help="(internal) run a peer's worker")
    peer.add_argument("system", choices=["arq", "saq"])
    peer.add_argument("--port", type=int, required=True)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--pickups", type=int, default=500)
    parser.add_argument(
        "--loops",
        default="asyncio",
        help="the taskcast workers' --loop, comma-separated to measure each (asyncio,uvloop)",
    )
    options = parser.parse_args()
    if options.mode == "worker":
        asyncio.run(
            arq_worker(options.port) if options.system == "arq" else saq_worker(options.port)
        )
    else:
        os.environ.setdefault("PYTHONUNBUFFERED", "1")
        asyncio.run(main(options))
