"""Deterministic schedules: run async code under many seeded orders of its ready tasks.

The stock event loop runs ready callbacks first-in first-out, so a test sees
one interleaving of its tasks, always the same one. A :class:`Schedule`
replaces the loop's ready queue with one whose next callback is chosen by a
seeded policy, on the stock loop, inside ordinary tests:

* **random** (even seeds): each time, a ready task is picked uniformly;
* **pct** (odd seeds): PCT-style priorities (Burckhardt et al., 2010). Each
  task gets a random priority; the highest-priority ready task runs; at a few
  random change points the running task drops to the lowest priority.

Only *which task runs next* changes. Callbacks that are not task steps
(transport and future plumbing) keep their first-in first-out order and are
never overtaken by each other, so asyncio's own guarantees hold. The same seed
replays the same order exactly, provided the program is deterministic too:
schedules run under virtual time by default so timers are.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from .clock import VirtualTime
from .loop_hooks import LoopHook

#: How many change points PCT uses (its "depth" minus one).
PCT_CHANGE_POINTS = 2


def pct_horizon(seed: int) -> int:
    """Return how many first scheduling decisions PCT draws change points from.

    PCT needs the run's length; we do not know it, so successive PCT seeds
    cycle through 8, 16, 32, 64 and 128: short and long scenarios both get
    change points where their races are.
    """
    return 8 << ((seed // 2) % 5)


#: Set by the pytest plugin from ``--taskcast-seed``: replay only this seed.
replay_seed: int | None = None


def policy_of(seed: int) -> str:
    """Return the policy a seed selects: ``"pct"`` for odd seeds, else ``"random"``."""
    return "pct" if seed % 2 else "random"


class Schedule:
    """One seeded order of ready tasks for the loops of this thread.

    Use as a context manager, or :meth:`start`/:meth:`stop`. Raises
    TypeError if *seed* is not an int.
    """

    def __init__(self, seed: int) -> None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"seed must be an int, got {seed!r}")
        self.seed = seed
        self.policy = policy_of(seed)
        self.decisions = 0
        self._rng = random.Random(seed)
        self._priorities: dict[int, float] = {}
        self._change_points = set(self._rng.sample(range(1, pct_horizon(seed)), PCT_CHANGE_POINTS))
        self._hook = LoopHook(self._attach, self._detach)

    def start(self) -> None:
        """Start choosing the order of ready tasks in the calling thread's loops."""
        self._hook.activate()

    def stop(self) -> None:
        """Give every loop its plain FIFO ready queue back; idempotent."""
        self._hook.deactivate()

    def __enter__(self) -> Schedule:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def choose(self, ready: deque[asyncio.Handle]) -> int:
        """Return the index in *ready* of the callback to run next."""
        candidates = _candidates(ready)
        if len(candidates) == 1:
            return candidates[0][0]
        self.decisions += 1
        if self.policy == "random":
            return self._rng.choice(candidates)[0]
        best_index, best_actor = max(candidates, key=lambda c: self._priority(c[1]))
        if self.decisions in self._change_points and best_actor is not None:
            # A change point: the task about to run drops to the lowest
            # priority, and whoever is now highest runs instead.
            self._priorities[id(best_actor)] = -float(self.decisions)
            best_index, _ = max(candidates, key=lambda c: self._priority(c[1]))
        return best_index

    def _priority(self, actor: object) -> float:
        if actor is None:
            return float("inf")  # plumbing first: it only moves data along
        key = id(actor)
        if key not in self._priorities:
            self._priorities[key] = 1.0 + self._rng.random()
        return self._priorities[key]

    def _attach(self, loop: asyncio.AbstractEventLoop) -> None:
        ready = getattr(loop, "_ready", None)
        if isinstance(ready, deque) and not isinstance(ready, ScheduledReadyQueue):
            loop._ready = ScheduledReadyQueue(ready, self.choose)  # type: ignore[attr-defined]

    def _detach(self, loop: asyncio.AbstractEventLoop) -> None:
        ready = getattr(loop, "_ready", None)
        if isinstance(ready, ScheduledReadyQueue):
            loop._ready = deque(ready)  # type: ignore[attr-defined]


