"""The two records everything else passes around: ``Run`` and ``Event``.

Plain slotted dataclasses: they are created for every run and every event, so they stay cheap.
Times are Unix timestamps in seconds (``float``), the same in Python and in JSON.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from .errors import NotSerializable
from .events import TERMINAL_EVENT_TYPES
from .states import RunState


def _refuse(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# json's C encoder, made once: JSONEncoder.encode builds a new one per call, which costs more than
# encoding a small event. Same output as json.dumps(separators=(",", ":"), allow_nan=False);
# without the circular-reference check (`markers=None`) a cycle raises RecursionError instead.
_encode_chunks = json.encoder.c_make_encoder(  # type: ignore[attr-defined]  # CPython's _json
    None, _refuse, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, False
)


def compact_json(value: Any) -> str:
    """``value`` as compact JSON. Raises TypeError (not JSON data), ValueError naming where in
    ``value`` it is (NaN, infinity, an integer of more than 4,300 digits, a string with a lone
    surrogate: what could not be read back) or RecursionError (a cycle)."""
    try:
        encoded: str = "".join(_encode_chunks(value, 0))
    except ValueError:
        found = _first(value, _not_a_json_number)
        if found is None:
            raise
        where, number = found
        shown = f"{number!r}" if isinstance(number, float) else "an integer of over 4,300 digits"
        raise ValueError(f"{where} is {shown}, which is not a JSON number") from None
    # ASCII output escapes every non-ASCII character; surrogates, paired or not, as \udXXX.
    if "\\ud" in encoded and (place := lone_surrogate(value)) is not None:
        raise ValueError(f"{place} holds a lone surrogate, which is not Unicode text")
    return encoded


def encode_json(value: Any, what: str) -> str:
    """``value`` as compact JSON, or ``NotSerializable`` naming ``what`` could not be stored."""
    try:
        return compact_json(value)
    except RecursionError:
        raise NotSerializable(f"{what} is not JSON-serialisable: it contains itself") from None
    except (TypeError, ValueError) as exc:
        raise NotSerializable(f"{what} is not JSON-serialisable: {exc}") from None


def _name(key: Any) -> str:
    return ascii(key)[1:-1] if isinstance(key, str) else str(key)


def _not_a_json_number(item: Any) -> bool:
    if isinstance(item, float):
        return not math.isfinite(item)
    return isinstance(item, int) and not isinstance(item, bool) and item.bit_length() > 14_284


def _not_text(item: Any) -> bool:
    if not isinstance(item, str) or item.isascii():
        return False
    try:
        item.encode()
    except UnicodeEncodeError:
        return True
    return False


def _first(value: Any, bad: Any, path: str = "") -> tuple[str, Any] | None:
    """The first place in ``value`` (``args.items[2]``: keys included) where ``bad(item)``."""
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if bad(item):
            return where or "the value", item
        if isinstance(item, dict):
            for key, sub in item.items():
                name = f"{where}.{_name(key)}" if where else _name(key)
                if bad(key):
                    return name, key
                stack.append((name, sub))
        elif isinstance(item, list | tuple):
            stack.extend((f"{where}[{index}]", sub) for index, sub in enumerate(item))
    return None


def lone_surrogate(value: Any, path: str = "") -> str | None:
    """Where in ``value`` a string (or key) holds a lone surrogate (``args.message``), or None.

    Such a string is not Unicode text: JSON escapes it, but nothing can encode it as UTF-8, so a
    value holding one could be stored and never sent back."""
    found = _first(value, _not_text, path)
    return None if found is None else found[0]


def text(value: str) -> str:
    """``value`` with any lone surrogate written as its escape (``\\ud800``): for messages, such
    as an exception's, that are stored and must stay Unicode text."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode()
    return value


class _NotANumber:
    """What ``strict_loads`` reads for a number no store can write back (found, then refused)."""

    __slots__ = ("literal",)

    def __init__(self, literal: str) -> None:
        self.literal = literal


def _float(literal: str) -> float | _NotANumber:
    number = float(literal)
    return number if math.isfinite(number) else _NotANumber(literal)


def _int(literal: str) -> int | _NotANumber:
    return int(literal) if len(literal.lstrip("-")) <= 4300 else _NotANumber(literal[:20] + "...")


