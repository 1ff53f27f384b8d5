"""The client verbs: ``submit``, ``watch``, ``cancel``, ``runs``, ``signal``."""

from __future__ import annotations

import argparse
import json
import os
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from ..client import AsyncClient
from ..errors import InvalidRequest, RunFinished
from .watch import watch_run

DEFAULT_URL = "http://127.0.0.1:8000"

# A person watching: ride out a server restart of a few seconds, then say what happened.
RECONNECTS = 4
MAX_RECONNECT_DELAY = 1.5


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get("TASKCAST_URL", DEFAULT_URL),
        help="the server (default: $TASKCAST_URL or %(default)s)",
    )
    parser.add_argument(
        "--token", default=os.environ.get("TASKCAST_TOKEN"), help="bearer token ($TASKCAST_TOKEN)"
    )
    parser.add_argument("--uds", help="reach the server through this Unix socket")


def connect(options: argparse.Namespace) -> AsyncClient:
    return AsyncClient(
        options.url,
        options.token,
        uds=options.uds,
        reconnects=RECONNECTS,
        max_reconnect_delay=MAX_RECONNECT_DELAY,
    )


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """``k=v`` arguments: ``v`` is JSON if it parses (``n=5`` is 5), else a string.

    Raises ``InvalidRequest`` for an item without ``=``.
    """
    args: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise InvalidRequest(
                f"task arguments are written name=value, got {pair!r} (e.g. n=5 or msg=hello)"
            )
        try:
            args[name] = json.loads(text)
        except ValueError:
            args[name] = text
    return args


async def submit(options: argparse.Namespace, console: Console) -> int:
    args = parse_assignments(options.args)
    async with connect(options) as client:
        run = await client.submit_with(
            options.task,
            args,
            timeout=options.timeout,
            max_attempts=options.max_attempts,
            id=options.id,
        )
        console.print(run.id, highlight=False)
        if options.watch:
            return await watch_run(client, run.id, console)
    return 0


async def watch(options: argparse.Namespace, console: Console) -> int:
    async with connect(options) as client:
        return await watch_run(client, options.run, console)


async def cancel(options: argparse.Namespace, console: Console) -> int:
    async with connect(options) as client:
        if not await client.cancel(options.run, options.reason):
            run = await client.get(options.run)  # RunNotFound: "no run with id ..."
            raise RunFinished(run.id, run.state.value if run.is_finished else "finishing")
    console.print(f"cancelling {options.run}", highlight=False)
    return 0


async def signal(options: argparse.Namespace, console: Console) -> int:
    try:
        data = json.loads(options.data) if options.data is not None else None
    except ValueError as exc:
        raise InvalidRequest(f"--data must be JSON, e.g. '{{\"ok\": true}}': {exc}") from None
    async with connect(options) as client:
        await client.signal(options.run, options.name, data)
    console.print(f"sent {options.name} to {options.run}", highlight=False)
    return 0


def _when(timestamp: float | None) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%m-%d %H:%M:%S") if timestamp else "-"


async def runs(options: argparse.Namespace, console: Console) -> int:
    async with connect(options) as client:
        found = await client.runs(state=options.state, task=options.task, limit=options.limit)
    table = Table()
    table.add_column("id", no_wrap=True)  # ids are copied into other commands: never cut them
    for title in ("task", "state", "attempt", "created", "finished"):
        table.add_column(title)
    for run in found:
        table.add_row(
            run.id,
            run.task,
            run.state.value,
            f"{run.attempt}/{run.max_attempts}",
            _when(run.created_at),
            _when(run.finished_at),
        )
    console.print(table)
    if not found:
        console.print("no runs")
    return 0
