"""``redis://HOST:PORT/DB``: runs and logs in Redis, shared by many processes.

Layout (the keys are listed in ``redis_scripts``):

* a run is a hash of its ``Run`` fields, JSON-encoded one by one (derived from
  ``dataclasses.fields(Run)``, so new fields travel without code here);
* a run's event log is a stream whose entry id ``SEQ-0`` is the event's ``seq``: replay is
  ``XRANGE``, and ``Last-Event-ID`` resume works on any node;
* every write is one Lua script (atomic): the compare-and-set of a transition, its event, the
  indexes, the publication of the event on the ``events`` channel, and, for a terminal state,
  the acknowledgement of the run's queue entry;
* creating a run also adds it to the shared work queue (one stream per task), in the same
  script, so a run is never stored without being queued; the queue itself (taking runs,
  heartbeats, hand-back, cancel requests) is ``taskcast.queues.redis.RedisQueue``, which uses
  this store's connection, writer and subscription;
* every store subscribes to ``events`` and announces each event (its own too: one path, so the
  announcements of a run are in ``seq`` order whoever wrote them) to its listener, the event log;
  and to ``control``, where cancel requests and signals for running runs travel (handed to the
  queue's ``on_control`` listener).

URL options (query string): ``prefix`` (key prefix, default ``taskcast:``), ``visibility_timeout``
(seconds, default 30), ``reconnect_timeout`` (seconds a write keeps retrying while Redis is
unreachable, default 30). Other options go to redis-py.

A write cancelled while waiting for Redis is not undone: it runs in a task of its own, awaited
through ``asyncio.shield`` and by ``close``. A write whose reply is lost (the connection broke)
is retried with the same token; the scripts recognise it and do not apply it twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from itertools import chain
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..errors import (
    QueueFull,
    RunFinished,
    RunNotFound,
    StoreError,
    StoreUnavailable,
    TooManySignals,
)
from ..ids import ids_with_prefix_below
from ..models import Event, Run, ScheduleState, compact_json, encode_json
from ..states import ALLOWED_TRANSITIONS, RunState
from ..stats import Activity, RunTimes, Tally, Window
from . import redis_scripts as scripts
from .base import Store, encode_transition

logger = logging.getLogger("taskcast")

_T = TypeVar("_T")

_RUN_FIELDS = tuple(field.name for field in dataclasses.fields(Run))
_RUN_FIELD_NAMES = frozenset(name.encode() for name in _RUN_FIELDS)
_SOURCES = {
    target.value: " ".join(s.value for s in RunState if target in ALLOWED_TRANSITIONS[s])
    for target in RunState
}
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
_PRUNE_BATCH = 500

HEALTH_TIMEOUT = 1.0
"""Seconds ``problem`` (``/health``) waits for Redis to answer a PING."""

MAX_CONNECTIONS = 50
"""Connections per store (one stays with the subscriber, one with a waiting claim)."""
_LIST_PAGE = 200
_ACTIVITY_PAGE = 1000


def _encode_run(run: Run) -> list[str]:
    """The run as flat ``field, json value`` pairs for ``HSET``."""
    flat: list[str] = []
    for name in _RUN_FIELDS:
        flat.append(name)
        flat.append(compact_json(getattr(run, name)))
    return flat


def decode_run(flat: Sequence[bytes] | Mapping[bytes, bytes]) -> Run:
    """A run from its hash (``HGETALL`` as a flat list or a mapping); unknown fields are skipped
    and missing ones take the ``Run`` defaults, so records of other versions still load."""
    pairs = flat.items() if isinstance(flat, Mapping) else zip(flat[::2], flat[1::2], strict=True)
    # The values are JSON already: one JSON object, one json.loads (per-field loads cost 3x).
    parts = [b'"' + name + b'":' + value for name, value in pairs if name in _RUN_FIELD_NAMES]
    values: dict[str, Any] = json.loads(b"{" + b",".join(parts) + b"}")
    values["state"] = RunState(values["state"])
    return Run(**values)


def private_field(record: Sequence[bytes] | Mapping[bytes, bytes], name: bytes) -> str | None:
    """A private (``_``-prefixed) field of a run's hash (a mapping or a flat list)."""
    if isinstance(record, Mapping):
        value = record.get(name)
        return None if value is None else value.decode()
    for index in range(0, len(record), 2):
        if record[index] == name:
            return record[index + 1].decode()
    return None


