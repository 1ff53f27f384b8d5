"""Concurrency limits, the bounded queue, fairness, and signals."""

from __future__ import annotations

import asyncio

import pytest

import taskcast

from ..conftest import redis_url_for
from ..redis_server import RedisServer
from .conftest import Gate, collect, types, wait_for_event


async def _assert_queued(app: taskcast.App, count: int) -> None:
    """``count`` runs wait: in this process's queue, or in a shared store's (where a worker
    takes only what it can start)."""
    if app.shared:
        counts = await app.count_runs()
        assert sum(n for (_, state), n in counts.items() if state == "queued") == count
    else:
        assert app.stats()["queued"] == count


async def test_the_per_task_concurrency_limit_is_never_exceeded(app: taskcast.App) -> None:
    running = 0
    peak = 0
    three_running = asyncio.Event()
    release = asyncio.Event()

    @app.task(name="limited", concurrency=3)
    async def limited() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if running == 3:
            three_running.set()
        await release.wait()
        running -= 1

    runs = [await app.submit("limited") for _ in range(40)]
    await three_running.wait()
    assert app.stats()["running"] == 3
    await _assert_queued(app, 37)
    release.set()
    for run in runs:
        await app.wait(run.id, timeout=5)
    assert peak == 3


async def test_the_global_concurrency_limit_is_never_exceeded(make_app: object) -> None:
    app: taskcast.App = make_app(max_concurrency=4)  # type: ignore[operator]
    running = 0
    peak = 0
    four_running = asyncio.Event()
    release = asyncio.Event()

    async def body() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if running == 4:
            four_running.set()
        await release.wait()
        running -= 1

    app.task(name="a")(body)
    app.task(name="b")(body)
    async with app:
        runs = [await app.submit("a" if i % 2 else "b") for i in range(40)]
        await four_running.wait()
        assert app.stats()["running"] == 4
        await _assert_queued(app, 36)
        release.set()
        for run in runs:
            await app.wait(run.id, timeout=5)
    assert peak == 4


async def test_a_full_queue_refuses_with_queue_full_and_writes_nothing(make_app: object) -> None:
    app: taskcast.App = make_app(max_concurrency=1, max_queue=3)  # type: ignore[operator]
    gate = Gate()

    @app.task(name="block")
    async def block() -> None:
        await gate()

    async with app:
        first = await app.submit("block")
        await gate.reached.wait()  # running: no longer counts as queued
        queued = [await app.submit("block") for _ in range(3)]
        with pytest.raises(taskcast.QueueFull) as caught:
            await app.submit("block")
        assert caught.value.retry_after > 0
        assert "queue is full" in str(caught.value)
        assert len(await app.runs()) == 4
        gate.opened.set()
        for run in [first, *queued]:
            await app.wait(run.id, timeout=5)
        await app.submit("block")  # room again


async def test_waiting_runs_start_in_submit_order(make_app: object) -> None:
    app: taskcast.App = make_app(max_concurrency=1)  # type: ignore[operator]
    order: list[int] = []

    @app.task(name="job")
    async def job(i: int) -> None:
        order.append(i)
        await asyncio.sleep(0)

    async with app:
        runs = [await app.submit("job", i=i) for i in range(20)]
        for run in runs:
            await app.wait(run.id, timeout=5)
    assert order == list(range(20))


async def test_a_task_at_its_limit_does_not_block_other_tasks(make_app: object) -> None:
    app: taskcast.App = make_app(max_concurrency=10)  # type: ignore[operator]
    gate = Gate()

    @app.task(name="single", concurrency=1)
    async def single() -> None:
        await gate()

    @app.task(name="other")
    async def other() -> str:
        return "ran"

    async with app:
        await app.submit("single")
        await app.submit("single")  # waits for the first
        await gate.reached.wait()
        other_run = await app.wait((await app.submit("other")).id, timeout=5)
        assert other_run.result == "ran"
        gate.opened.set()


