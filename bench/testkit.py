"""Measure what the test kit costs and what virtual time saves, side by side in one run.

(a) Overhead: a generated suite of small async tests (tasks, sockets, async
    generators, files) runs with the leak guard on (``--taskcast-leaks``) and
    without the plugin (``-p no:taskcast``).
(b) Virtual time: a timeout-heavy suite (each test waits out a real timeout)
    runs on the real clock and under ``@pytest.mark.virtual_time``.
(c) Virtual time beside a server: a test with a listening server and a periodic
    timer (*ticks* sleeps of 10 ms) runs on the real clock, under taskcast's
    virtual time and under looptime (``@pytest.mark.looptime``; if this venv lacks
    it, it is installed for the run into a temporary directory with pip);
    the figure is the test's own time (pytest's junit report), without start-up.
(d) A reply on its way: a thread computes a reply for real (about 2 ms) while
    the test waits for it with a 1-second timeout; on a fake clock the reply must
    still win. How many of *replies* runs pass, under taskcast's virtual time and
    under looptime.

Each configuration runs in a fresh ``python -m pytest`` subprocess, *repeat*
times; the median wall time is reported. Prints one JSON line, then a
markdown table.

Usage: python bench/testkit.py [--tests 200] [--timeouts 20] [--timeout 0.5]
       [--ticks 1000] [--repeat 3] [--replies 10]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

INI = """\
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
"""

SMALL_TESTS = """
import asyncio
import contextlib
import socket

import pytest


async def worker(n):
    await asyncio.sleep(0)
    return n * 2


async def numbers():
    for n in range(3):
        yield n
        await asyncio.sleep(0)


@pytest.mark.parametrize("n", range({count}))
async def test_small(n, tmp_path):
    kind = n % 4
    if kind == 0:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(worker(i)) for i in range(5)]
        assert [t.result() for t in tasks] == [0, 2, 4, 6, 8]
    elif kind == 1:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
    elif kind == 2:
        async with contextlib.aclosing(numbers()) as stream:
            assert [x async for x in stream] == [0, 1, 2]
    else:
        (tmp_path / "f.txt").write_text("x")
        with open(tmp_path / "f.txt") as handle:
            assert handle.read() == "x"
"""

TIMEOUT_TESTS = """
import asyncio

import pytest

{marker}


@pytest.mark.parametrize("n", range({count}))
async def test_times_out(n):
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.Event().wait(), timeout={timeout})
"""


SERVER_TIMER_TESTS = """
import asyncio

import pytest

{marker}


async def close_at_once(reader, writer):
    writer.close()


async def test_ticks_beside_a_server():
    server = await asyncio.start_server(close_at_once, "127.0.0.1", 0)
    async with server:
        for _ in range({ticks}):
            await asyncio.sleep(0.01)
"""

REPLY_ON_ITS_WAY_TESTS = """
import asyncio
import hashlib
import socket
import threading

import pytest

{marker}


def serve(server):
    conn, _ = server.accept()
    with conn:
        data = conn.recv(100)
        hashlib.pbkdf2_hmac("sha256", b"pw", b"salt", 2_000)  # the reply takes real time
        conn.sendall(data)


async def test_reply_beats_a_one_second_timeout():
    with socket.create_server(("127.0.0.1", 0)) as server:
        thread = threading.Thread(target=serve, args=(server,))
        thread.start()
        reader, writer = await asyncio.open_connection(*server.getsockname())
        try:
            writer.write(b"ping\\n")
            assert await asyncio.wait_for(reader.readline(), timeout=1) == b"ping\\n"
        finally:
            writer.close()
            await writer.wait_closed()
            thread.join()
