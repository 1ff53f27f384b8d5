"""The pytest plugin: markers, options and the hooks that run each feature.

Registered through the ``pytest11`` entry point as ``taskcast``; disable it for
one run with ``-p no:taskcast``. It is inert until asked: installing taskcast as
a dependency changes nothing in a suite that does not use it, and this module
imports only the standard library and pytest until a feature is used.
Features:

* leak guard, off unless enabled by the ini option ``taskcast_leak_guard = true``
  or ``--taskcast-leaks`` (``--taskcast-no-leak-guard`` turns it off again for
  one run; the marker ``allow_leaks(reason=...)`` opts one test out);
* ``virtual_time`` marker and fixture;
* ``schedules(n=..., seed=...)`` marker, replayed with ``--taskcast-seed``
  (and ``explore()`` for use inside a test);
* ``faults`` fixture, seeded the same way;
* ``hang_timeout(seconds)`` marker and ``taskcast_hang_timeout`` ini option
  (off by default).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .clock import VirtualTime
    from .faults import Faults
    from .hangs import HangWatchdog
    from .leaks import Leak, LeakWindow
    from .schedules import Schedule

_WINDOW: pytest.StashKey[LeakWindow] = pytest.StashKey()
_FOUND: pytest.StashKey[list[Leak]] = pytest.StashKey()
_GUARD_ON = pytest.StashKey[bool]()
_CURRENT: pytest.StashKey[LeakWindow | None] = pytest.StashKey()
_WIDE_FIXTURES = pytest.StashKey[list[pytest.FixtureDef[Any]]]()
_VIRTUAL_TIME: pytest.StashKey[VirtualTime] = pytest.StashKey()
_SCHEDULE: pytest.StashKey[Schedule] = pytest.StashKey()
_FAILED_SCHEDULES = pytest.StashKey[dict[str, int]]()
_SCHEDULE_PARAM = "_taskcast_schedule_seed"
_FAULTS: pytest.StashKey[Faults] = pytest.StashKey()
_WATCHDOG: pytest.StashKey[HangWatchdog] = pytest.StashKey()
_HANG_SHOWN = pytest.StashKey[bool]()

#: Real seconds a virtual-time loop waits for socket I/O before jumping (clock.DEFAULT_IO_IDLE).
_DEFAULT_IO_IDLE = 0.02

MARKERS = (
    "allow_leaks(reason): taskcast: do not fail this test for what it leaves behind; "
    "reason is required and says why.",
    "virtual_time(io_idle=0.02): taskcast: run this test's event loops on a fake clock "
    "that jumps to the next timer when nothing is ready.",
    "schedules(n=20, seed=0, virtual_time=True): taskcast: run this test n times, each under "
    "a seeded order of ready tasks (seeds seed..seed+n-1); --taskcast-seed replays one.",
    "hang_timeout(seconds, grace=1.0): taskcast: after this many real seconds, report what "
    "every task awaits and cancel them (0 turns it off for this test).",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("taskcast", "taskcast test kit (taskcast.testing)")
    group.addoption(
        "--taskcast-leaks",
        action="store_true",
        default=False,
        help="turn the leak guard on for this run",
    )
    group.addoption(
        "--taskcast-no-leak-guard",
        action="store_true",
        default=False,
        help="turn the leak guard off for this run (wins over the ini option and --taskcast-leaks)",
    )
    group.addoption(
        "--taskcast-seed",
        type=int,
        default=None,
        help="replay one seed: schedules marker, explore() and the faults fixture use only it",
    )
    parser.addini(
        "taskcast_leak_guard",
        type="bool",
        default=False,
        help="turn the leak guard on: fail tests that leave tasks, coroutines, ... behind",
    )
    parser.addini(
        "taskcast_hang_timeout",
        default="0",
        help="real seconds after which a test's tasks are reported and cancelled (0: off)",
    )
    parser.addini(
        "taskcast_origin_depth",
        default="8",
        help="frames kept for the creation site of coroutines and tasks (0 turns it off)",
    )


def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    asked = bool(config.getini("taskcast_leak_guard")) or config.getoption("taskcast_leaks")
    guard_on = asked and not config.getoption("taskcast_no_leak_guard")
    config.stash[_GUARD_ON] = guard_on
    config.stash[_CURRENT] = None
    config.stash[_WIDE_FIXTURES] = []
    config.stash[_FAILED_SCHEDULES] = {}
    seed = config.getoption("taskcast_seed")
    if seed is not None:
        from . import schedules

        schedules.replay_seed = seed
    if guard_on:
        from . import leaks

        leaks.install(origin_depth=int(config.getini("taskcast_origin_depth")))


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.getoption("taskcast_seed") is not None:
        from . import schedules

        schedules.replay_seed = None
    if config.stash.get(_GUARD_ON, False):
        from . import leaks

        leaks.uninstall()


def _allow_reason(item: pytest.Item) -> str | None:
    """Return the opt-out reason, "" if the test did not opt out, None if it is missing."""
    marker = item.get_closest_marker("allow_leaks")
    if marker is None:
        return ""
    reason = marker.kwargs.get("reason", marker.args[0] if marker.args else "")
    return reason if isinstance(reason, str) and reason.strip() else None


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    reason = _allow_reason(item)
    if item.config.stash.get(_GUARD_ON, False):
        from .leaks import LeakWindow

        window = LeakWindow(item.nodeid, allow_reason=reason or "")
        window.open()
        item.stash[_WINDOW] = window
        item.config.stash[_CURRENT] = window
    _start_schedule(item)
    _start_virtual_time(item)
    _start_watchdog(item)
    result = yield
    if reason is None:
        # Failing after setup (not before) keeps pytest's teardown bookkeeping whole.
        pytest.fail(
            '@pytest.mark.allow_leaks needs a reason: allow_leaks(reason="why this test leaks")',
            pytrace=False,
        )
    return result


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, object, object]:
    if fixturedef.scope == "function":
        return (yield)
    # Remember it: what its value holds outlives the tests on purpose.
    wide = request.config.stash.get(_WIDE_FIXTURES, None)
    if wide is not None and fixturedef not in wide:
        wide.append(fixturedef)
    window = request.config.stash.get(_CURRENT, None)
    if window is None:
        return (yield)
    with window.exempt():
        return (yield)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    try:
        return (yield)
    finally:
        watchdog = item.stash.get(_WATCHDOG, None)
        if watchdog is not None:
            watchdog.stop()
        virtual = item.stash.get(_VIRTUAL_TIME, None)
        if virtual is not None:
            virtual.stop()
        schedule = item.stash.get(_SCHEDULE, None)
        if schedule is not None:
            schedule.stop()
        window = item.stash.get(_WINDOW, None)
        if window is not None:
            del item.stash[_WINDOW]
            item.config.stash[_CURRENT] = None
            item.stash[_FOUND] = window.close(_wider_fixture_values(item.config))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    watchdog = item.stash.get(_WATCHDOG, None)
    shown = item.stash.get(_HANG_SHOWN, False)
    if watchdog is not None and watchdog.report and not shown and call.when != "setup":
        if call.when == "call" or report.failed:
            # The CancelledError traceback says nothing; what the tasks awaited does.
            # (A hang in teardown: the loop waiting for an executor job as it closes.)
            report.outcome = "failed"
            report.longrepr = watchdog.report
            item.stash[_HANG_SHOWN] = True
    plan = item.stash.get(_FAULTS, None)
    if plan is not None and report.failed and call.when == "call":
        function = item.nodeid.split("[", 1)[0]
        replay = f"replay exactly: pytest '{function}' --taskcast-seed={plan.seed}"
        report.sections.append(("taskcast faults", f"{plan.describe()}\n{replay}"))
    schedule = item.stash.get(_SCHEDULE, None)
    if schedule is not None and report.failed and call.when == "call":
        _explain_schedule_failure(item, schedule, report)
    if call.when == "teardown":
        found = item.stash.get(_FOUND, None)
        if found:
            from .leaks import format_report

            text = format_report(item.nodeid, found)
            if report.failed:
                report.sections.append(("taskcast leak guard", text))
            else:
                report.outcome = "failed"
                report.longrepr = text
    return report


def _wider_fixture_values(config: pytest.Config) -> Iterator[object]:
    """Yield the values of module/session/... fixtures that are still set up."""
    for definition in config.stash.get(_WIDE_FIXTURES, []):
        cached = definition.cached_result
        if cached is not None:
            yield cached[0]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("schedules")
    if marker is None:
        return
    count = marker.kwargs.get("n", marker.args[0] if marker.args else 20)
    first = marker.kwargs.get("seed", 0)
    if not isinstance(count, int) or count < 1:
        raise pytest.UsageError(f"schedules(n=...) must be an int >= 1, got {count!r}")
    replay = metafunc.config.getoption("taskcast_seed")
    seeds = [replay] if replay is not None else list(range(first, first + count))
    # The same trick as pytest-repeat: a parameter the test did not ask for,
    # so each schedule is its own test item with fresh fixtures.
    metafunc.fixturenames.append(_SCHEDULE_PARAM)
    metafunc.parametrize(_SCHEDULE_PARAM, seeds, ids=[f"seed={seed}" for seed in seeds])


def _start_schedule(item: pytest.Item) -> None:
    callspec = getattr(item, "callspec", None)
    if callspec is None or _SCHEDULE_PARAM not in callspec.params:
        return
    seed = callspec.params[_SCHEDULE_PARAM]
    failed = item.config.stash[_FAILED_SCHEDULES]
    function = item.nodeid.split("[", 1)[0]
    if function in failed:
        # One failing seed is the report; running the rest only repeats it.
        # (A marker, not pytest.skip(): skipping before setup runs would leave
        # pytest's teardown bookkeeping incomplete.)
        reason = f"schedule seed={failed[function]} already failed for this test"
        item.add_marker(pytest.mark.skip(reason=reason))
        return
    from .clock import VirtualTime
    from .schedules import Schedule

    schedule = Schedule(seed)
    schedule.start()
    item.stash[_SCHEDULE] = schedule
    marker = item.get_closest_marker("schedules")
    if marker is not None and marker.kwargs.get("virtual_time", True):
        virtual = item.stash.get(_VIRTUAL_TIME, None) or VirtualTime()
        item.stash[_VIRTUAL_TIME] = virtual


def _explain_schedule_failure(
    item: pytest.Item, schedule: Schedule, report: pytest.TestReport
) -> None:
    from .schedules import policy_of

    function = item.nodeid.split("[", 1)[0]
    item.config.stash[_FAILED_SCHEDULES].setdefault(function, schedule.seed)
    text = (
        f"failed under schedule seed={schedule.seed} (policy {policy_of(schedule.seed)}, "
        f"{schedule.decisions} scheduling decisions)\n"
        f"replay exactly: pytest '{function}' --taskcast-seed={schedule.seed}"
    )
    report.sections.append(("taskcast schedule", text))


def _start_virtual_time(item: pytest.Item) -> None:
    # Started before any fixture, so the loop pytest-asyncio makes for the
    # test is on the fake clock from its first iteration.
    marker = item.get_closest_marker("virtual_time")
    pending = item.stash.get(_VIRTUAL_TIME, None)
    if pending is not None:
        pending.start()
        return
    if marker is None and "virtual_time" not in getattr(item, "fixturenames", ()):
        return
    from .clock import VirtualTime

    io_idle = marker.kwargs.get("io_idle", _DEFAULT_IO_IDLE) if marker else _DEFAULT_IO_IDLE
    virtual = VirtualTime(io_idle=io_idle)
    virtual.start()
    item.stash[_VIRTUAL_TIME] = virtual


@pytest.fixture
def virtual_time(request: pytest.FixtureRequest) -> VirtualTime:
    """Run this test's event loops on a fake clock; returns the :class:`VirtualTime`.

    Same as the ``virtual_time`` marker; use the fixture to read ``jumped``.
    """
    virtual: VirtualTime = request.node.stash[_VIRTUAL_TIME]
    return virtual


def _start_watchdog(item: pytest.Item) -> None:
    marker = item.get_closest_marker("hang_timeout")
    if marker is not None:
        seconds = marker.kwargs.get("seconds", marker.args[0] if marker.args else 0)
        grace = marker.kwargs.get("grace", 1.0)
    else:
        seconds, grace = float(item.config.getini("taskcast_hang_timeout") or 0), 1.0
    if not seconds:
        return
    from .hangs import HangWatchdog

    watchdog = HangWatchdog(seconds, grace=grace, virtual=item.stash.get(_VIRTUAL_TIME, None))
    watchdog.start()
    item.stash[_WATCHDOG] = watchdog


@pytest.fixture
def faults(request: pytest.FixtureRequest) -> Iterator[Faults]:
    """A :class:`Faults` plan for this test, undone after it.

    Seeded by ``--taskcast-seed``, else by the test's schedule seed, else 0;
    a failing test prints the seed and every fault injected.
    """
    seed = request.config.getoption("taskcast_seed")
    if seed is None:
        callspec = getattr(request.node, "callspec", None)
        seed = callspec.params.get(_SCHEDULE_PARAM, 0) if callspec else 0
    from .faults import Faults

    with Faults(seed) as plan:
        request.node.stash[_FAULTS] = plan
        yield plan
