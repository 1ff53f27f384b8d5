"""Run an App behind uvicorn; stop it cleanly on SIGTERM/SIGINT (docs/semantics.md, "Shutdown").

Two uvicorn behaviours shape this module:

* on exit, uvicorn waits for open connections to finish *before* the app's lifespan shutdown
  runs, forever by default, so an SSE app that ends its streams in the lifespan never exits;
* uvicorn installs its own SIGINT/SIGTERM handlers when it serves (replacing any installed
  before) and re-raises the signal after it returns, so the process would not exit 0.

So here the signals are ours: the first one shuts the App down *first* (new runs get 503, running
runs get ``grace`` seconds, then are cancelled; every event stream receives ``shutdown`` and
ends), and only then is uvicorn told to exit, with a short ``timeout_graceful_shutdown`` for
whatever connection still lingers. A second signal exits at once with status 128 + signal number.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import stat
import sys
from collections.abc import Callable, Generator, Iterator, Sequence

import uvicorn

from ..app import App
from ..errors import TaskcastError
from ..runs.shutdown import ShutdownReport
from .api import create_app
from .hosts import allowed_hosts_for, listens_on_loopback
from .streams import ExposeTransport, StreamSettings

logger = logging.getLogger("taskcast.server")

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)

LINGER_TIMEOUT = 1
"""Seconds uvicorn waits for connections still open once the App is shut down and every stream
ended: only responses cut mid-way can be left, and they must not hold the process."""


class CannotListen(TaskcastError):
    """The address to listen on is taken, not permitted or does not exist."""

    code = "cannot_listen"


class _Server(uvicorn.Server):
    """uvicorn's server, minus its signal handling (``serve`` owns the signals), telling
    ``on_ready`` when it accepts connections."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._on_ready()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def listen_tcp(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: any free port). Raises ``CannotListen``."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CannotListen(f"cannot listen on {host}:{port}: unknown host ({exc})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        hint = (
            "another process uses that port: stop it or pass another --port"
            if exc.errno == errno.EADDRINUSE
            else exc.strerror
        )
        raise CannotListen(f"cannot listen on {host}:{port}: {hint}") from None
    sock.set_inheritable(True)
    return sock


def listen_unix(path: str) -> socket.socket:
    """A Unix socket bound at ``path``; a stale socket file left by a dead server is replaced.

    Raises ``CannotListen`` if a live server listens there or the path cannot be used.
    """
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
            except OSError:
                os.unlink(path)  # nobody answers: left over by a server that died
            else:
                raise CannotListen(f"cannot listen on {path}: another server is listening there")
            finally:
                probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        raise CannotListen(f"cannot listen on {path}: {exc.strerror}") from None
    return sock


@contextlib.contextmanager
def _signals(on_first: Callable[[int], None]) -> Iterator[None]:
    """Call ``on_first(signum)`` for the first SIGINT/SIGTERM; exit at once on the second."""
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def handle(signum: int) -> None:
        if received:
            # The operator insists: no more waiting, no cleanup.
            sys.stderr.write(f"taskcast: second signal ({signal.Signals(signum).name}), exiting\n")
            sys.stderr.flush()
            os._exit(128 + signum)
        received.append(signum)
        on_first(signum)

    for signum in HANDLED_SIGNALS:
        loop.add_signal_handler(signum, handle, signum)
    try:
        yield
    finally:
        for signum in HANDLED_SIGNALS:
            loop.remove_signal_handler(signum)


async def serve(
    app: App,
    sock: socket.socket,
    *,
    token: str | None = None,
    grace: float | None = None,
    shutdown_timeout: float | None = None,
    stream_settings: StreamSettings | None = None,
    access_log: bool = False,
    allowed_hosts: Sequence[str] = (),
    on_ready: Callable[[], None] = lambda: None,
    on_stopping: Callable[[], None] = lambda: None,
) -> ShutdownReport:
    """Serve ``app`` on the listening socket ``sock`` until SIGINT/SIGTERM, then stop cleanly.

    Starts ``app`` (its store errors propagate), serves the HTTP API, and on the first signal
    runs ``app.shutdown(grace, shutdown_timeout)`` (defaults: the App's), which ends every event
    stream after its ``shutdown`` event; then stops uvicorn. Returns the shutdown report. The
    whole stop takes at most grace + shutdown_timeout + about one second. ``on_ready`` is called
    once requests are being served, ``on_stopping`` when the first signal arrives. ``sock`` is
    closed on return.

    Requests are answered for the ``Host`` names ``hosts.allowed_hosts_for(sock,
    allowed_hosts)`` lists (on loopback: loopback names and ``allowed_hosts``). A server that
    listens beyond loopback without a ``token`` is logged as a warning.
    """
    hosts = allowed_hosts_for(sock, allowed_hosts)
    if token is None and sock.family != socket.AF_UNIX and not listens_on_loopback(sock):
        logger.warning(
            "listening on %s without a token: anyone who can reach this address can submit,"
            " cancel and read runs; set --token (or TASKCAST_TOKEN)",
            sock.getsockname()[0],
        )
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        stop.set()
        on_stopping()

    try:
        with _signals(on_signal):
            await app.start()
            asgi = ExposeTransport(
                create_app(app, token=token, stream_settings=stream_settings, allowed_hosts=hosts)
            )
            config = uvicorn.Config(
                asgi,
                lifespan="on",
                log_config=None,  # the CLI configures logging; uvicorn must not replace it
                access_log=access_log,
                timeout_graceful_shutdown=LINGER_TIMEOUT,
                backlog=4096,
            )
            server = _Server(config, on_ready)
            return await _run_until_stopped(app, server, sock, stop, grace, shutdown_timeout)
    finally:
        sock.close()


async def _run_until_stopped(
    app: App,
    server: uvicorn.Server,
    sock: socket.socket,
    stop: asyncio.Event,
    grace: float | None,
    shutdown_timeout: float | None,
) -> ShutdownReport:
    """Serve until ``stop`` is set (or uvicorn ends by itself); shut the App down *first*."""
    async with asyncio.TaskGroup() as tasks:
        serving = tasks.create_task(server.serve(sockets=[sock]), name="uvicorn")
        stopping = tasks.create_task(stop.wait(), name="stop signal")
        await asyncio.wait([serving, stopping], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not serving.done():
            logger.info("stopping: new runs are refused; running runs get their grace")
        report = await app.shutdown(grace, shutdown_timeout)
        logger.info("%s", report)
        # Every stream has ended; now uvicorn may close the rest.
        server.should_exit = True
    return report
