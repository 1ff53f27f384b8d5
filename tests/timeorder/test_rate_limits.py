"""Rate limits: starts evenly spaced per task or per key; a run waiting for its rate is queued,
holds no slot, and says why (virtual time)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import pytest

import taskcast

from .conftest import started

pytestmark = pytest.mark.virtual_time


def limited_app(
    make_app: Callable[..., taskcast.App], **options: object
) -> tuple[taskcast.App, list[tuple[str, float]]]:
    """``limited(user)``: at most 6 starts a minute per user; records (user, loop time)."""
    app = make_app(**options)
    starts: list[tuple[str, float]] = []

    @app.task(rate_limit="6/m", rate_key="user")
    async def limited(user: str) -> None:
        starts.append((user, asyncio.get_running_loop().time()))

    @app.task
    async def free() -> str:
        return "ok"

    return app, starts


async def test_starts_are_spaced_by_the_rate(make_app: Callable[..., taskcast.App]) -> None:
    app, starts = limited_app(make_app)
    async with started(app):
        runs = [await app.submit("limited", user="ann") for _ in range(5)]
        for run in runs:
            await app.wait(run.id, timeout=120)
    times = [t for _, t in starts]
    assert all(b - a >= 10 - 1e-6 for a, b in itertools.pairwise(times))


async def test_no_window_of_the_period_holds_more_starts_than_the_rate(
    make_app: Callable[..., taskcast.App],
) -> None:
    app, starts = limited_app(make_app)
    async with started(app):
        runs = [await app.submit("limited", user="ann") for _ in range(20)]
        for run in runs:
            await app.wait(run.id, timeout=600)
    times = [t for _, t in starts]
    assert max(sum(1 for t in times if s <= t < s + 60) for s in times) <= 6


async def test_a_run_waiting_for_its_rate_says_so(make_app: Callable[..., taskcast.App]) -> None:
    app, _ = limited_app(make_app)
    async with started(app):
        first = await app.submit("limited", user="ann")
        second = await app.submit("limited", user="ann")
        await app.wait(first.id, timeout=5)
        waiting = await app.get(second.id)
        assert (waiting.state, waiting.waiting_for) == ("queued", "rate_limit")
        assert (await app.wait(second.id, timeout=60)).state == "completed"
        assert (await app.get(second.id)).waiting_for is None


async def test_each_value_of_the_rate_key_has_its_own_rate(
    make_app: Callable[..., taskcast.App],
) -> None:
    app, starts = limited_app(make_app)
    async with started(app):
        loop = asyncio.get_running_loop()
        began = loop.time()
        runs = [await app.submit("limited", user=user) for user in ("ann", "bob", "cy")]
        for run in runs:
            await app.wait(run.id, timeout=5)
    assert all(t - began < 1 for _, t in starts)


async def test_a_run_waiting_for_its_rate_holds_no_slot(
    make_app: Callable[..., taskcast.App],
) -> None:
    app, _ = limited_app(make_app, max_concurrency=1)
    async with started(app):
        limited = [await app.submit("limited", user="ann") for _ in range(3)]
        free = await app.submit("free")
        assert (await app.wait(free.id, timeout=5)).state == "completed"
        assert [(await app.get(r.id)).waiting_for for r in limited[1:]] == ["rate_limit"] * 2


async def test_a_run_cancelled_while_waiting_for_its_rate_never_starts(
    make_app: Callable[..., taskcast.App],
) -> None:
    app, starts = limited_app(make_app)
    async with started(app):
        first = await app.submit("limited", user="ann")
        second = await app.submit("limited", user="ann")
        third = await app.submit("limited", user="ann")
        await app.wait(first.id, timeout=5)
        assert await app.cancel(second.id, "changed my mind") is True
        assert (await app.wait(third.id, timeout=60)).state == "completed"
        assert (await app.get(second.id)).state == "cancelled"
    assert len(starts) == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rate_limit": "100/d"}, 'rate_limit must be "N/s", "N/m" or "N/h"'),
        ({"rate_limit": "0/s"}, 'rate_limit must be "N/s", "N/m" or "N/h"'),
        ({"rate_limit": "fast"}, 'rate_limit must be "N/s", "N/m" or "N/h"'),
        ({"rate_limit": "5/s", "rate_key": "tenant"}, "rate_key='tenant' is not a parameter"),
        ({"rate_key": "user"}, "rate_key='user' needs rate_limit"),
    ],
)
def test_bad_rate_limits_are_refused_at_registration(
    options: dict[str, object], message: str
) -> None:
    app = taskcast.App()
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):

        @app.task(**options)  # type: ignore[call-overload]
        async def limited(user: str) -> None: ...
