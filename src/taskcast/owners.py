"""Who submitted a run: its ``owner``, one rule checked at every door.

An owner is 1 to 128 characters from ASCII letters, digits and ``._~:@+-``: a user's id or
name (Django's usernames and e-mail addresses fit), safe in a URL query, a header and a log
line without escaping. Access control (``taskcast.server.access``) shows a run only to its
owner unless the viewer may see every run.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import InvalidRequest

OWNER_PATTERN = r"^[A-Za-z0-9._~:@+-]{1,128}$"
"""The rule as a regular expression (OpenAPI documents it for ``owner``)."""

OWNER_CHARACTERS = "1 to 128 letters, digits and ._~:@+-"
"""The rule in words, as error messages say it."""

_OWNER = re.compile(OWNER_PATTERN.replace("$", r"\Z"))


def is_owner(value: object) -> bool:
    """True if ``value`` is a string an owner may be."""
    return isinstance(value, str) and _OWNER.match(value) is not None


def check_owner(value: Any) -> str | None:
    """``value`` if it is None or an owner, else ``InvalidRequest`` naming ``owner``."""
    if value is None or is_owner(value):
        return None if value is None else str(value)
    shown = repr(value) if isinstance(value, str) and len(value) <= 140 else type(value).__name__
    raise InvalidRequest(f"owner must be {OWNER_CHARACTERS}, got {shown}", param="owner")
