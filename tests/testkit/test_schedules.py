"""Deterministic schedules: seeded orders find the lost update; a seed replays exactly."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

import pytest
from gallery_runner import Snippet

from taskcast.testing import Schedule, ScheduleFailure, explore, run_under_schedule


def test_gallery_lost_update_is_found_with_a_seed_that_replays(
    snippet: Callable[[str], Snippet],
) -> None:
    example = snippet("lost_update")
    result = example.run()
    result.assert_outcomes(failed=1, passed=22, skipped=18)
    output = result.stdout.str()
    assert "test_passes_in_fifo_order PASSED" in output  # the default order hides it
    assert output.count("::test_fixed[seed=") == 20
    assert "test_fixed[seed=" in output and "test_fixed FAILED" not in output
    found = re.search(
        r"replay exactly: pytest 'test_lost_update.py::test_buggy' --taskcast-seed=(\d+)", output
    )
    assert found, output
    seed = found.group(1)

    replay = example.run(f"--taskcast-seed={seed}", "-k", "test_buggy")
    replay.assert_outcomes(failed=1)
    replay.stdout.fnmatch_lines([f"*failed under schedule seed={seed} *"])


class Account:
    def __init__(self) -> None:
        self.balance = 0
        self.lock = asyncio.Lock()

    async def deposit(self, audit_steps: int, locked: bool) -> None:
        for _ in range(audit_steps):
            await asyncio.sleep(0)
        async with self.lock if locked else _no_lock():
            current = self.balance
            await asyncio.sleep(0)
            self.balance = current + 1


class _no_lock:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


def lost_update(locked: bool) -> Callable[[], Awaitable[None]]:
    async def scenario() -> None:
        account = Account()
        await asyncio.gather(account.deposit(0, locked), account.deposit(2, locked))
        assert account.balance == 2, f"lost update: balance {account.balance}"

    return scenario


def test_fifo_order_misses_the_race() -> None:
    asyncio.run(lost_update(locked=False)())


def test_explore_finds_the_race_within_a_few_schedules_and_replays_it() -> None:
    with pytest.raises(ScheduleFailure) as caught:
        explore(lost_update(locked=False), schedules=10)
    failure = caught.value
    assert "lost update: balance 1" in str(failure)
    assert f"--taskcast-seed={failure.seed}" in str(failure)
    for _ in range(3):
        with pytest.raises(ScheduleFailure) as again:
            explore(lost_update(locked=False), seed=failure.seed, schedules=1)
        assert again.value.seed == failure.seed


def test_explore_reports_nothing_on_the_locked_version() -> None:
    assert explore(lost_update(locked=True), schedules=50) == 50


async def test_explore_works_from_inside_a_running_loop() -> None:
    assert explore(lost_update(locked=True), schedules=5) == 5


def order_under(seed: int) -> list[str]:
    order: list[str] = []

    async def worker(name: str) -> None:
        for _ in range(3):
            order.append(name)
            await asyncio.sleep(0)

    async def scenario() -> None:
        async with asyncio.TaskGroup() as group:
            for name in "abc":
                group.create_task(worker(name))

    run_under_schedule(scenario, seed)
    return order


def test_same_seed_gives_the_same_order_and_seeds_differ() -> None:
    assert order_under(7) == order_under(7)
    orders = {tuple(order_under(seed)) for seed in range(10)}
    assert len(orders) > 3


def test_callbacks_that_are_not_task_steps_keep_their_order() -> None:
    async def scenario() -> list[int]:
        loop = asyncio.get_running_loop()
        seen: list[int] = []
        for number in range(10):
            loop.call_soon(seen.append, number)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return seen

    for seed in range(6):
        assert run_under_schedule(scenario, seed) == list(range(10))


def test_seed_must_be_an_int() -> None:
    with pytest.raises(TypeError, match="seed"):
        Schedule("1")  # type: ignore[arg-type]


def test_explore_needs_at_least_one_schedule() -> None:
    with pytest.raises(ValueError, match="schedules"):
        explore(lost_update(locked=True), schedules=0)
