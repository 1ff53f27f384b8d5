"""Following a run's event stream across broken connections, without I/O.

``Follower`` is the state of one ``events()`` call: the cursor (the last ``seq`` yielded), the
server's ``retry:`` hint, the failed reconnects in a row, and the decoder of the current
connection. The clients do the I/O (``AsyncClient`` awaits, ``Client`` blocks) and ask it what to
send, what the bytes mean and how long to wait before reconnecting, so the resume logic exists
once.

Why no gap and no duplicate: every (re)connect sends ``Last-Event-ID: <cursor>``, the server
replays from ``cursor + 1``, and an event only counts (moves the cursor) once its block is
complete; a block cut mid-way by a broken connection is dropped with the connection's decoder and
replayed whole. Events at or below the cursor are skipped should a server ever repeat one.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from ..cursors import parse_seq
from ..errors import (
    QueueFull,
    ServerError,
    ShuttingDown,
    StreamLost,
    TaskcastError,
)
from ..models import Event
from .calls import run_path
from .errors import connection_failed, error_from_response

DEFAULT_RETRY = 2.0
"""Seconds before the first reconnect until the server sends its ``retry:`` hint."""

_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """How an event stream reconnects: at most ``attempts`` failed reconnects in a row (then
    ``StreamLost``), waiting the server's ``retry:`` hint doubled per failure, capped at
    ``max_delay`` seconds, with jitter (each wait is uniform in [delay/2, delay])."""

    attempts: int = 10
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 0:
            raise ValueError(f"reconnects must be >= 0, got {self.attempts}")
        if not self.max_delay > 0:  # also refuses NaN
            raise ValueError(f"max_reconnect_delay must be > 0 seconds, got {self.max_delay}")


@dataclass(slots=True)
class _Block:
    """The fields of the SSE event being read."""

    id: str | None = None
    type: str = "message"
    at: str | None = None
    data: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One complete Server-Sent Event, its fields as text."""

    id: str | None
    type: str
    at: str | None
    data: str


class SSEDecoder:
    """Server-Sent Events from text fed as it arrives (any split, ``\\n``, ``\\r\\n`` or ``\\r``).

    Yields an event only once its blank line arrived, so an event cut by a broken connection is
    never reported. Keeps the last ``retry:`` hint (milliseconds) in ``retry_ms``. Besides the
    standard fields it reads ``at``, the event's time, which taskcast servers send.
    """

    def __init__(self) -> None:
        self.retry_ms: int | None = None
        self._rest = ""
        self._block = _Block()

    def feed(self, text: str) -> list[SSEEvent]:
        text = self._rest + text
        held = ""
        if text.endswith("\r"):  # maybe the first half of \r\n: wait for what follows
            text, held = text[:-1], "\r"
        *lines, rest = _LINE_END.split(text)
        self._rest = rest + held
        events = []
        for line in lines:
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            block, self._block = self._block, _Block()
            if not block.data:  # the standard: no data, no event
                return None
            return SSEEvent(block.id, block.type, block.at, "\n".join(block.data))
        if line.startswith(":"):  # a comment: keep-alive
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._block.data.append(value)
        elif name == "id":
            self._block.id = value
        elif name == "event":
            self._block.type = value
        elif name == "at":
            self._block.at = value
        elif name == "retry" and (retry_ms := parse_seq(value)) is not None:
            self.retry_ms = retry_ms
        return None


_RETRYABLE_ANSWERS = (ShuttingDown, QueueFull)


