"""Measure what the test kit costs and what virtual time saves, side by side in one run.

(a) Overhead: a generated suite of small async tests (tasks, sockets, async
    generators, files) runs with the plugin (leak guard on, its default) and
    without it (``-p no:taskcast``).
(b) Virtual time: a timeout-heavy suite (each test waits out a real timeout)
    runs on the real clock and under ``@pytest.mark.virtual_time``.

Each configuration runs in a fresh ``python -m pytest`` subprocess, *repeat*
times; the median wall time is reported. Prints one JSON line, then a
markdown table.

Usage: python bench/testkit.py [--tests 200] [--timeouts 20] [--timeout 0.5] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
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


def run_suite(directory: Path, *extra: str) -> float:
    """Run pytest on *directory* in a subprocess; return its wall time in seconds."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=directory, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"suite failed in {directory}:\n{result.stdout}\n{result.stderr}")
    return elapsed


def median_of(repeat: int, directory: Path, *extra: str) -> float:
    return statistics.median(run_suite(directory, *extra) for _ in range(repeat))


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
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="taskcast-bench-") as tmp:
        root = Path(tmp)
        small = make_suite(root, "small", SMALL_TESTS.format(count=args.tests))
        real = make_suite(
            root, "real", TIMEOUT_TESTS.format(marker="", count=args.timeouts, timeout=args.timeout)
        )
        virtual = make_suite(
            root,
            "virtual",
            TIMEOUT_TESTS.format(
                marker="pytestmark = pytest.mark.virtual_time",
                count=args.timeouts,
                timeout=args.timeout,
            ),
        )
        without_plugin = median_of(args.repeat, small, "-p", "no:taskcast")
        with_plugin = median_of(args.repeat, small)
        real_clock = median_of(args.repeat, real)
        virtual_clock = median_of(args.repeat, virtual)

    figures = {
        "bench": "testkit",
        "python": sys.version.split()[0],
        "small_tests": args.tests,
        "suite_without_plugin_s": round(without_plugin, 3),
        "suite_with_plugin_s": round(with_plugin, 3),
        "plugin_overhead_pct": round(100 * (with_plugin / without_plugin - 1), 1),
        "plugin_overhead_ms_per_test": round(1000 * (with_plugin - without_plugin) / args.tests, 2),
        "timeout_tests": args.timeouts,
        "timeout_each_s": args.timeout,
        "timeouts_real_clock_s": round(real_clock, 3),
        "timeouts_virtual_time_s": round(virtual_clock, 3),
        "virtual_time_speedup_x": round(real_clock / virtual_clock, 1),
        "repeat": args.repeat,
    }
    print(json.dumps(figures))
    print()
    print("| measurement | without plugin / real clock | with plugin / virtual time | ratio |")
    print("|---|---|---|---|")
    print(
        f"| {args.tests} small async tests (leak guard on) | {without_plugin:.2f} s "
        f"| {with_plugin:.2f} s | +{figures['plugin_overhead_pct']}% "
        f"({figures['plugin_overhead_ms_per_test']} ms/test) |"
    )
    print(
        f"| {args.timeouts} tests each timing out after {args.timeout:g} s | {real_clock:.2f} s "
        f"| {virtual_clock:.2f} s | {figures['virtual_time_speedup_x']}x faster |"
    )


if __name__ == "__main__":
    main()
