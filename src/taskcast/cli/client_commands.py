"""The client verbs: ``submit``, ``watch``, ``cancel``, ``runs``, ``signal``."""

from __future__ import annotations

import argparse
import json
import os
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from .http import ApiClient, ClientError
from .watch import watch_run

DEFAULT_URL = "http://127.0.0.1:8000"


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


def connect(options: argparse.Namespace) -> ApiClient:
    return ApiClient(options.url, token=options.token, uds=options.uds)


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """``k=v`` arguments: ``v`` is JSON if it parses (``n=5`` is 5), else a string.

    Raises ``ClientError`` for an item without ``=``.
    """
    args: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise ClientError(
                f"task arguments are written name=value, got {pair!r} (e.g. n=5 or msg=hello)",
                exit_code=2,
            )
        try:
            args[name] = json.loads(text)
        except ValueError:
            args[name] = text
    return args


async def submit(options: argparse.Namespace, console: Console) -> int:
    args = parse_assignments(options.args)
    async with connect(options) as api:
        run = await api.submit(
            options.task,
            args,
            timeout=options.timeout,
            max_attempts=options.max_attempts,
            id=options.id,
        )
        console.print(run["id"], highlight=False)
        if options.watch:
            return await watch_run(api, run["id"], console)
    return 0


async def watch(options: argparse.Namespace, console: Console) -> int:
    async with connect(options) as api:
        return await watch_run(api, options.run, console)


async def cancel(options: argparse.Namespace, console: Console) -> int:
    async with connect(options) as api:
        await api.cancel(options.run, options.reason)
    console.print(f"cancelling {options.run}", highlight=False)
    return 0


async def signal(options: argparse.Namespace, console: Console) -> int:
    try:
        data = json.loads(options.data) if options.data is not None else None
    except ValueError as exc:
        raise ClientError(
            f"--data must be JSON, e.g. '{{\"ok\": true}}': {exc}", exit_code=2
        ) from None
    async with connect(options) as api:
        await api.signal(options.run, options.name, data)
    console.print(f"sent {options.name} to {options.run}", highlight=False)
    return 0


def _when(timestamp: float | None) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%m-%d %H:%M:%S") if timestamp else "-"


async def runs(options: argparse.Namespace, console: Console) -> int:
    async with connect(options) as api:
        found = await api.runs(state=options.state, task=options.task, limit=options.limit)
    table = Table()
    table.add_column("id", no_wrap=True)  # ids are copied into other commands: never cut them
    for title in ("task", "state", "attempt", "created", "finished"):
        table.add_column(title)
    for run in found:
        table.add_row(
            run["id"],
            run["task"],
            run["state"],
            f"{run['attempt']}/{run['max_attempts']}",
            _when(run["created_at"]),
            _when(run["finished_at"]),
        )
    console.print(table)
    if not found:
        console.print("no runs")
    return 0