async def test_a_signal_is_delivered_to_the_waiting_task(app: taskcast.App) -> None:
    @app.task(name="approve")
    async def approve(ctx: taskcast.Context) -> object:
        return await ctx.signal("continue")

    run = await app.submit("approve")
    await wait_for_event(app, run.id, "started")
    await app.signal(run.id, "continue", {"approved_by": "ana"})
    done = await app.wait(run.id, timeout=5)
    assert done.result == {"approved_by": "ana"}
    events = await collect(app, run.id)
    assert "signal" in types(events)
    assert next(e for e in events if e.type == "signal").data == {
        "name": "continue",
        "data": {"approved_by": "ana"},
    }


async def test_a_signal_sent_before_the_task_waits_is_kept(make_app: object) -> None:
    app: taskcast.App = make_app(max_concurrency=1)  # type: ignore[operator]
    gate = Gate()

    @app.task(name="block")
    async def block() -> None:
        await gate()

    @app.task(name="approve")
    async def approve(ctx: taskcast.Context) -> list[object]:
        return [await ctx.signal("go"), await ctx.signal("go")]

    async with app:
        await app.submit("block")
        await gate.reached.wait()
        run = await app.submit("approve")  # queued behind `block`
        await app.signal(run.id, "go", 1)
        await app.signal(run.id, "go", 2)
        gate.opened.set()
        assert (await app.wait(run.id, timeout=5)).result == [1, 2]


async def test_a_signal_sent_as_soon_as_the_run_is_submitted_reaches_it(
    app: taskcast.App,
) -> None:
    # On a shared store the signal races the worker taking the run: it must be handed over
    # whichever comes first (one in a few dozen was lost before the consumer read every
    # claimed run's log).
    @app.task(name="listen")
    async def listen(ctx: taskcast.Context) -> object:
        return await ctx.signal("go", timeout=10)

    for index in range(100):
        run = await app.submit("listen")
        await app.signal(run.id, "go", index)
        assert (await app.wait(run.id, timeout=20)).result == index


async def test_signal_errors_name_the_problem(app: taskcast.App) -> None:
    @app.task(name="noop")
    async def noop() -> None: ...

    with pytest.raises(taskcast.RunNotFound):
        await app.signal("nope", "go")
    run = await app.wait((await app.submit("noop")).id, timeout=5)
    with pytest.raises(taskcast.RunFinished, match="already finished"):
        await app.signal(run.id, "go")


async def test_waiting_for_a_signal_times_out(app: taskcast.App) -> None:
    @app.task(name="impatient")
    async def impatient(ctx: taskcast.Context) -> str:
        try:
            await ctx.signal("never", timeout=0.01)
        except TimeoutError:
            return "gave up"
        return "got it"

    assert (await app.wait((await app.submit("impatient")).id, timeout=5)).result == "gave up"


@pytest.fixture
def local_app(store_url: str) -> taskcast.App:
    """An App holding at most 150 pending signals per run: counted by its process (memory,
    SQLite), or by the shared store, whichever node sends them (Redis)."""
    return taskcast.App(store_url, grace=0.0, shutdown_timeout=2.0, max_pending_signals=150)


def _gated_signal_taker(app: taskcast.App, gate: Gate) -> None:
    @app.task(name="takes_later")
    async def takes_later(ctx: taskcast.Context, names: list[str]) -> dict[str, int]:
        await gate()  # signals pile up until the test opens the gate
        taken: dict[str, int] = {}
        for name in names:
            while True:
                try:
                    await ctx.signal(name, timeout=0.01)
                except TimeoutError:
                    break
                taken[name] = taken.get(name, 0) + 1
        return taken


async def test_the_per_name_signal_cap_is_exact_under_concurrent_sends(
    local_app: taskcast.App,
) -> None:
    gate = Gate()
    _gated_signal_taker(local_app, gate)
    async with local_app as app:
        run = await app.submit("takes_later", names=["go"])
        await gate.reached.wait()
        # All at once: each send checks the cap, then awaits the store's write.
        sent = await asyncio.gather(
            *(app.signal(run.id, "go", i) for i in range(130)), return_exceptions=True
        )
        refused = [r for r in sent if isinstance(r, taskcast.TooManySignals)]
        assert len(refused) == 30 and sent.count(None) == 100
        assert all(r.status == 429 and "'go' signals" in r.message for r in refused)
        gate.opened.set()
        done = await app.wait(run.id, timeout=10)
        assert done.result == {"go": 100}
        logged = [e for e in await collect(app, run.id) if e.type == "signal"]
        assert len(logged) == 100  # the refused are not logged


