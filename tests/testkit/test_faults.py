"""Fault injection: seeded faults into awaited calls, replayed by the same seed."""

from __future__ import annotations

import asyncio
import re

import pytest

from taskcast.testing import Faults


class Store:
    async def read(self, key: str) -> str:
        await asyncio.sleep(0)
        return key.upper()


async def read_many(store: Store, count: int) -> list[str]:
    results = []
    for number in range(count):
        try:
            results.append(await store.read(f"k{number}"))
        except ConnectionError:
            results.append("error")
    return results


async def test_same_seed_injects_the_same_faults_at_the_same_calls() -> None:
    histories = []
    for _ in range(2):
        store = Store()
        with Faults(seed=42) as plan:
            plan.inject(store, "read", raises=ConnectionError("injected"), probability=0.5)
            await read_many(store, 20)
        histories.append(plan.injected)
    assert histories[0] == histories[1]
    assert 0 < len(histories[0]) < 20


async def test_different_seeds_inject_different_faults() -> None:
    patterns = set()
    for seed in range(5):
        store = Store()
        with Faults(seed) as plan:
            plan.inject(store, "read", raises=ConnectionError, probability=0.5)
            patterns.add(tuple(await read_many(store, 12)))
    assert len(patterns) > 1


async def test_restore_undoes_the_patch() -> None:
    store = Store()
    with Faults(seed=0) as plan:
        plan.inject(store, "read", raises=ConnectionError, probability=1.0)
        with pytest.raises(ConnectionError):
            await store.read("a")
    assert await store.read("a") == "A"
    assert "read" not in vars(store)


@pytest.mark.virtual_time
async def test_delays_take_virtual_time_only() -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    store = Store()
    with Faults(seed=3) as plan:
        plan.inject(store, "read", delay=(10.0, 20.0), probability=1.0)
        assert await store.read("a") == "A"
    elapsed = loop.time() - start
    assert 10.0 <= elapsed <= 20.0
    assert plan.injected[0].action.startswith("delayed")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"raises": ConnectionError, "probability": 1.5},
        {"delay": -1.0},
        {"delay": (5.0, 1.0)},
        {},
    ],
)
def test_invalid_plans_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Faults().wrap(Store().read, **kwargs)  # type: ignore[arg-type]


def test_failing_test_prints_the_seed_and_replays_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        class Api:
            async def fetch(self, n):
                await asyncio.sleep(0)
                return n

        @pytest.mark.schedules(n=10)
        async def test_total(faults):
            api = Api()
            faults.inject(api, "fetch", raises=ConnectionError("reset"), probability=0.2)
            total = 0
            for n in range(5):
                total += await api.fetch(n)  # no retry: any fault fails the test
            assert total == 10
        """
    )
    result = pytester.runpytest()
    assert result.parseoutcomes()["failed"] == 1  # later seeds are skipped after the first
    output = result.stdout.str()
    found = re.search(r"fault seed=(\d+): 1 fault\(s\) in (\d+) call\(s\)", output)
    assert found, output
    seed, calls = found.groups()
    assert f"--taskcast-seed={seed}" in output

    replay = pytester.runpytest(f"--taskcast-seed={seed}")
    replay.assert_outcomes(failed=1)
    replay.stdout.fnmatch_lines([f"*fault seed={seed}: 1 fault(s) in {calls} call(s)*"])
