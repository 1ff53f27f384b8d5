"""``taskcast worker``: run the tasks of an App from a shared store (Redis), without HTTP.

Any number of workers (and of ``taskcast serve --no-worker`` API nodes) share one store. A
worker takes runs while it has free slots (``--concurrency``), heartbeats the runs it holds, and
on SIGTERM or SIGINT drains like ``serve`` (docs/semantics.md, "Shutdown": ``grace``, then
cancel, then ``shutdown-timeout``) and hands its unfinished runs back to the queue at once. A
second signal exits at once (128 + the signal number); runs it held return to the queue after
the store's visibility timeout, like those of a worker that was killed.
"""

from __future__ import annotations

import argparse
import asyncio

from rich.console import Console

from ..app import App
from ..runs.shutdown import ShutdownReport
from .apps import (
    CannotLoadApp,
    add_fetch_options,
    add_log_options,
    add_loop_option,
    add_retention_option,
    build_app,
    check_loop,
    check_stop_times,
)
from .environment import EnvOptions, configure_logging
from .process import STOP_MARGIN, exit_if_not_done_in, leave_now, run_on_loop, stop_signals


def add_worker_options(parser: argparse.ArgumentParser) -> None:
    """``worker``'s options, each also from a ``TASKCAST_*`` variable (flags win)."""
    env = EnvOptions(parser)
    env.add("--store", "the shared store: redis://HOST:PORT/DB (required)")
    env.add("--app", "run your own taskcast.App", metavar="MODULE:ATTRIBUTE")
    env.switch("--no-demo", "do not register the demo.* tasks")
    env.switch("--enable-shell", "register the built-in shell task (give it to the API nodes too)")
    add_fetch_options(env)
    env.add("--concurrency", "runs executing at once (default: the App's, 100)", type=int)
    add_retention_option(env)
    add_loop_option(env)
    env.add("--grace", "seconds running runs get to finish on shutdown (default 10)", type=float)
    env.add(
        "--shutdown-timeout",
        "seconds cancelled runs get to clean up on shutdown (default 5)",
        type=float,
    )
    add_log_options(env)
    parser.set_defaults(environment=env)


def _build(options: argparse.Namespace) -> App:
    options.no_worker = False
    if not options.store:
        raise CannotLoadApp(
            "taskcast worker needs --store (or TASKCAST_STORE): redis://HOST:PORT/DB"
        )
    app = build_app(options)
    if not app.shared:
        raise CannotLoadApp(
            f"taskcast worker needs a store that processes share (redis://), not {app.store.url!r}"
        )
    # A worker serves no watchers: it follows other processes' events only once one of its runs
    # awaits another (a parent its children, whichever worker runs them) or a task reads a log;
    # it hears cancels, signals and freed places under limits regardless.
    app.store.follow_events_at_open = False
    if options.concurrency is not None:
        if options.concurrency < 1:
            raise CannotLoadApp(f"--concurrency must be >= 1, got {options.concurrency}")
        app.max_concurrency = options.concurrency
    check_stop_times(options)
    return app


async def _work(
    app: App, stop: asyncio.Event, grace: float, timeout: float, console: Console
) -> ShutdownReport:
    await app.start()
    consumer = getattr(app.store, "consumer", "?")
    tasks = ", ".join(sorted(app.tasks)) or "none"
    console.print(
        f"taskcast worker {consumer} ready on {app.store.url}; concurrency"
        f" {app.max_concurrency}; tasks: {tasks}",
        highlight=False,
        soft_wrap=True,
    )
    console.file.flush()
    try:
        await stop.wait()
    finally:
        report = await app.shutdown(grace, timeout)
    return report


def run_worker(options: argparse.Namespace, console: Console) -> int:
    """Run a worker until SIGTERM/SIGINT; returns the exit status (0 after a clean drain)."""
    options.environment.resolve(options)
    check_loop(options)
    configure_logging(options.log_level, options.log_format)
    app = _build(options)
    grace = app.grace if options.grace is None else options.grace
    timeout = app.shutdown_timeout if options.shutdown_timeout is None else options.shutdown_timeout

    async def work() -> ShutdownReport:
        stop = asyncio.Event()

        def on_signal(signum: int) -> None:
            stop.set()
            # Armed until the process ends: the interpreter's own teardown is covered too.
            exit_if_not_done_in(grace + timeout + STOP_MARGIN)

        with stop_signals(on_signal, "taskcast worker"):
            return await _work(app, stop, grace, timeout, console)

    report = run_on_loop(work(), options.loop)
    console.print(f"taskcast worker stopped: {report}", highlight=False, soft_wrap=True)
    console.file.flush()
    if report.stuck:
        leave_now()
    return 0
