"""The names a caller chooses for events and signals: one rule, checked at every door.

An event type (``ctx.emit(type, ...)``) or a signal name (``app.signal(run, name)``,
``POST /runs/{id}/signals/{name}``, ``ctx.signal(name)``) is 1 to 64 characters from ASCII
letters, digits and ``._:-``, and not ``.`` or ``..`` (which URLs drop as path segments).
Such a name needs no escaping wherever it goes: an SSE ``event:`` line, where a CR or LF would
end the line and let the rest of the name forge fields and whole events; a URL path segment; a
metric label; a log line. Event types the engine writes (``events.RESERVED_EVENT_TYPES``) are
refused for tasks.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import InvalidRequest
from .events import RESERVED_EVENT_TYPES

MAX_NAME_LENGTH = 64
"""The longest event type or signal name, in characters."""

NAME_CHARACTERS = "letters, digits and ._:- (not . or .. alone)"
"""The rule in words, as error messages and the docs say it."""

NAME_PATTERN = r"^(?:[A-Za-z0-9._:-]{3,64}|[A-Za-z0-9_:-][A-Za-z0-9._:-]?|\.[A-Za-z0-9_:-])$"
"""The rule as a regular expression (OpenAPI documents it for ``/signals/{name}``): 3 to 64
characters, or 1 or 2 that are not all dots. No look-ahead: pydantic's engine has none."""

_NAME = re.compile(NAME_PATTERN.replace("$", r"\Z"))


def is_name(value: object) -> bool:
    """True if ``value`` is a string an event type or a signal name may be."""
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


def name_error(value: object, what: str) -> str | None:
    """Why ``value`` is not a name (``what`` says whose, in the message), or None if it is."""
    if is_name(value):
        return None
    return (
        f"{what} must be 1 to {MAX_NAME_LENGTH} characters from {NAME_CHARACTERS},"
        f" got {_shown(value)}"
    )


def check_event_type(value: Any) -> str:
    """``value`` if a task may emit events of that type, else ``InvalidRequest`` (param
    ``type``): not a name, or a type the engine writes (``started``, ``completed``...)."""
    problem = name_error(value, "an event type")
    if problem is not None:
        raise InvalidRequest(problem, param="type")
    if value in RESERVED_EVENT_TYPES:
        raise InvalidRequest(
            f"event type {value!r} is reserved for the engine (reserved:"
            f" {', '.join(sorted(RESERVED_EVENT_TYPES))}); choose another name",
            param="type",
        )
    return str(value)


def check_signal_name(value: Any) -> str:
    """``value`` if it is a signal name, else ``InvalidRequest`` (param ``name``)."""
    problem = name_error(value, "a signal name")
    if problem is not None:
        raise InvalidRequest(problem, param="name")
    return str(value)


def _shown(value: object) -> str:
    # ``ascii``: the message must stay one printable line, whatever the value holds.
    shown = ascii(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."
