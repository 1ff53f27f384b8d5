"""The client verbs: ``submit``, ``watch``, ``cancel``, ``retry``, ``get``, ``runs``,
``signal``, ``schedules``.

Each takes a run id or any unique prefix of one, and ``--json`` for scripts: one JSON document
on stdout (JSON lines, one event each, for ``watch`` and ``submit --watch``), errors as one JSON
object on stderr; the exit codes are the same either way.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from rich.console import Console

from ..client import AsyncClient
from ..errors import InvalidRequest, RunFinished
from ..models import Run, compact_json
from . import run_ids
from .runs_table import clock, duration, runs_table, schedules_table
from .start_times import parse_at, parse_in
from .watch import watch_run, watch_run_json

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
    parser.add_argument(
        "--json",
        action="store_true",
        help="print JSON for scripts (JSON lines for events) instead of text",
    )


def connect(options: argparse.Namespace) -> AsyncClient:
    return AsyncClient(
        options.url,
        options.token,
        uds=options.uds,
        reconnects=RECONNECTS,
        max_reconnect_delay=MAX_RECONNECT_DELAY,
    )


def print_json(console: Console, value: Any) -> None:
    """One JSON document on one line, as is (no markup, no wrapping)."""
    console.file.write(compact_json(value) + "\n")
    console.file.flush()


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


async def _follow(
    client: AsyncClient, run_id: str, options: argparse.Namespace, console: Console
) -> int:
    if options.json:
        return await watch_run_json(client, run_id, console)
    return await watch_run(client, run_id, console)


async def submit(options: argparse.Namespace, console: Console) -> int:
    args = parse_assignments(options.args)
    async with connect(options) as client:
        run = await client.submit_with(
            options.task,
            args,
            timeout=options.timeout,
            max_attempts=options.max_attempts,
            id=options.id,
            after=await run_ids.resolve_all(client, options.after),
            after_policy=options.after_policy,
            run_at=None if options.at is None else parse_at(options.at),
            delay=None if options.in_ is None else parse_in(options.in_),
            priority=options.priority,
        )
        if options.json:
            print_json(console, run.to_dict())
        else:
            console.print(run.id, highlight=False)
        if options.watch:
            return await _follow(client, run.id, options, console)
    return 0


async def watch(options: argparse.Namespace, console: Console) -> int:
    async with connect(options) as client:
        return await _follow(client, await run_ids.resolve(client, options.run), options, console)


async def cancel(options: argparse.Namespace, console: Console) -> int:
    async with connect(options) as client:
        run_id = await run_ids.resolve(client, options.run)
        if not await client.cancel(run_id, options.reason):
            run = await client.get(run_id)  # RunNotFound: "no run with id ..."
            raise RunFinished(run.id, run.state.value if run.is_finished else "finishing")
        if options.json:
            print_json(console, {"id": run_id, "cancelling": True, "reason": options.reason})
            return 0
    console.print(f"cancelling {run_id}", highlight=False)
    return 0


async def retry(options: argparse.Namespace, console: Console) -> int:
    async with connect(options) as client:
        run = await client.retry(await run_ids.resolve(client, options.run))
        if options.json:
            print_json(console, run.to_dict())
        else:
            console.print(run.id, highlight=False)
        if options.watch:
            return await _follow(client, run.id, options, console)
    return 0


async def signal(options: argparse.Namespace, console: Console) -> int:
    try:
        data = json.loads(options.data) if options.data is not None else None
    except ValueError as exc:
        raise InvalidRequest(f"--data must be JSON, e.g. '{{\"ok\": true}}': {exc}") from None
    async with connect(options) as client:
        run_id = await run_ids.resolve(client, options.run)
        await client.signal(run_id, options.name, data)
    if options.json:
        print_json(console, {"id": run_id, "signal": options.name, "data": data, "sent": True})
    else:
        console.print(f"sent {options.name} to {run_id}", highlight=False)
    return 0


def _describe(run: Run, now: float | None = None) -> list[tuple[str, str]]:
    now = time.time() if now is None else now
    facts = [
        ("id", run.id),
        ("task", run.task),
        ("state", run.state.value),
        ("attempt", f"{run.attempt} of {run.max_attempts}"),
        ("args", compact_json(run.args)),
        ("created", clock(run.created_at, now)),
        ("started", clock(run.started_at, now)),
        ("finished", clock(run.finished_at, now)),
        ("duration", duration(run, now)),
    ]
    if run.run_at is not None:
        facts.append(("run at", clock(run.run_at, now)))
    if run.priority:
        facts.append(("priority", str(run.priority)))
    if run.waiting_for is not None:
        facts.append(("waiting for", run.waiting_for))
    if run.timeout is not None:
        facts.append(("timeout", f"{run.timeout:g}s"))
    if run.parent_id:
        facts.append(("parent", run.parent_id))
    if run.retry_of:
        facts.append(("retry of", run.retry_of))
    if run.after:
        facts.append(("after", f"{', '.join(run.after)} ({run.after_policy})"))
    if run.state.value == "completed":
        facts.append(("result", compact_json(run.result)))
    if run.error is not None:
        facts.append(("error", compact_json(run.error)))
    facts.append(("events", str(run.last_seq)))
    return facts


async def get(options: argparse.Namespace, console: Console) -> int:
    async with connect(options) as client:
        run = await client.get(await run_ids.resolve(client, options.run))
    if options.json:
        print_json(console, run.to_dict())
        return 0
    facts = _describe(run)
    label = max(len(name) for name, _ in facts)
    for name, value in facts:
        console.print(f"{name:<{label}}  {value}", highlight=False, markup=False, soft_wrap=True)
    return 0


async def runs(options: argparse.Namespace, console: Console) -> int:
    async with connect(options) as client:
        parent = await run_ids.resolve(client, options.parent) if options.parent else None
        found = await client.runs(
            state=options.state, task=options.task, limit=options.limit, parent=parent
        )
    if options.json:
        print_json(console, [run.to_dict() for run in found])
        return 0
    if not found:
        console.print("no runs")
        return 0
    console.print(runs_table(found, console.width))
    return 0


async def schedules(options: argparse.Namespace, console: Console) -> int:
    if options.action is not None and not options.name:
        raise InvalidRequest(f"taskcast schedules {options.action} needs the schedule's NAME")
    if options.action is None and options.name:
        raise InvalidRequest("to act on a schedule: taskcast schedules pause|resume|trigger NAME")
    async with connect(options) as client:
        if options.action == "trigger":
            run = await client.trigger_schedule(options.name)
            if options.json:
                print_json(console, run.to_dict())
            else:
                console.print(run.id, highlight=False)
            return 0
        if options.action is not None:
            changed = await (
                client.pause_schedule(options.name)
                if options.action == "pause"
                else client.resume_schedule(options.name)
            )
            if options.json:
                print_json(console, changed)
            else:
                done = "paused" if changed["paused"] else "resumed"
                console.print(f"{done} {options.name}", highlight=False)
            return 0
        found = await client.schedules()
    if options.json:
        print_json(console, found)
    elif not found:
        console.print("no schedules")
    else:
        console.print(schedules_table(found))
    return 0
