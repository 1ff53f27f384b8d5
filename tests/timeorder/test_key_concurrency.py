"""Per-key concurrency: at most K runs at once per value of an argument; the others wait in
order, and other keys are not held up."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import pytest

import taskcast

from .conftest import started


def build_app(
    make_app: Callable[..., taskcast.App], limit: int = 1
) -> tuple[taskcast.App, list[tuple[str, int]], dict[str, int]]:
    """``build(repo, n)`` waits for its ``done`` signal; records starts and the most at once."""
    app = make_app()
    starts: list[tuple[str, int]] = []
    most: dict[str, int] = {}
    running: dict[str, int] = {}

    @app.task(concurrency=limit, concurrency_key="repo")
    async def build(ctx: taskcast.Context, repo: str, n: int) -> None:
        starts.append((repo, n))
        running[repo] = running.get(repo, 0) + 1
        most[repo] = max(most.get(repo, 0), running[repo])
        try:
            await ctx.signal("done")
        finally:
            running[repo] -= 1

    return app, starts, most


async def finish_all(app: taskcast.App, runs: list[taskcast.Run]) -> None:
    """Let every run end, one signal each as it starts (queued runs keep the signal)."""
    for run in runs:
        await app.signal(run.id, "done")
    for run in runs:
        await app.wait(run.id, timeout=10)


async def test_at_most_k_runs_of_a_key_run_at_once(
    make_app: Callable[..., taskcast.App],
) -> None:
    app = make_app()
    release = asyncio.Event()
    both_in = asyncio.Event()
    running: list[int] = []
    most = 0

    @app.task(concurrency=2, concurrency_key="repo")
    async def build(repo: str, n: int) -> None:
        nonlocal most
        running.append(n)
        most = max(most, len(running))
        if len(running) == 2:
            both_in.set()
        await release.wait()
        running.remove(n)

    async with started(app):
        runs = [await app.submit("build", repo="web", n=n) for n in range(5)]
        await both_in.wait()
        waiting = [(await app.get(run.id)).waiting_for for run in runs[2:]]
        assert waiting == ["concurrency"] * 3
        release.set()
        for run in runs:
            assert (await app.wait(run.id, timeout=5)).state == "completed"
    assert most == 2


async def test_the_runs_of_a_key_start_in_submit_order(
    make_app: Callable[..., taskcast.App],
) -> None:
    app, starts, _ = build_app(make_app)
    async with started(app):
        runs = [await app.submit("build", repo="web", n=n) for n in range(4)]
        await finish_all(app, runs)
    assert starts == [("web", 0), ("web", 1), ("web", 2), ("web", 3)]


async def test_other_keys_are_not_held_up(make_app: Callable[..., taskcast.App]) -> None:
    app, starts, _ = build_app(make_app)
    async with started(app):
        web = [await app.submit("build", repo="web", n=n) for n in range(3)]
        api = await app.submit("build", repo="api", n=0)
        await app.signal(api.id, "done")
        assert (await app.wait(api.id, timeout=5)).state == "completed"
        assert starts == [("web", 0), ("api", 0)]
        await finish_all(app, web)


async def test_a_run_waiting_for_its_key_says_so(make_app: Callable[..., taskcast.App]) -> None:
    app, _, _ = build_app(make_app)
    async with started(app):
        first = await app.submit("build", repo="web", n=0)
        second = await app.submit("build", repo="web", n=1)
        async with contextlib.aclosing(app.events(first.id)) as log:
            async for event in log:  # until the first body has started
                if event.type == "started":
                    break
        assert (await app.get(second.id)).waiting_for == "concurrency"
        await finish_all(app, [first, second])


async def test_a_run_cancelled_in_its_keys_line_lets_the_next_one_through(
    make_app: Callable[..., taskcast.App],
) -> None:
    app, starts, _ = build_app(make_app)
    async with started(app):
        runs = [await app.submit("build", repo="web", n=n) for n in range(3)]
        assert await app.cancel(runs[1].id) is True
        await finish_all(app, [runs[0], runs[2]])
        assert (await app.get(runs[1].id)).state == "cancelled"
    assert starts == [("web", 0), ("web", 2)]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"concurrency": 1, "concurrency_key": "repository"}, "is not a parameter of task"),
        ({"concurrency_key": "repo"}, "needs concurrency=K"),
        ({"concurrency": 0, "concurrency_key": "repo"}, "concurrency must be an integer >= 1"),
    ],
)
def test_bad_key_limits_are_refused_at_registration(
    options: dict[str, object], message: str
) -> None:
    app = taskcast.App()
    with pytest.raises(ValueError, match=message):

        @app.task(**options)  # type: ignore[call-overload]
        async def build(repo: str) -> None: ...