class Follower:
    """The state of one run's event stream across connections (see the module docstring).

    The client's loop: send a GET to ``path`` with ``headers()``; hand the answer to
    ``opened()``; hand each piece of body text to ``received()`` and yield what it returns until
    ``done``; when the connection ends or fails without ``done``, sleep ``reconnect_delay()``
    (which raises when it is time to give up) and start again.
    """

    def __init__(
        self,
        url: str,
        run_id: str,
        after: int,
        policy: ReconnectPolicy,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        if after < 0:
            raise ValueError(f"after must be a seq >= 0, got {after}")
        self.run_id = run_id
        self.path = f"{run_path(run_id)}/events"
        self.last_seq = after
        self.done = False
        self.failures = 0
        self.retry = DEFAULT_RETRY
        self._url = url
        self._policy = policy
        self._uniform = uniform
        self._streamed = False
        self._decoder = SSEDecoder()

    def headers(self) -> dict[str, str]:
        """The headers of the next (re)connect: resume after the last event yielded.

        ``Connection: close``: a stream's connection is not handed back to the pool (the server
        closes it after the stream, so the next request could otherwise be sent on a connection
        being closed).
        """
        return {
            "Accept": "text/event-stream",
            "Cache-Control": "no-store",
            "Connection": "close",
            "Last-Event-ID": str(self.last_seq),
        }

    def opened(self, response: httpx.Response) -> None:
        """Take the answer to a (re)connect (an error's body must have been read).

        A 204 means nothing is left to send: ``done``. Raises the server's typed error for an
        error answer, ``ServerError`` for an answer that is not an event stream.
        """
        if response.status_code == 204:
            self.done = True
            return
        if response.is_error:
            raise error_from_response(response)
        content_type = response.headers.get("content-type", "")
        if not content_type.startswith("text/event-stream"):
            raise ServerError(
                f"GET {self.path} answered {content_type or 'no content type'}, not an event"
                " stream; is this a taskcast server?",
                status=response.status_code,
            )
        self._streamed = True
        self._decoder = SSEDecoder()  # what the last connection left half-read is dropped

    def received(self, text: str) -> list[Event]:
        """The new complete events in ``text``; none from the terminal event on (``done``).

        Raises ``ServerError`` for an event without an integer id (not a taskcast stream).
        """
        events: list[Event] = []
        if self.done:
            return events
        for raw in self._decoder.feed(text):
            if raw.id is None and raw.type == "shutdown":
                # A stopping server cut its replay short: the reconnect resumes after
                # ``last_seq``, and the run's own ``shutdown`` event (if any) is in its log.
                continue
            event = self._event(raw)
            if event.seq <= self.last_seq:
                continue
            events.append(event)
            self.last_seq = event.seq
            self.failures = 0
            if event.is_terminal:
                self.done = True
                break
        if self._decoder.retry_ms is not None:
            self.retry = self._decoder.retry_ms / 1000
        return events

    def _event(self, raw: SSEEvent) -> Event:
        seq = None if raw.id is None else parse_seq(raw.id)
        if seq is None:
            raise ServerError(
                f"the stream of run {self.run_id!r} sent an event without a seq id ({raw.id!r})",
                status=200,
            )
        try:
            at = float(raw.at) if raw.at is not None else 0.0
            data = json.loads(raw.data) if raw.data else None
        except ValueError as error:
            raise ServerError(
                f"the stream of run {self.run_id!r} sent event {raw.id} that is not JSON: {error}",
                status=200,
            ) from None
        return Event(self.run_id, seq, raw.type, data, at)

    def reconnect_delay(self, failure: Exception | None) -> float:
        """Seconds to wait before reconnecting after the connection ended without ``done``:
        ``failure`` is what broke it (None: the server closed the stream, e.g. at shutdown).

        Raises ``failure`` itself when reconnecting cannot help (an unknown run, a refused
        token...), ``ConnectionFailed`` when the very first connect failed, and ``StreamLost``
        after ``attempts`` failed reconnects in a row.
        """
        if isinstance(failure, TaskcastError) and not isinstance(failure, _RETRYABLE_ANSWERS):
            if not (isinstance(failure, ServerError) and failure.status >= 500):
                raise failure
        if not self._streamed:  # the first connect: fail fast, as every other request does
            if isinstance(failure, httpx.TransportError):
                raise connection_failed(self._url, failure) from failure
            if failure is not None:
                raise failure
        self.failures += 1
        if self.failures > self._policy.attempts:
            reason = describe(failure)
            lost = StreamLost(self.run_id, self.last_seq, self._policy.attempts, reason)
            raise lost from failure
        delay = min(self._policy.max_delay, self.retry * 2 ** (self.failures - 1))
        delay = self._uniform(delay / 2, delay)
        if isinstance(failure, QueueFull):
            delay = max(delay, failure.retry_after)
        return delay


def describe(failure: Exception | None) -> str:
    """A failure in a few words, for ``StreamLost``."""
    if failure is None:
        return "the server closed the stream"
    if isinstance(failure, TaskcastError):
        return str(failure)
    return f"{type(failure).__name__}: {failure}" if str(failure) else type(failure).__name__
