"""``taskcast serve``: build the App (the user's, or the embedded one) and serve it.

Building the App (``apps.py``) and the life of the process (``process.py``) are shared with
``taskcast worker``; serving is ``taskcast.server.serve``'s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os

from rich.console import Console

from ..runs.shutdown import ShutdownReport
from ..server.serve import LINGER_TIMEOUT, listen_tcp, listen_unix, serve
from ..server.streams import StreamSettings
from .apps import (
    DEFAULT_STORE,
    add_fetch_options,
    add_log_options,
    add_retention_option,
    build_app,
    check_stop_times,
)
from .environment import EnvOptions, configure_logging
from .process import STOP_MARGIN, exit_if_not_done_in, leave_now

logger = logging.getLogger("taskcast.server")


def add_serve_options(parser: argparse.ArgumentParser) -> None:
    """``serve``'s options, each also from a ``TASKCAST_*`` variable (flags win)."""
    env = EnvOptions(parser)
    env.add("--host", "TCP address", default="127.0.0.1")
    env.add("--port", "TCP port, 0 for any free one", type=int, default=8000)
    env.add("--uds", "listen on this Unix socket instead of TCP", metavar="PATH")
    env.add(
        "--store", f"sqlite:///PATH, memory:// or redis://HOST:PORT/DB (default {DEFAULT_STORE})"
    )
    env.switch(
        "--no-worker", "serve the API only; `taskcast worker` processes run the tasks (redis://)"
    )
    env.add("--app", "serve your own taskcast.App", metavar="MODULE:ATTRIBUTE")
    env.switch("--no-demo", "do not register the demo.* tasks")
    env.switch(
        "--enable-shell", "register the `shell` task: anyone who can submit runs can run commands"
    )
    add_fetch_options(env)
    env.add("--token", "require this bearer token on every route but /health")
    env.repeat(
        "--allowed-host",
        "also answer requests naming this server as NAME in their Host header (on loopback"
        " only loopback names are answered by default, against DNS rebinding); * for any",
        metavar="NAME",
    )
    add_retention_option(env)
    env.add("--grace", "seconds running runs get to finish on shutdown (default 10)", type=float)
    env.add(
        "--shutdown-timeout",
        "seconds cancelled runs get to clean up on shutdown (default 5)",
        type=float,
    )
    env.add("--keepalive", "seconds between SSE keep-alive comments", type=float, default=15.0)
    env.add(
        "--write-timeout",
        "seconds an SSE client may stop reading before it is cut",
        type=float,
        default=10.0,
    )
    env.switch("--access-log", "log every request")
    add_log_options(env)
    parser.set_defaults(environment=env)


def run_serve(options: argparse.Namespace, console: Console) -> int:
    options.environment.resolve(options)
    check_stop_times(options)
    configure_logging(options.log_level, options.log_format)
    settings = StreamSettings(keepalive=options.keepalive, write_timeout=options.write_timeout)
    app = build_app(options)
    if options.enable_shell and not options.token:
        logger.warning(
            "--enable-shell without --token: anyone who can reach this server can run"
            " commands as this user; set --token (or TASKCAST_TOKEN)"
        )
    if options.uds:
        sock = listen_unix(options.uds)
        where = f"unix socket {options.uds}"
    else:
        sock = listen_tcp(options.host, options.port)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        where = f"http://{shown}:{port} (API docs: http://{shown}:{port}/docs)"

    def ready() -> None:
        tasks = ", ".join(sorted(app.tasks)) or "none"
        console.print(
            f"taskcast serving on {where}; tasks: {tasks}", highlight=False, soft_wrap=True
        )
        console.file.flush()

    grace = app.grace if options.grace is None else options.grace
    timeout = app.shutdown_timeout if options.shutdown_timeout is None else options.shutdown_timeout

    def stopping() -> None:
        # Armed until the process ends: the interpreter's own teardown is covered too.
        exit_if_not_done_in(grace + timeout + LINGER_TIMEOUT + STOP_MARGIN)

    async def serve_app() -> ShutdownReport:
        report = await serve(
            app,
            sock,
            token=options.token,
            grace=options.grace,
            shutdown_timeout=options.shutdown_timeout,
            stream_settings=settings,
            access_log=options.access_log,
            allowed_hosts=options.allowed_host,
            on_ready=ready,
            on_stopping=stopping,
        )
        if report.stuck:
            # asyncio.run would wait for ever for tasks that ignore cancellation. Their runs
            # are stored as interrupted and were logged: leave without them.
            console.print(
                f"taskcast stopped: {report}; leaving {len(report.stuck)} run(s) that ignore"
                " cancellation behind",
                highlight=False,
                soft_wrap=True,
            )
            leave_now(lambda: os.unlink(options.uds) if options.uds else None)
        return report

    try:
        report = asyncio.run(serve_app())
    finally:
        if options.uds:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(options.uds)
    console.print(f"taskcast stopped: {report}", highlight=False, soft_wrap=True)
    return 0
