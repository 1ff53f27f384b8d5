"""The ``taskcast`` command line. ``main()`` is the console script.

Exit codes: 0 success (for 'watch' and 'submit --watch': the run completed); 1 the run
failed, was cancelled or timed out; 2 the request was refused (bad usage, unknown run or task,
bad arguments, already finished); 3 the server could not be reached, failed, or shut down while
watching. A second Ctrl+C (or SIGTERM) makes 'serve' exit at once with 128 + the signal number;
a stop that overruns grace + shutdown timeout + 4 s is ended with 70 (stacks on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from importlib.metadata import version

from rich.console import Console

from ..errors import ConnectionFailed, ServerError, ShuttingDown, StreamLost, TaskcastError
from . import client_commands
from .apps import add_serve_options
from .worker_command import add_worker_options, run_worker

RUN_HELP = "the run id, or any unique prefix of it (as `taskcast runs` shows)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskcast",
        description="Run long-lived async tasks and watch every event of every run.",
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"taskcast {version('taskcast')}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")

    serve = verbs.add_parser("serve", help="serve the HTTP API (demo tasks, ./taskcast.db)")
    add_serve_options(serve)

    worker = verbs.add_parser("worker", help="run tasks from a shared store (redis://), no HTTP")
    add_worker_options(worker)

    submit = verbs.add_parser("submit", help="submit a run: taskcast submit demo.count n=5")
    submit.add_argument("task", help="the task name (see GET /tasks)")
    submit.add_argument(
        "args", nargs="*", metavar="NAME=VALUE", help="arguments; VALUE is JSON or text"
    )
    submit.add_argument("--watch", action="store_true", help="then watch it until it ends")
    submit.add_argument("--timeout", type=float, help="seconds per attempt")
    submit.add_argument("--max-attempts", type=int, help="attempts in all")
    submit.add_argument("--id", help="idempotency key: resubmitting it returns the same run")
    submit.add_argument(
        "--after",
        action="append",
        default=[],
        metavar="RUN",
        help="start only once this run has ended (repeat for several)",
    )
    when = submit.add_mutually_exclusive_group()
    when.add_argument(
        "--at",
        metavar="TIME",
        help="start it at this time: 2030-01-01T09:00+01:00, 2030-01-01 09:00 (local) or 09:00",
    )
    when.add_argument("--in", dest="in_", metavar="DURATION", help="start it in 90s, 15m, 2h, 1d")
    submit.add_argument("--priority", type=int, help="0 to 9, higher first (default: the task's)")
    submit.add_argument(
        "--after-policy",
        choices=["fail", "always"],
        default="fail",
        help="if a run of --after did not complete: fail this one (default), or run it always",
    )

    watch = verbs.add_parser("watch", help="follow a run live with a progress bar")
    watch.add_argument("run", help=RUN_HELP)

    cancel = verbs.add_parser("cancel", help="cancel a queued or running run")
    cancel.add_argument("run", help=RUN_HELP)
    cancel.add_argument("--reason", default="cancelled from the command line")

    retry = verbs.add_parser(
        "retry", help="start a failed, cancelled or timed-out run again, as a new run"
    )
    retry.add_argument("run", help=RUN_HELP)
    retry.add_argument("--watch", action="store_true", help="then watch the new run until it ends")

    get = verbs.add_parser("get", help="show one run: its state, times, arguments, result")
    get.add_argument("run", help=RUN_HELP)

    runs = verbs.add_parser("runs", help="list runs, newest first (short ids fit 80 columns)")
    runs.add_argument("--state", help="queued, running, completed, failed, cancelled, ...")
    runs.add_argument("--task", help="only runs of this task")
    runs.add_argument("--parent", metavar="RUN", help="only the children of this run")
    runs.add_argument("--limit", type=int, default=20)

    signal = verbs.add_parser("signal", help="send a signal to a run: taskcast signal RUN continue")
    signal.add_argument("run", help=RUN_HELP)
    signal.add_argument("name", help="the signal name")
    signal.add_argument("--data", help="JSON data for the task")

    schedules = verbs.add_parser(
        "schedules", help="list the periodic schedules; pause, resume or trigger one"
    )
    schedules.add_argument(
        "action", nargs="?", choices=["pause", "resume", "trigger"], help="what to do"
    )
    schedules.add_argument("name", nargs="?", help="the schedule (with an action)")

    for client_verb in (submit, watch, cancel, retry, get, runs, signal, schedules):
        client_commands.add_connection_options(client_verb)
    return parser


def _exit_code(error: TaskcastError) -> int:
    """3 when the server could not be reached, failed or is stopping; 2 when it refused."""
    if isinstance(error, ConnectionFailed | ShuttingDown):
        return 3
    if isinstance(error, ServerError) and error.status >= 500:
        return 3
    return 2


def _explain(error: TaskcastError) -> str:
    if isinstance(error, ConnectionFailed) and not isinstance(error, StreamLost):
        return f"{error}; is `taskcast serve` running there? (set --url or TASKCAST_URL)"
    return str(error)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``) and exit."""
    options = _parser().parse_args(argv)
    console = Console(highlight=False)
    errors = Console(stderr=True, highlight=False)
    try:
        if options.verb == "serve":
            from .serve_command import run_serve  # the server stack: not for worker or client

            code = run_serve(options, console)
        elif options.verb == "worker":
            code = run_worker(options, console)
        else:
            command = getattr(client_commands, options.verb)
            code = asyncio.run(command(options, console))
    except TaskcastError as exc:
        code = _exit_code(exc)
        if getattr(options, "json", False):
            error = {"code": exc.code, "message": str(exc), "exit_code": code}
            errors.file.write(json.dumps({"error": error}) + "\n")
        else:
            errors.print(f"taskcast {options.verb}: {_explain(exc)}", soft_wrap=True)
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