async def test_a_run_holds_at_most_max_pending_signals_of_all_names(
    local_app: taskcast.App,
) -> None:
    gate = Gate()
    _gated_signal_taker(local_app, gate)
    async with local_app as app:
        names = [f"n{i}" for i in range(200)]
        run = await app.submit("takes_later", names=names)
        await gate.reached.wait()
        sent = await asyncio.gather(
            *(app.signal(run.id, name, None) for name in names), return_exceptions=True
        )
        refused = [r for r in sent if isinstance(r, taskcast.TooManySignals)]
        assert sent.count(None) == 150 and len(refused) == 50
        assert "(of all names)" in refused[0].message and refused[0].details["limit"] == 150
        # Taking one frees room for one more.
        gate.opened.set()
        done = await app.wait(run.id, timeout=10)
        assert sum(done.result.values()) == 150


async def test_a_signal_taken_frees_its_place_under_the_cap(local_app: taskcast.App) -> None:
    first, then = Gate(), Gate()

    @local_app.task(name="takes_one")
    async def takes_one(ctx: taskcast.Context) -> object:
        await first()
        taken = await ctx.signal("go")
        await ctx.emit("took", taken)
        await then()
        return taken

    async with local_app as app:
        run = await app.submit("takes_one")
        await first.reached.wait()
        for i in range(100):
            await app.signal(run.id, "go", i)
        with pytest.raises(taskcast.TooManySignals):
            await app.signal(run.id, "go", 100)
        first.opened.set()
        await wait_for_event(app, run.id, "took")
        await app.signal(run.id, "go", 100)  # room for one again
        with pytest.raises(taskcast.TooManySignals):
            await app.signal(run.id, "go", 101)
        then.opened.set()
        assert (await app.wait(run.id, timeout=10)).result == 0


@pytest.mark.parametrize("timeout", [0, -1, float("inf"), float("nan"), 31 * 86400, True, "1"])
async def test_a_signal_wait_takes_only_a_finite_positive_timeout(
    app: taskcast.App, timeout: object
) -> None:
    @app.task(name="waits")
    async def waits(ctx: taskcast.Context) -> str:
        try:
            await ctx.signal("go", timeout=timeout)  # type: ignore[arg-type]
        except taskcast.InvalidRequest as exc:
            return exc.message
        return "waited"

    run = await app.wait((await app.submit("waits")).id, timeout=5)
    assert run.result.startswith("timeout must be a")


async def test_the_signal_caps_hold_whichever_node_the_signals_come_through(
    redis_server: RedisServer,
) -> None:
    # Two processes' Apps on one Redis: the one that runs the task, and an API node that only
    # sends. The count is the store's, so the caps are the same through either.
    url = redis_url_for(redis_server)
    worker = taskcast.App(url, grace=0.0, shutdown_timeout=2.0, max_pending_signals=150)
    api = taskcast.App(url, worker=False, max_pending_signals=150)
    gate = Gate()
    for app in (worker, api):
        _gated_signal_taker(app, gate)
    async with worker, api:
        run = await api.submit("takes_later", names=["a", "b"])
        await gate.reached.wait()
        sent = [
            *await asyncio.gather(
                *(api.signal(run.id, "a", i) for i in range(110)), return_exceptions=True
            ),
            *await asyncio.gather(
                *(worker.signal(run.id, "b", i) for i in range(60)), return_exceptions=True
            ),
        ]
        assert sent.count(None) == 150  # 100 of "a", then "b" up to 150 in all
        refused = [r for r in sent if isinstance(r, taskcast.TooManySignals)]
        assert {r.details["name"] for r in refused} == {"a", None}
        gate.opened.set()
        assert (await api.wait(run.id, timeout=10)).result == {"a": 100, "b": 50}
