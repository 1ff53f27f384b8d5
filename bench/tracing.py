"""What OpenTelemetry tracing costs a run, side by side in one run.

Three configurations, each in a fresh subprocess (a tracer provider can be set once per
process), each submitting *runs* no-op runs to an in-memory App and waiting for them all:

- ``off``: taskcast's tracing hook disabled as if ``opentelemetry`` were not installed;
- ``no provider``: the package installed, no tracer provider set (the default for users who
  installed the extra but do not trace);
- ``sdk``: the SDK's ``TracerProvider`` with a ``SimpleSpanProcessor`` to an in-memory
  exporter: two spans per run (submit, attempt) made and exported.

Median of *repeat* runs of each; prints one JSON line, then a markdown table with runs per
second and the ratio to ``off``.

Usage: python bench/tracing.py [--runs 5000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CHILD = """
import asyncio, sys, time
import taskcast
from taskcast import tracing

mode, runs = sys.argv[1], int(sys.argv[2])
if mode == "off":
    tracing._CHECKED, tracing._OTEL = True, None
elif mode == "sdk":
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    trace.set_tracer_provider(provider)
tracing._otel()  # the one-time import of opentelemetry, outside the timed part


async def main() -> float:
    app = taskcast.App(max_queue=runs + 1)

    @app.task
    async def noop() -> None:
        return None

    async with app:
        started = time.perf_counter()
        submitted = [await app.submit("noop") for _ in range(runs)]
        for run in submitted:
            await app.wait(run.id, timeout=600)
        return time.perf_counter() - started


print(asyncio.run(main()))
"""


def measure(mode: str, runs: int) -> float:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(runs)], capture_output=True, text=True, check=True
    )
    return float(done.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    modes = ("off", "no provider", "sdk")
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(options.repeat):
        for mode in modes:  # interleaved: a slow moment of the machine hits all three
            times[mode].append(measure(mode.replace("no provider", "api"), options.runs))
    medians = {mode: statistics.median(values) for mode, values in times.items()}
    rates = {mode: options.runs / seconds for mode, seconds in medians.items()}
    print(json.dumps({"runs": options.runs, "repeat": options.repeat, "runs_per_s": rates}))
    print("| tracing | runs/s | ratio to off |")
    print("|---|---|---|")
    for mode in modes:
        print(f"| {mode} | {rates[mode]:,.0f} | {rates[mode] / rates['off']:.2f} |")


if __name__ == "__main__":
    main()