"""

#: Plugins are not auto-loaded (PYTEST_DISABLE_PLUGIN_AUTOLOAD): each configuration loads
#: exactly what it measures, so the other plugins of this venv (hypothesis, schemathesis...)
#: cost neither side, and each fake clock runs alone.
PLAIN = ("-p", "asyncio")
TASKCAST = (*PLAIN, "-p", "taskcast")
LOOPTIME = (
    *PLAIN,
    *("-p", "looptime_plugin", "-p", "looptime_chronometers", "-p", "looptime_timeproxies"),
)


#: Where looptime was installed for this run, when this venv does not have it.
_looptime_path = ""


def find_looptime(root: Path) -> bool:
    """Make looptime importable by the looptime runs; False if it cannot be had.

    Installed into a directory of this run (``pip install --target``), not into the
    venv: looptime's plugin, once installed, makes an event loop in every test, which
    taskcast's own suite would then see.
    """
    global _looptime_path
    if importlib.util.find_spec("looptime") is not None:
        return True
    target = root / "looptime"
    got = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--target", str(target), "looptime"],
        capture_output=True,
        text=True,
    )
    if got.returncode:
        print(f"looptime could not be installed, its columns are skipped: {got.stderr[-300:]}")
        return False
    _looptime_path = str(target)
    return True


def run_suite(directory: Path, *extra: str, check: bool = True) -> float:
    """Run pytest on *directory* in a subprocess; return its wall time in seconds.

    With *check* false, a failing suite returns NaN instead of stopping the bench.
    """
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra]
    environment = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    if _looptime_path and "looptime_plugin" in extra:
        environment["PYTHONPATH"] = _looptime_path
    started = time.perf_counter()
    result = subprocess.run(command, cwd=directory, capture_output=True, text=True, env=environment)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        if not check:
            return float("nan")
        raise SystemExit(f"suite failed in {directory}:\n{result.stdout}\n{result.stderr}")
    return elapsed


def passes(directory: Path, *extra: str) -> bool:
    """Run pytest on *directory* once; True if every test passed."""
    return not math.isnan(run_suite(directory, *extra, check=False))


def median_of(repeat: int, directory: Path, *extra: str) -> float:
    return statistics.median(run_suite(directory, *extra) for _ in range(repeat))


def median_test_time(repeat: int, directory: Path, *extra: str) -> float:
    """Median of the tests' own time (pytest's junit report: setup, call, teardown), in seconds.

    Without pytest's start-up, which is the same for every configuration.
    """
    times = []
    for _ in range(repeat):
        junit = directory / "junit.xml"
        run_suite(directory, *extra, f"--junitxml={junit}")
        cases = ElementTree.parse(junit).getroot().iter("testcase")
        times.append(sum(float(case.get("time") or 0) for case in cases))
    return statistics.median(times)


def make_suite(root: Path, name: str, source: str) -> Path:
    directory = root / name
    directory.mkdir()
    (directory / "pytest.ini").write_text(INI)
    (directory / f"test_{name}.py").write_text(source)
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=200, help="small async tests for (a)")
    parser.add_argument("--timeouts", type=int, default=20, help="timeout tests for (b)")
    parser.add_argument("--timeout", type=float, default=0.5, help="real seconds each waits")
    parser.add_argument("--ticks", type=int, default=1000, help="10 ms timer ticks for (c)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration")
    parser.add_argument("--replies", type=int, default=10, help="runs of (d) per fake clock")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="taskcast-bench-") as tmp:
        root = Path(tmp)
        has_looptime = find_looptime(root)
        small = make_suite(root, "small", SMALL_TESTS.format(count=args.tests))
        timeouts = {
            name: make_suite(
                root,
                f"timeouts_{name}",
                TIMEOUT_TESTS.format(marker=marker, count=args.timeouts, timeout=args.timeout),
            )
            for name, marker in (("real", ""), ("virtual", "pytestmark = pytest.mark.virtual_time"))
        }
        markers = {
            "real": "",
            "taskcast": "pytestmark = pytest.mark.virtual_time",
            "looptime": "pytestmark = pytest.mark.looptime",
        }
        ticking = {
            name: make_suite(
                root, f"ticks_{name}", SERVER_TIMER_TESTS.format(marker=m, ticks=args.ticks)
            )
            for name, m in markers.items()
        }
        replying = {
            name: make_suite(root, f"reply_{name}", REPLY_ON_ITS_WAY_TESTS.format(marker=m))
            for name, m in markers.items()
        }
        without_plugin = median_of(args.repeat, small, *PLAIN)
        with_plugin = median_of(args.repeat, small, *TASKCAST, "--taskcast-leaks")
        real_clock = median_of(args.repeat, timeouts["real"], *PLAIN)
        virtual_clock = median_of(args.repeat, timeouts["virtual"], *TASKCAST)
        ticks_real = median_test_time(args.repeat, ticking["real"], *PLAIN)
        ticks_taskcast = median_test_time(args.repeat, ticking["taskcast"], *TASKCAST)
        ticks_looptime = (
            median_test_time(args.repeat, ticking["looptime"], *LOOPTIME)
            if has_looptime
            else math.nan
        )
        reply_taskcast = sum(passes(replying["taskcast"], *TASKCAST) for _ in range(args.replies))
        reply_looptime = (
            sum(passes(replying["looptime"], *LOOPTIME) for _ in range(args.replies))
            if has_looptime
            else None
        )

    figures = {
        "bench": "testkit",
        "python": sys.version.split()[0],
        "small_tests": args.tests,
        "suite_without_plugin_s": round(without_plugin, 3),
        "suite_with_leak_guard_s": round(with_plugin, 3),
        "plugin_overhead_pct": round(100 * (with_plugin / without_plugin - 1), 1),
        "plugin_overhead_ms_per_test": round(1000 * (with_plugin - without_plugin) / args.tests, 2),
        "timeout_tests": args.timeouts,
        "timeout_each_s": args.timeout,
        "timeouts_real_clock_s": round(real_clock, 3),
        "timeouts_virtual_time_s": round(virtual_clock, 3),
        "virtual_time_speedup_x": round(real_clock / virtual_clock, 1),
        "server_timer_ticks": args.ticks,
        "server_timer_test_real_clock_s": round(ticks_real, 3),
        "server_timer_test_taskcast_s": round(ticks_taskcast, 4),
        "server_timer_test_looptime_s": round(ticks_looptime, 4),
        "reply_on_its_way_runs": args.replies,
        "reply_on_its_way_taskcast_passed": reply_taskcast,
        "reply_on_its_way_looptime_passed": reply_looptime,
        "repeat": args.repeat,
    }
    print(json.dumps(figures))
    print()
    virtual_seconds = args.ticks * 0.01
    print("| measurement | baseline | taskcast | looptime |")
    print("|---|---|---|---|")
    print(
        f"| {args.tests} small async tests, leak guard on (baseline: without the plugin) "
        f"| {without_plugin:.2f} s | {with_plugin:.2f} s "
        f"(+{figures['plugin_overhead_pct']}%, {figures['plugin_overhead_ms_per_test']} ms/test) "
        "| |"
    )
    print(
        f"| {args.timeouts} tests each timing out after {args.timeout:g} s (baseline: real clock) "
        f"| {real_clock:.2f} s | {virtual_clock:.2f} s ({figures['virtual_time_speedup_x']}x "
        "faster) | |"
    )
    print(
        f"| {virtual_seconds:g} virtual seconds of 10 ms ticks beside a listening server, "
        f"the test's own time (baseline: real clock) | {ticks_real:.2f} s "
        f"| {ticks_taskcast:.3f} s | {ticks_looptime:.3f} s |"
    )
    looptime_replies = "not run" if reply_looptime is None else f"{reply_looptime}"
    print(
        "| a reply computed for ~2 ms in a thread, awaited with a 1 s timeout: runs that "
        f"passed of {args.replies} | {args.replies} | {reply_taskcast} | {looptime_replies} |"
    )
    print(
        "(medians of fresh pytest processes: wall time with start-up, except the ticks row, "
        "which is the test's own time from pytest's junit report)"
    )


if __name__ == "__main__":
    main()
