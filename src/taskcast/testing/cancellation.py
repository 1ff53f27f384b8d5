"""Cancellation injection: cancel a coroutine at each of its await points in turn.

``await cancel_at_each_await(fn, check)`` first runs ``fn()`` to the end and
counts the points where it suspends (an ``await`` that actually yields to the
loop; awaiting something already done is not a point). Then it runs ``fn()``
again once per point, cancelling it at the 1st, the 2nd, ... point, and runs
``check()`` after each run. A run breaks the contract if:

* ``check()`` raises (a resource was not released, state is inconsistent);
* ``fn()`` swallowed the cancellation (returned normally after being cancelled);
* ``fn()`` raised something other than ``CancelledError`` while being cancelled.

Every broken run is reported together, each with the await point (file, line,
source) where the cancellation landed.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from .awaits import user_await_site
from .sites import Frame, format_frame


class CancellationSafetyError(AssertionError):
    """``fn`` is not cancellation-safe at one or more await points.

    ``failures`` holds one :class:`BrokenAwait` per broken run.
    """

    def __init__(self, failures: list[BrokenAwait], points: int) -> None:
        self.failures = failures
        self.points = points
        lines = [
            f"not cancellation-safe: {len(failures)} of {points} await points "
            "broke the contract when cancelled there"
        ]
        lines.extend(failure.format() for failure in failures)
        super().__init__("\n".join(lines))


@dataclass
class BrokenAwait:
    """One run that broke the contract: where it was cancelled and what went wrong."""

    point: int
    site: Frame | None
    problem: str

    def format(self) -> str:
        where = format_frame(self.site) if self.site else "(site unknown)"
        label = "without cancellation" if self.point == 0 else f"cancelled at await #{self.point}"
        return f"- {label}: {self.problem}\n    at {where}"


@dataclass
class CancellationReport:
    """What :func:`cancel_at_each_await` exercised: *points* await points, and where."""

    points: int
    sites: list[Frame | None] = field(default_factory=list)


class _Run:
    """Drive one coroutine, counting its suspensions; cancel it at point *cancel_at*."""

    def __init__(self, coro: Any, cancel_at: int) -> None:
        self.coro = coro
        self.cancel_at = cancel_at
        self.points = 0
        self.sites: list[Frame | None] = []

    def __await__(self) -> Generator[Any, Any, Any]:
        send: Any = None
        throw: BaseException | None = None
        while True:
            try:
                yielded = self.coro.send(send) if throw is None else self.coro.throw(throw)
            except StopIteration as stop:
                return stop.value
            self.points += 1
            self.sites.append(user_await_site(self.coro))
            if self.points == self.cancel_at:
                # Cancelling our own task while it runs: asyncio cancels the
                # future we are about to yield, so CancelledError lands in the
                # coroutine exactly at this await.
                task = asyncio.current_task()
                assert task is not None
                task.cancel()
            try:
                send, throw = (yield yielded), None
            except BaseException as exc:
                send, throw = None, exc


async def _run_once(
    fn: Callable[[], Awaitable[Any]], cancel_at: int
) -> tuple[_Run, asyncio.Task[Any]]:
    run = _Run(None, cancel_at)

    async def drive() -> Any:
        run.coro = _as_coroutine(fn())
        return await run

    task = asyncio.create_task(drive())
    await asyncio.wait([task])
    return run, task


def _as_coroutine(awaitable: Awaitable[Any]) -> Any:
    if inspect.iscoroutine(awaitable):
        return awaitable

    async def wrap() -> Any:
        return await awaitable

    return wrap()


async def _check(check: Callable[[], Any]) -> str | None:
    try:
        result = check()
        if inspect.isawaitable(result):
            await result
    except Exception as exc:
        return f"check failed: {type(exc).__name__}: {exc}".rstrip(": ")
    return None


async def cancel_at_each_await(
    fn: Callable[[], Awaitable[Any]],
    check: Callable[[], Any],
    *,
    max_points: int = 1000,
) -> CancellationReport:
    """Run ``fn()`` cancelled at each of its await points in turn; ``check()`` after each.

    *fn* makes a fresh awaitable on each call and must leave state that
    *check* can inspect; *check* may be sync or async and raises (usually
    ``AssertionError``) when an invariant is broken. Runs happen one after
    another in the current event loop, in tasks of their own.

    Returns a :class:`CancellationReport` naming every point exercised.
    Raises :class:`CancellationSafetyError` listing every broken run, and
    ValueError if *max_points* is < 1. If ``fn()`` raises without being
    cancelled, that exception propagates: the scenario itself is broken.
    Stops after *max_points* points (a loop that never ends).
    """
    __tracebackhide__ = True  # pytest: the failure is the user's, not ours
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")
    failures: list[BrokenAwait] = []
    baseline, task = await _run_once(fn, cancel_at=0)
    task.result()  # the uncancelled scenario must work: otherwise say so plainly
    problem = await _check(check)
    if problem:
        failures.append(BrokenAwait(0, None, problem))
    points = min(baseline.points, max_points)
    for point in range(1, points + 1):
        run, task = await _run_once(fn, cancel_at=point)
        if run.points < point:
            points = run.points  # this run finished earlier: fewer points than counted
            break
        site = run.sites[point - 1]
        if task.cancelled():
            problem = None
        elif task.exception() is not None:
            exc = task.exception()
            problem = f"raised {type(exc).__name__}: {exc} instead of CancelledError"
        else:
            problem = "swallowed CancelledError and returned normally"
        check_problem = await _check(check)
        for text in (problem, check_problem):
            if text:
                failures.append(BrokenAwait(point, site, text))
    if failures:
        raise CancellationSafetyError(failures, points)
    return CancellationReport(points, baseline.sites[:points])
