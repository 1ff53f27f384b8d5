"""Prometheus: queue wait and run duration histograms and the events counter, per task."""

from __future__ import annotations

import taskcast
from taskcast.server.metrics import Metrics

from ..conftest import redis_url_for
from ..redis_server import RedisServer


def sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split(" ")[1])
    raise AssertionError(f"no sample {name} in:\n{text}")


def make_app(store: str = "memory://", **options: object) -> taskcast.App:
    app = taskcast.App(store, **options)  # type: ignore[arg-type]

    @app.task
    async def fast(ctx: taskcast.Context) -> int:
        await ctx.emit("note")
        return 1

    @app.task
    async def broken() -> None:
        raise ValueError("no")

    return app


async def test_durations_waits_and_events_are_counted_per_task() -> None:
    async with make_app() as app:
        metrics = Metrics(app)
        metrics.attach()
        for task in ("fast", "fast", "broken"):
            await app.wait((await app.submit(task)).id, timeout=30)
        text = (await metrics.render()).decode()
    count = 'taskcast_run_duration_seconds_count{{state="{}",task="{}"}}'
    assert sample(text, count.format("completed", "fast")) == 2
    assert sample(text, count.format("failed", "broken")) == 1
    assert sample(text, 'taskcast_queue_wait_seconds_count{task="fast"}') == 2
    # fast: queued, started, note, completed; broken: queued, started, failed.
    assert sample(text, 'taskcast_events_total{task="fast"}') == 8
    assert sample(text, 'taskcast_events_total{task="broken"}') == 3


async def test_a_redis_worker_labels_the_runs_it_executes_by_task(
    redis_server: RedisServer,
) -> None:
    url = redis_url_for(redis_server, visibility_timeout=3)
    async with make_app(url, worker=False) as api_node, make_app(url) as worker:
        metrics = Metrics(worker)
        metrics.attach()
        run = await api_node.submit("fast")
        await worker.wait(run.id, timeout=30)
        text = (await metrics.render()).decode()
    assert sample(text, 'taskcast_run_duration_seconds_count{state="completed",task="fast"}') == 1
    assert sample(text, 'taskcast_queue_wait_seconds_count{task="fast"}') == 1
