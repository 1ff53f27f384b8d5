"""``taskcast serve``: build the App (the user's, or the embedded one) and serve it.

Building the App (``apps.py``) and the life of the process (``process.py``) are shared with
``taskcast worker``; serving is ``taskcast.server.serve``'s.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os

from rich.console import Console

from ..runs.shutdown import ShutdownReport
from ..server.serve import LINGER_TIMEOUT, listen_tcp, listen_unix, serve
from ..server.streams import StreamSettings
from .apps import (
    build_app,
    check_loop,
    check_stop_times,
)
from .environment import configure_logging
from .process import STOP_MARGIN, exit_if_not_done_in, leave_now, run_on_loop

logger = logging.getLogger("taskcast.server")


def run_serve(options: argparse.Namespace, console: Console) -> int:
    options.environment.resolve(options)
    check_stop_times(options)
    check_loop(options)
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
        report = run_on_loop(serve_app(), options.loop)
    finally:
        if options.uds:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(options.uds)
    console.print(f"taskcast stopped: {report}", highlight=False, soft_wrap=True)
    return 0