class ScheduledReadyQueue(deque[asyncio.Handle]):
    """A loop's ready queue whose ``popleft`` asks a policy which callback is next.

    ``BaseEventLoop._run_once`` only appends, counts and pops from the left,
    so overriding ``popleft`` is enough to choose the order.
    """

    def __init__(
        self, items: Iterable[asyncio.Handle], choose: Callable[[deque[asyncio.Handle]], int]
    ) -> None:
        super().__init__(items)
        self._choose = choose

    def popleft(self) -> asyncio.Handle:
        if len(self) > 1:
            index = self._choose(self)
            if index:
                handle = self[index]
                del self[index]
                return handle
        return super().popleft()


def _actor(handle: asyncio.Handle) -> object:
    owner = getattr(getattr(handle, "_callback", None), "__self__", None)
    return owner if isinstance(owner, asyncio.Task) else None


def _candidates(ready: deque[asyncio.Handle]) -> list[tuple[int, object]]:
    """The first callback of each task, and the first plumbing callback."""
    seen: set[int] = set()
    candidates: list[tuple[int, object]] = []
    for index, handle in enumerate(ready):
        actor = _actor(handle)
        key = id(actor)
        if key not in seen:
            seen.add(key)
            candidates.append((index, actor))
    return candidates


class ScheduleFailure(AssertionError):
    """A scenario failed under one schedule; ``seed`` replays it exactly."""

    def __init__(self, seed: int, schedules_run: int, error: BaseException) -> None:
        self.seed = seed
        self.error = error
        super().__init__(
            f"failed under schedule seed={seed} (policy {policy_of(seed)}, "
            f"schedule {schedules_run} tried): {type(error).__name__}: {error}\n"
            f"replay exactly: explore(..., seed={seed}, schedules=1) "
            f"or pytest ... --taskcast-seed={seed}"
        )


def explore(
    scenario: Callable[[], Awaitable[Any]],
    *,
    schedules: int = 50,
    seed: int = 0,
    virtual_time: bool = True,
) -> int:
    """Run ``scenario()`` in a fresh event loop under *schedules* seeded orders.

    Schedule *i* uses seed ``seed + i`` (see :func:`policy_of`); under pytest's
    ``--taskcast-seed=S`` only seed S runs. Each run gets its own loop
    (``asyncio.Runner``) and, unless *virtual_time* is False, a fake clock.
    Returns the number of schedules run, all of which passed.

    Raises :class:`ScheduleFailure` at the first schedule whose run raises,
    with the seed that replays it. Raises ValueError if *schedules* < 1.
    Called from inside a running event loop, it runs in a worker thread
    (a thread cannot run two loops) and blocks until done.
    """
    __tracebackhide__ = True  # pytest: the failure is the user's, not ours
    if schedules < 1:
        raise ValueError(f"schedules must be >= 1, got {schedules}")
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _explore(scenario, schedules, seed, virtual_time)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="explore") as pool:
        return pool.submit(_explore, scenario, schedules, seed, virtual_time).result()


def _explore(
    scenario: Callable[[], Awaitable[Any]], schedules: int, seed: int, virtual_time: bool
) -> int:
    seeds = [replay_seed] if replay_seed is not None else [seed + i for i in range(schedules)]
    for count, current in enumerate(seeds, start=1):
        try:
            run_under_schedule(scenario, current, virtual_time=virtual_time)
        except Exception as exc:
            raise ScheduleFailure(current, count, exc) from exc
    return len(seeds)


def run_under_schedule(
    scenario: Callable[[], Awaitable[Any]], seed: int, *, virtual_time: bool = True
) -> Any:
    """Run ``scenario()`` once, in a fresh loop, under the schedule of *seed*."""
    clock = VirtualTime() if virtual_time else None
    with Schedule(seed), asyncio.Runner() as runner:
        if clock is not None:
            clock.start()
        try:
            return runner.run(_awaited(scenario))
        finally:
            if clock is not None:
                clock.stop()


async def _awaited(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return await scenario()
