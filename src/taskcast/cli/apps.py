"""The App a ``serve`` or ``worker`` process runs, built from its options, and the options
both commands take to build it."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

from ..app import App
from ..builtin import FetchPolicy, register_builtin_tasks, register_demo_tasks
from ..errors import TaskcastError
from ..stores import store_from_url
from .environment import EnvOptions

DEFAULT_STORE = "sqlite:///taskcast.db"
LOG_LEVELS = ("debug", "info", "warning")
LOG_FORMATS = ("text", "json")


class CannotLoadApp(TaskcastError):
    """``--app`` does not name an importable ``taskcast.App``."""

    code = "cannot_load_app"


def load_app(spec: str) -> App:
    """The App named by ``module:attribute`` (importable from the current directory)."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise CannotLoadApp(
            f"--app takes module:attribute (e.g. myproject.tasks:app), got {spec!r}"
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CannotLoadApp(f"cannot import {module_name!r} for --app: {exc}") from None
    app = getattr(module, attribute, None)
    if not isinstance(app, App):
        raise CannotLoadApp(
            f"--app {spec}: {module_name}.{attribute} is {type(app).__name__}, not a taskcast.App"
        )
    return app


def build_app(options: argparse.Namespace) -> App:
    """The App to serve: ``--app``'s or an embedded one on ``--store``, with the demo tasks
    and the built-in ones (``http.fetch``; ``shell`` only with ``--enable-shell``)."""
    if options.app:
        app = load_app(options.app)
        if options.store:
            app.store = store_from_url(options.store)
    else:
        app = App(store=options.store or DEFAULT_STORE)
    if getattr(options, "no_worker", False):
        if not app.shared:
            raise CannotLoadApp(
                f"--no-worker needs a store that workers share (redis://), not {app.store.url!r}"
            )
        app.worker = False
    if getattr(options, "retention", None):
        try:
            app.retention = options.retention
        except ValueError as exc:
            raise CannotLoadApp(f"--retention: {exc}") from None
    if not options.no_demo:
        try:
            register_demo_tasks(app)
        except ValueError as exc:
            raise CannotLoadApp(f"{exc}; pass --no-demo to keep your own") from None
    fetch = FetchPolicy.allowing(
        options.fetch_allow or (), private=bool(options.fetch_allow_private)
    )
    register_builtin_tasks(app, shell=options.enable_shell, fetch=fetch)
    return app


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
    add_loop_option(env)
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


def add_fetch_options(env: EnvOptions) -> None:
    """Where the built-in ``http.fetch`` may connect beyond public addresses (SSRF guard)."""
    env.repeat(
        "--fetch-allow",
        "let http.fetch reach HOST even at a loopback, private or link-local address",
        metavar="HOST",
    )
    env.switch(
        "--fetch-allow-private",
        "let http.fetch reach any address, the cloud metadata service included",
    )


def add_retention_option(env: EnvOptions) -> None:
    env.add(
        "--retention",
        "keep finished runs this long and/or this many per task, then prune them: 7d, 1h,10000,"
        " forever (default: the store's; memory:// 1h,10000, else 7d)",
    )


LOOPS = ("asyncio", "uvloop")


def add_loop_option(env: EnvOptions) -> None:
    env.add(
        "--loop",
        "the event loop: asyncio's own, or uvloop (pip install 'taskcast[uvloop]')",
        choices=LOOPS,
        default="asyncio",
    )


def check_loop(options: argparse.Namespace) -> None:
    """Refuse ``--loop uvloop`` before anything starts when uvloop is not installed."""
    if options.loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        raise CannotLoadApp("--loop uvloop needs uvloop: pip install 'taskcast[uvloop]'")


def add_log_options(env: EnvOptions) -> None:
    env.add("--log-level", "how much to log", choices=LOG_LEVELS, default="info")
    env.add(
        "--log-format",
        "text for people, json (one object a line) for collectors",
        choices=LOG_FORMATS,
        default="text",
    )


def check_stop_times(options: argparse.Namespace) -> None:
    """Refuse a ``--grace`` or ``--shutdown-timeout`` that is not a number of seconds >= 0."""
    for name, value in (
        ("--grace", options.grace),
        ("--shutdown-timeout", options.shutdown_timeout),
    ):
        if value is not None and not value >= 0:
            raise CannotLoadApp(f"{name} must be a number of seconds >= 0, got {value}")