def parse_url(url: str) -> tuple[str, dict[str, str]]:
    """Split ``url`` into the URL for redis-py and taskcast's own options (see module doc)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise StoreError(f"cannot open store {url!r}: expected redis://HOST:PORT/DB")
    ours: dict[str, str] = {}
    theirs: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query):
        if key in ("prefix", "visibility_timeout", "reconnect_timeout"):
            ours[key] = value
        else:
            theirs.append((key, value))
    return urlunsplit(parts._replace(query=urlencode(theirs))), ours


def _seconds(url: str, options: dict[str, str], name: str, default: float) -> float:
    try:
        value = float(options.get(name, default))
    except ValueError:
        value = -1.0
    if not value > 0:
        raise StoreError(f"cannot open store {url!r}: {name} must be a number of seconds > 0")
    return value


class Backoff:
    """The waits between tries to reach Redis again: 50 ms, doubling, at most 1 s; with a
    ``deadline`` (``time.monotonic()``), ``exhausted`` says when the next wait would pass it."""

    FIRST = 0.05
    MOST = 1.0

    def __init__(self, deadline: float | None = None) -> None:
        self.delay = self.FIRST
        self.deadline = deadline

    def reset(self) -> None:
        self.delay = self.FIRST

    @property
    def exhausted(self) -> bool:
        return self.deadline is not None and time.monotonic() + self.delay > self.deadline

    async def wait(self) -> None:
        await asyncio.sleep(self.delay)  # reconnect backoff, not synchronisation
        self.delay = min(self.delay * 2, self.MOST)


ControlListener = Callable[[str, str, Any], None]
"""``(kind, name, data)``: for the worker holding a run, ``("cancel", run_id, reason)`` when
another process asks to cancel it and ``("signal", run_id, event)`` when a signal was logged; for
every worker, ``("freed", scope, None)`` when a place under a deployment-wide limit was freed."""


class RedisStore(Store):
    """Runs and logs in Redis (see the module docstring)."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self._redis_url, options = parse_url(url)
        self.prefix = options.get("prefix", "taskcast:")
        #: Seconds after which a run whose worker stopped heartbeating goes to another worker
        #: (read by the work queue; a URL option so every process of a deployment agrees).
        self.visibility_timeout = _seconds(url, options, "visibility_timeout", 30.0)
        self.reconnect_timeout = _seconds(url, options, "reconnect_timeout", 30.0)
        #: ``create_run`` raises ``QueueFull`` once this many runs are queued in all (set by the
        #: work queue from ``App.max_queue``; ``None``: unbounded).
        self.max_queued: int | None = None
        self._control_listener: ControlListener | None = None
        self._tokens = itertools.count(1)
        self._token_prefix = secrets.token_hex(4)
        self._client: aioredis.Redis | None = None
        self._pubsub: PubSub | None = None
        self._subscriber: asyncio.Task[None] | None = None
        self._pending: list[tuple[AsyncScript, list[Any], asyncio.Future[Any]]] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._groups: set[str] = set()
        self._following_wanted = True
        self._following = asyncio.Event()
        self._create: AsyncScript
        self._create_runs: AsyncScript
        self._append: AsyncScript
        self._take_signal: AsyncScript
        self._transition: AsyncScript
        self._prune: AsyncScript
        self._times: AsyncScript
        self._prune_task: AsyncScript
        self._record_tick: AsyncScript
        self._events_channel = (self.prefix + "events").encode()
        self._control_channel = (self.prefix + "control").encode()

    # -- opening and closing ------------------------------------------------------------------

    async def open(self) -> None:
        # A bounded pool that makes writers wait for a connection rather than fail.
        pool = aioredis.BlockingConnectionPool.from_url(
            self._redis_url, protocol=2, max_connections=MAX_CONNECTIONS, timeout=None
        )
        client: aioredis.Redis = aioredis.Redis.from_pool(pool)  # the client owns the pool
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            await client.aclose()
            raise StoreError(f"cannot open store {self.url!r}: {exc}") from None
        self._client = client
        self._create = client.register_script(scripts.CREATE_RUN)
        self._create_runs = client.register_script(scripts.CREATE_RUNS)
        self._append = client.register_script(scripts.APPEND)
        self._take_signal = client.register_script(scripts.TAKE_SIGNAL)
        self._transition = client.register_script(scripts.TRANSITION)
        self._prune = client.register_script(scripts.PRUNE)
        self._times = client.register_script(scripts.TIMES)
        self._prune_task = client.register_script(scripts.PRUNE_TASK)
        self._record_tick = client.register_script(scripts.RECORD_TICK)
        self._following_wanted = self.follow_events_at_open
        self._following = asyncio.Event()
        if self._following_wanted:
            self._following.set()
        try:
            self._pubsub = await self._subscribe()
        except BaseException:
            await client.aclose()
            self._client = None
            raise
        loop = asyncio.get_running_loop()
        self._closing = False
        self._writer = loop.create_task(
            self._write_forever(), name=f"taskcast-redis-writer {self.prefix}"
        )
        self._subscriber = loop.create_task(
            self._listen(), name=f"taskcast-redis-subscriber {self.prefix}"
        )

    async def _subscribe(self) -> PubSub:
        """A pub/sub connection subscribed to ``events`` and ``control``, once Redis confirmed
        both (so nothing published after this returns can be missed)."""
        assert self._client is not None
        pubsub = self._client.pubsub()
        try:
            channels = [self._control_channel]
            if self._following_wanted:
                channels.append(self._events_channel)
            await pubsub.subscribe(*channels)
            confirmed = 0
            while confirmed < len(channels):
                message = await pubsub.get_message(timeout=self.reconnect_timeout)
                if message is None:
                    raise StoreError(f"{self.url}: Redis did not confirm the subscription")
                if message["type"] == "subscribe":
                    confirmed += 1
        except BaseException:
            await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
            raise
        return pubsub

    async def close(self) -> None:
        if self._subscriber is not None:
            self._subscriber.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._subscriber
            self._subscriber = None
        self._closing = True
        if self._writer is not None:
            self._wake.set()
            await self._writer  # drains what was handed over
            self._writer = None
        if self._pubsub is not None:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
            self._pubsub = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def command(self, *args: Any) -> Any:
        """One Redis command (redis-py's reply parsing applies)."""
        return await self.client.execute_command(*args)  # type: ignore[no-untyped-call]

    def on_control(self, listener: ControlListener | None) -> None:
        """Call ``listener(kind, run_id, data)`` with the cancel requests and signals published
        on ``control`` (see ``ControlListener``)."""
        self._control_listener = listener

    @property
    def client(self) -> aioredis.Redis:
        """The redis-py client (for tests and tools). Raises ``StoreError`` when not open."""
        if self._client is None:
            raise StoreError(f"store {self.url!r} is not open")
        return self._client

    async def problem(self) -> str | None:
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT):
                await self.client.ping()
        except (*_UNREACHABLE, TimeoutError, StoreError) as exc:
            return f"{self.url}: Redis unreachable: {exc or type(exc).__name__}"
        return None

    async def follow_events(self) -> None:
        if self._following.is_set():
            return
        if not self._following_wanted:
            self._following_wanted = True
            if self._pubsub is not None:
                await self._pubsub.subscribe(self._events_channel)
        async with asyncio.timeout(self.reconnect_timeout):
            await self._following.wait()

    # -- the subscriber -----------------------------------------------------------------------

    async def _listen(self) -> None:
        """Announce published events to the listener and cancel requests to the cancel listener;
        survive Redis going away (re-subscribe with backoff)."""
        backoff = Backoff()
        while True:
            try:
                if self._pubsub is None:
                    self._pubsub = await self._subscribe()
                    self._after_resubscribe()
                message = await self._pubsub.get_message(timeout=None)
                backoff.reset()
            except (*_UNREACHABLE, StoreError) as exc:
                logger.warning("redis subscription lost (%s); reconnecting", exc)
                if self._pubsub is not None:
                    with contextlib.suppress(*_UNREACHABLE, RedisError):
                        await self._pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
                    self._pubsub = None
                await backoff.wait()
                continue
            if message is None:
                continue
            kind = message["type"]
            if kind == "message":
                self._dispatch(message["channel"], message["data"])
            elif kind == "subscribe" and message["channel"] == self._events_channel:
                self._following.set()  # follow_events: confirmed
            elif kind == "subscribe" and message["channel"] == self._control_channel:
                self._after_resubscribe()  # redis-py reconnected and re-subscribed on its own

    def _after_resubscribe(self) -> None:
        self._announce_reconnected()

    def _dispatch(self, channel: bytes, data: bytes) -> None:
        try:
            if channel == self._events_channel:
                seq, at, head, body = data.split(b"\n", 3)
                run_id, event_type = json.loads(head)
                text = body.decode()
                event = Event(run_id, int(seq), event_type, json.loads(text), float(at), text)
                self._announce((event,))
            elif channel == self._control_channel and self._control_listener is not None:
                head, _, rest = data.partition(b"\n")
                kind, run_id, detail = json.loads(head)
                if kind == "cancel":
                    self._control_listener("cancel", run_id, detail)
                elif kind == "freed":
                    self._control_listener("freed", run_id, None)
                elif kind == "due":
                    self._control_listener("due", run_id, detail)
                elif kind == "signal":
                    at, _, body = rest.partition(b"\n")
                    text = body.decode()
                    event = Event(run_id, detail, "signal", json.loads(text), float(at), text)
                    self._control_listener("signal", run_id, event)
        except Exception:  # a malformed message must not stop the subscriber
            logger.exception("cannot handle a message on %r", channel)

    # -- writing ------------------------------------------------------------------------------

    def _token(self) -> str:
        return f"{self._token_prefix}{next(self._tokens)}"

    async def write(self, script: AsyncScript, args: list[Any]) -> Any:
        """Hand the script call to the writer and wait for its reply.

        The hand-over is synchronous, so a caller cancelled while waiting does not undo the
        write. The writer sends what is pending as one pipeline (one round trip for many runs'
        writes, in the order they were handed over) and retries while Redis is away.
        """
        return await asyncio.shield(self.hand_over(script, args))

    def hand_over(self, script: AsyncScript, args: list[Any]) -> asyncio.Future[Any]:
        """Hand the script call to the writer now and return the future of its reply (which
        nobody has to await: an error is logged by nobody, retrieved silently). Raises
        ``StoreError`` when the store is closed."""
        if self._writer is None or self._closing:
            raise StoreError(f"store {self.url!r} is closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)
        self._pending.append((script, args, future))
        self._wake.set()
        return future

    async def _write_forever(self) -> None:
        """The writer: send the pending writes, batch after batch, until closed and drained."""
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch, self._pending = self._pending, []
            await self._send(batch)

    async def _send(self, batch: list[tuple[AsyncScript, list[Any], asyncio.Future[Any]]]) -> None:
        backoff = Backoff(time.monotonic() + self.reconnect_timeout)
        while batch:
            try:
                async with self.client.pipeline(transaction=False) as pipe:
                    for script, args, _ in batch:
                        pipe.execute_command("EVALSHA", script.sha, 0, *args)
                    replies = await pipe.execute(raise_on_error=False)
            except _UNREACHABLE as exc:
                # A write whose reply was lost is sent again with its token: not applied twice.
                if backoff.exhausted:
                    error = StoreUnavailable(f"{self.url}: Redis unreachable: {exc}")
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    return
                logger.warning("redis unreachable (%s); retrying %d write(s)", exc, len(batch))
                await backoff.wait()
                continue
            unknown = []  # NOSCRIPT (Redis restarted and lost its script cache): load, resend
            for item, reply in zip(batch, replies, strict=True):
                future = item[2]
                if isinstance(reply, NoScriptError):
                    unknown.append(item)
                elif future.done():
                    pass
                elif isinstance(reply, Exception):
                    future.set_exception(StoreError(f"{self.url}: {reply}"))
                else:
                    future.set_result(reply)
            if unknown:
                for script in {id(item[0]): item[0] for item in unknown}.values():
                    await self.client.script_load(script.script)
            batch = unknown

    async def retrying(self, call: Callable[[], Awaitable[_T]]) -> _T:
        """``call()``, tried again while Redis is unreachable, for ``reconnect_timeout`` at most
        (then ``StoreUnavailable``)."""
        backoff = Backoff(time.monotonic() + self.reconnect_timeout)
        while True:
            try:
                return await call()
            except _UNREACHABLE as exc:
                if backoff.exhausted:
                    raise StoreUnavailable(f"{self.url}: Redis unreachable: {exc}") from None
                logger.warning("redis unreachable (%s); retrying the write", exc)
                await backoff.wait()

    async def _read(self, call: Callable[[], Awaitable[_T]]) -> _T:
        return await self.retrying(call)

    def queue_key(self, task: str, priority: int = 0) -> str:
        """The queue stream of ``task``'s runs of ``priority`` (see ``redis_scripts``)."""
        if priority:
            return f"{self.prefix}queue@{priority}:{task}"
        return self.prefix + "queue:" + task

    async def ensure_group(self, task: str, priority: int = 0) -> None:
        """Create the consumer group of ``task``'s queue of ``priority`` (reading from its
        start) once."""
        key = self.queue_key(task, priority)
        if key in self._groups:
            return
        try:
            await self.client.xgroup_create(key, scripts.GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add(key)

    async def create_run(
        self, run: Run, data: dict[str, Any], *, fresh_id: bool = False
    ) -> tuple[Run, Event | None]:
        await self.retrying(lambda: self.ensure_group(run.task, run.priority))
        at = time.time()
        data_json = encode_json(data, "the queued event")
        args = [
            self.prefix,
            run.id,
            repr(at),
            data_json,
            self.max_queued or 0,
            1,
            self._token(),
            compact_json(_encode_run(run)),
        ]
        reply = await self.write(self._create, args)
        if reply[0] == -1:
            raise QueueFull(self.max_queued or 0, retry_after=1.0)
        if reply[0] == 0:
            return decode_run(reply[1]), None
        first = run.state.value  # the first event: queued, or scheduled
        if reply[2] not in (b"queued", b"scheduled"):  # failed at once by a dependency
            found = await self.get_run(run.id)
            if found is not None:
                return found, Event(run.id, 1, first, data, at, data_json)
        stored = run.copy()
        stored.last_seq = int(reply[1])
        return stored, Event(run.id, 1, first, data, at, data_json)

    async def create_runs(self, runs: Sequence[Run], data: dict[str, Any]) -> list[Run]:
        """All or nothing, in one script: ``QueueFull`` if they would not all fit."""
        if not runs:
            return []
        for task, priority in {(run.task, run.priority) for run in runs}:
            await self.retrying(
                lambda task=task, priority=priority: self.ensure_group(task, priority)  # type: ignore[misc]
            )
        at = time.time()
        data_json = encode_json(data, "the queued event")
        args: list[Any] = [self.prefix, repr(at), data_json, self.max_queued or 0]
        args.extend(compact_json([run.id, *_encode_run(run)]) for run in runs)
        reply = await self.write(self._create_runs, args)
        if reply[0] == -1:
            raise QueueFull(self.max_queued or 0, retry_after=1.0)
        stored = []
        for run in runs:
            snapshot = run.copy()
            snapshot.last_seq = 1
            stored.append(snapshot)
        return stored

    async def append(
        self, run_id: str, type: str, data: Any, data_json: str, *, durable: bool = True
    ) -> Event:
        at = time.time()
        args = [self.prefix, run_id, type, repr(at), data_json, self._token()]
        reply = await self.write(self._append, args)
        if reply[0] == -1:
            raise RunNotFound(run_id)
        if reply[0] == 0:
            raise RunFinished(run_id, RunState(reply[1].decode()))
        return Event(run_id, int(reply[1]), type, data, at, data_json)

    async def append_signal(
        self,
        run_id: str,
        name: str,
        payload: Any,
        payload_json: str,
        *,
        most_of_name: int,
        most: int,
    ) -> Event:
        """Append the ``signal`` event ``payload`` (``{"name", "data"}``), counting it as held
        by the run until its task takes it (``take_signal``); raise ``TooManySignals``, writing
        nothing, when the run holds ``most_of_name`` of ``name`` or ``most`` in all.

        Counted in the run's hash, in the same script as the append: every node sees one count,
        so the caps are exact whichever node the signals come through."""
        at = time.time()
        args = [self.prefix, run_id, "signal", repr(at), payload_json, self._token()]
        args += [name, str(most_of_name), str(most)]
        reply = await self.write(self._append, args)
        if reply[0] == -1:
            raise RunNotFound(run_id)
        if reply[0] == 0:
            raise RunFinished(run_id, RunState(reply[1].decode()))
        if reply[0] == -2:
            raise TooManySignals(run_id, int(reply[1]), name if reply[2] == 1 else None)
        return Event(run_id, int(reply[1]), "signal", payload, at, payload_json)

    def take_signal(self, run_id: str, name: str) -> None:
        """The run's task took a signal of ``name``: it holds one fewer (``append_signal``).

        Handed to the writer now, not awaited: it is sent before any later write of the task
        (its next event sees the count down); a failure leaves the count one too high (the cap
        errs on the safe side)."""
        if self._writer is None or self._closing:
            return
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)
        self._pending.append((self._take_signal, [self.prefix, run_id, name], future))
        self._wake.set()

    async def transition(
        self,
        run_id: str,
        target: RunState,
        event_type: str,
        data: Any,
        *,
        durable: bool = True,
        **fields: Any,
    ) -> tuple[Run, Event] | None:
        at = time.time()
        data_json, encoded = encode_transition(event_type, data, fields)
        args: list[Any] = [
            self.prefix,
            run_id,
            target.value,
            _SOURCES[target.value],
            event_type,
            repr(at),
            data_json,
            1 if target.is_terminal else 0,
            self._token(),
        ]
        for name, value in fields.items():
            args.append(name)
            args.append(encoded[name] if name in encoded else compact_json(value))
        reply = await self.write(self._transition, args)
        if reply[0] == -1:
            raise RunNotFound(run_id)
        if reply[0] in (0, 2):  # not allowed, or a pending cancel request finished it
            return None
        run = decode_run(reply[1])
        return run, Event(run_id, run.last_seq, event_type, data, at, data_json)

    # -- reading ------------------------------------------------------------------------------

    async def get_run(self, run_id: str) -> Run | None:
        flat = await self._read(lambda: self.command("HGETALL", self.run_key(run_id)))
        return decode_run(flat) if flat else None

    def run_key(self, run_id: str) -> str:
        return self.prefix + "run:" + run_id

    async def _get_runs(self, run_ids: Sequence[str]) -> list[Run]:
        if not run_ids:
            return []

        async def fetch() -> list[Any]:
            async with self.client.pipeline(transaction=False) as pipe:
                for run_id in run_ids:
                    pipe.execute_command("HGETALL", self.run_key(run_id))
                return await pipe.execute()

        return [decode_run(flat) for flat in await self._read(fetch) if flat]

    async def list_runs(
        self,
        *,
        state: RunState | None = None,
        task: str | None = None,
        limit: int = 100,
        before: str | None = None,
        parent: str | None = None,
        prefix: str | None = None,
    ) -> list[Run]:
        if parent is not None:  # a parent's children have an index of their own
            key = self.prefix + "children:" + parent
        else:
            key = self.prefix + ("runs" if state is None else f"state:{state.value}")
        filtered = task is not None or state is not None
        upper = "+" if before is None else "(" + before
        lower = "-"
        if prefix is not None:
            lower = "[" + prefix
            end = ids_with_prefix_below(prefix)
            if before is None or end < before:
                upper = "(" + end
        found: list[Run] = []
        while len(found) < limit:
            page = max(limit, _LIST_PAGE) if filtered else limit
            command = ("ZREVRANGEBYLEX", key, upper, lower, "LIMIT", 0, page)
            ids = await self._read(lambda command=command: self.command(*command))  # type: ignore[misc]
            if not ids:
                break
            decoded = [raw.decode() for raw in ids]
            for run in await self._get_runs(decoded):
                if (
                    (state is None or run.state == state)
                    and (task is None or run.task == task)
                    and (parent is None or run.parent_id == parent)
                ):
                    found.append(run)
            if len(ids) < page:
                break
            upper = "(" + decoded[-1]
        return found[:limit]

    async def count_runs(self) -> dict[tuple[str, RunState], int]:
        raw = await self._read(lambda: self.command("HGETALL", self.prefix + "counts"))
        counts: dict[tuple[str, RunState], int] = {}
        for field, value in raw.items():
            state, task_json = field.decode().split("\t", 1)
            if int(value) > 0:
                counts[(json.loads(task_json), RunState(state))] = int(value)
        return counts

    async def read_events(self, run_id: str, after: int = 0, limit: int = 1000) -> list[Event]:
        key = self.prefix + "log:" + run_id
        entries = await self._read(
            lambda: self.command("XRANGE", key, f"{max(after, 0) + 1}-0", "+", "COUNT", limit)
        )
        return _events(run_id, entries)

    async def read_logs(self, run_ids: Sequence[str], limit: int = 1000) -> dict[str, list[Event]]:
        """The first ``limit`` events of each run's log, read in one round trip."""
        if not run_ids:
            return {}

        async def fetch() -> list[Any]:
            async with self.client.pipeline(transaction=False) as pipe:
                for run_id in run_ids:
                    pipe.execute_command("XRANGE", self.prefix + "log:" + run_id, "-", "+",
                                         "COUNT", limit)  # fmt: skip
                return await pipe.execute()

        replies = await self._read(fetch)
        return {
            run_id: _events(run_id, entries)
            for run_id, entries in zip(run_ids, replies, strict=True)
        }

    async def unfinished_runs(self) -> list[Run]:
        ids: set[str] = set()
        for state in (RunState.QUEUED, RunState.RUNNING, RunState.INTERRUPTED):
            key = self.prefix + f"state:{state.value}"
            members = await self._read(lambda key=key: self.command("ZRANGE", key, 0, -1))  # type: ignore[misc]
            ids.update(raw.decode() for raw in members)
        return await self._get_runs(sorted(ids))

    async def prune(self, finished_before: float) -> int:
        total = 0
        while True:
            args = [self.prefix, repr(finished_before), _PRUNE_BATCH]
            deleted = int(await self.write(self._prune, args))
            total += deleted
            if deleted < _PRUNE_BATCH:
                return total

    async def activity(self, window: Window) -> Activity:
        """From the ``finished`` index (scored by finish time) and the unfinished states' sets;
        the runs' times are read a page of runs per script call (so Redis serves other clients
        between pages) and added up here."""
        counter = Tally(window)
        finished = await self._read(
            lambda: self.command(
                "ZRANGEBYSCORE", self.prefix + "finished", repr(window.start), "+inf"
            )
        )
        unfinished: list[bytes] = []
        for state in (RunState.QUEUED, RunState.RUNNING, RunState.INTERRUPTED):
            key = self.prefix + f"state:{state.value}"
            unfinished.extend(
                await self._read(lambda key=key: self.command("ZRANGE", key, 0, -1))  # type: ignore[misc]
            )
        ids = [raw.decode() for raw in (*finished, *unfinished)]
        for start in range(0, len(ids), _ACTIVITY_PAGE):
            for times in await self._read_times(ids[start : start + _ACTIVITY_PAGE]):
                counter.add(times)
        return counter.activity()

    async def _read_times(self, run_ids: Sequence[str]) -> list[RunTimes]:
        values = await self._read(lambda: self._times(args=[self.prefix, *run_ids]))
        width = len(RunTimes._fields)
        present = [
            values[index : index + width]
            for index in range(0, len(values), width)
            if values[index] is not None  # pruned meanwhile
        ]
        # The values are JSON already: the page's as one JSON array, one json.loads (a loads
        # per value cost three times as much as the rest of the read).
        flat = json.loads(b"[" + b",".join(chain.from_iterable(present)) + b"]")
        return [RunTimes(*flat[index : index + width]) for index in range(0, len(flat), width)]

    async def prune_task(
        self,
        task: str,
        *,
        finished_before: float | None = None,
        keep: int | None = None,
        spare: Collection[str] = (),
        limit: int = 1000,
    ) -> int:
        args: list[Any] = [
            self.prefix,
            task,
            "" if finished_before is None else repr(finished_before),
            "" if keep is None else keep,
            limit,
            *spare,
        ]
        return int(await self.write(self._prune_task, args))

    # -- schedules ----------------------------------------------------------------------------

    def _schedule_key(self, name: str) -> str:
        return self.prefix + "schedule:" + name

    async def schedule_state(self, name: str) -> ScheduleState:
        raw = await self._read(lambda: self.command("HGETALL", self._schedule_key(name)))
        paused = raw.get(b"paused")
        tick = raw.get(b"last_tick")
        run = raw.get(b"last_run")
        return ScheduleState(
            name,
            None if paused is None else paused == b"1",
            None if tick is None else float(tick),
            None if run is None else run.decode(),
        )

    async def set_schedule_paused(self, name: str, paused: bool) -> None:
        key = self._schedule_key(name)
        await self.retrying(lambda: self.command("HSET", key, "paused", "1" if paused else "0"))

    async def record_tick(self, name: str, tick: float | None, run_id: str) -> None:
        args = [self.prefix, name, "" if tick is None else repr(tick), run_id]
        await self.write(self._record_tick, args)


def _events(run_id: str, entries: Sequence[Any]) -> list[Event]:
    """The events of an ``XRANGE`` reply of a run's log."""
    found = []
    for entry_id, fields in entries or ():
        text = fields[b"d"].decode()
        found.append(
            Event(
                run_id,
                int(entry_id.split(b"-", 1)[0]),
                fields[b"t"].decode(),
                json.loads(text),
                float(fields[b"a"]),
                text,
            )
        )
    return found


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a write's outcome as seen: a caller cancelled meanwhile will not look at it."""
    if not future.cancelled():
        future.exception()