def strict_loads(data: str | bytes) -> Any:
    """Parse JSON the way the stores write it back: no ``NaN``/``Infinity``, no number that
    overflows a float (``1e400``), no integer of over 4,300 digits, no lone surrogate (``\\ud800``).

    Raises ``ValueError`` naming the place (``args.x: NaN is not a JSON number``), and
    ``json.JSONDecodeError`` (a ``ValueError`` too) for bad syntax.
    """
    value = json.loads(data, parse_constant=_NotANumber, parse_float=_float, parse_int=_int)
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, _NotANumber):
            raise ValueError(
                f"{where or 'the value'}: {item.literal} is not a number JSON can hold (no NaN, no"
                " Infinity, at most about 1.8e308, integers of at most 4,300 digits)"
            )
        if isinstance(item, dict):
            stack.extend((f"{where}.{_name(k)}" if where else _name(k), v) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((f"{where}[{index}]", sub) for index, sub in enumerate(item))
    raw = data if isinstance(data, str) else data.decode("utf-8", "replace")
    if "\\u" in raw and (found := lone_surrogate(value)) is not None:
        raise ValueError(f"{found}: holds a lone surrogate, which is not Unicode text")
    return value


@dataclass(slots=True)
class Run:
    """One execution of a task with JSON arguments, as stored.

    ``attempt`` counts started attempts (0 while it never started); ``error`` is
    ``{"type", "message"}`` for failed, cancelled and timed-out runs; ``last_seq`` is the ``seq``
    of the newest event in its log. ``parent_id`` is the run that spawned it (``ctx.spawn``,
    ``ctx.map``); ``after`` the runs it waits for before it may start, and ``after_policy``
    what a dependency that did not complete does to it: ``"fail"`` it, or run it ``"always"``.
    ``retry_of`` is the run this one retries (``App.retry``): same task, same arguments.
    ``run_at`` is the Unix time a run submitted with a start time may start (it is
    ``scheduled`` until then); ``priority`` 0 to 9, higher first (``policies.rank``).
    ``waiting_for`` says why a queued run does not start yet, when the engine knows
    (``"rate_limit"``, ``"concurrency"``, ``"dependencies"``); it is not a stored field on every
    store: ``App.get`` fills it in. ``owner`` names who submitted it (``taskcast.owners``):
    access control shows a run only to its owner unless the viewer may see all; children and
    retries keep their run's owner. ``traceparent`` is the W3C trace context the run continues
    (``taskcast.tracing``), stored so that whichever process runs it joins the same trace.
    """

    id: str
    task: str
    args: dict[str, Any]
    state: RunState = RunState.QUEUED
    attempt: int = 0
    max_attempts: int = 1
    timeout: float | None = None
    result: Any = None
    error: dict[str, Any] | None = None
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    not_before: float | None = None
    last_seq: int = 0
    parent_id: str | None = None
    after: list[str] = field(default_factory=list)
    after_policy: str = "fail"
    retry_of: str | None = None
    run_at: float | None = None
    priority: int = 0
    waiting_for: str | None = None
    not_after: float | None = None
    owner: str | None = None
    traceparent: str | None = None

    @property
    def is_finished(self) -> bool:
        """True once the run reached a terminal state."""
        return self.state.is_terminal

    def copy(self) -> Run:
        """A shallow copy (``args``, ``result``, ``error`` and ``after`` are shared: treat them as
        frozen)."""
        # Positional on purpose: dataclasses.replace costs ~8x more, and this runs per write.
        return Run(
            self.id,
            self.task,
            self.args,
            self.state,
            self.attempt,
            self.max_attempts,
            self.timeout,
            self.result,
            self.error,
            self.created_at,
            self.started_at,
            self.finished_at,
            self.not_before,
            self.last_seq,
            self.parent_id,
            self.after,
            self.after_policy,
            self.retry_of,
            self.run_at,
            self.priority,
            self.waiting_for,
            self.not_after,
            self.owner,
            self.traceparent,
        )

    def to_dict(self) -> dict[str, Any]:
        """The run as JSON-ready data (the shape of ``GET /runs/{id}``)."""
        return {
            "id": self.id,
            "task": self.task,
            "args": self.args,
            "state": self.state.value,
            "attempt": self.attempt,
            "max_attempts": self.max_attempts,
            "timeout": self.timeout,
            "result": self.result,
            "error": self.error,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "last_seq": self.last_seq,
            "parent_id": self.parent_id,
            "after": self.after,
            "after_policy": self.after_policy,
            "retry_of": self.retry_of,
            "run_at": self.run_at,
            "priority": self.priority,
            "waiting_for": self.waiting_for,
            "owner": self.owner,
            "traceparent": self.traceparent,
        }


_ONE_LINE = str.maketrans({"\r": "\\r", "\n": "\\n", "\0": "\\0"})
"""What an SSE field must not hold (CR and LF end a line; NUL voids an ``id``), escaped."""


@dataclass(slots=True)
class Event:
    """One entry of a run's log: ``seq`` is 1, 2, 3 ... per run, without gaps."""

    run_id: str
    seq: int
    type: str
    data: Any
    at: float
    _json: str | None = field(default=None, repr=False, compare=False)
    _frame: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def is_terminal(self) -> bool:
        """True for the one event that ends a run's log (completed, failed, ...)."""
        return self.type in TERMINAL_EVENT_TYPES

    def data_json(self) -> str:
        """``data`` encoded as compact JSON, once per event however many watchers send it."""
        if self._json is None:
            self._json = compact_json(self.data)
        return self._json

    def sse_frame(self) -> bytes:
        """The event as one Server-Sent Event: ``id``, ``event``, ``at`` and ``data`` lines.

        Encoded once per event, however many streams send it (a reconnect storm replays the
        same pages to every client). ``data`` is the JSON above: it holds no newline, so it is
        always one line. ``at`` is the event's time as ``repr`` writes it, so a client reads back
        the very same float. The type is written with any CR, LF or NUL escaped (``\\n``):
        the doors refuse such types (``taskcast.names``), but whatever wrote this event, no
        value may end its line early and forge fields or whole events after it.
        """
        if self._frame is None:
            kind = self.type.translate(_ONE_LINE)
            self._frame = (
                f"id: {self.seq}\nevent: {kind}\nat: {self.at!r}\ndata: {self.data_json()}\n\n"
            ).encode()
        return self._frame

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "seq": self.seq,
            "type": self.type,
            "data": self.data,
            "at": self.at,
        }


@dataclass(frozen=True, slots=True)
class CancelAnswer:
    """What a request to cancel a run came to (``App.request_cancel``).

    ``accepted``: the run will end ``cancelled``. Otherwise ``found`` says whether the run
    exists, and ``state`` is the state the engine found it in when it knows it: terminal for a
    finished run; not terminal (or ``None``) for one whose end is being written right now.
    """

    accepted: bool
    found: bool = True
    state: RunState | None = None


@dataclass(slots=True)
class ScheduleState:
    """What the store keeps of a schedule between ticks and across processes: whether it is
    ``paused`` (None: as its ``enabled`` says), its latest tick (Unix time) and that tick's
    run."""

    name: str
    paused: bool | None = None
    last_tick: float | None = None
    last_run: str | None = None
