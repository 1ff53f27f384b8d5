"""Run ids as people type them: any unique prefix of an id stands for the whole id.

Ids are ULIDs (26 Crockford base32 characters, sortable), so the runs whose ids start with a
prefix are those below ``prefix + "ZZ…"``: one ``GET /runs?before=...&limit=2``
tells whether a prefix names no run, one run or several.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from ..client import AsyncClient
from ..errors import InvalidRequest, RunNotFound

ID_LENGTH = 26
ALPHABET = frozenset("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
SHORT_LENGTH = 12
"""Characters shown by default: the 10 of the creation millisecond and 2 random ones."""


async def resolve(client: AsyncClient, text: str) -> str:
    """The full id of the one run whose id starts with ``text`` (case-insensitive).

    A full-length id is returned as given (the server says if it is unknown). Raises
    ``RunNotFound`` when no run starts with ``text``, and ``InvalidRequest`` (naming two of the
    runs) when several do.
    """
    if len(text) >= ID_LENGTH:
        return text
    prefix = text.upper()
    if not prefix or not set(prefix) <= ALPHABET:
        raise RunNotFound(text)  # not the start of any id: no need to ask the server
    highest = prefix + "Z" * (ID_LENGTH - len(prefix))
    below = await client.runs(before=highest, limit=2)
    # (The one id this cannot return, the all-"Z" one itself, has 80 random bits of all ones.)
    matches = [run.id for run in below if run.id.startswith(prefix)]
    if not matches:
        raise RunNotFound(text)
    if len(matches) > 1:
        raise InvalidRequest(
            f"{text!r} is the start of several run ids ({matches[0]}, {matches[1]}, ...);"
            " type more of the id"
        )
    return matches[0]


async def resolve_all(client: AsyncClient, texts: Sequence[str]) -> list[str]:
    """``resolve`` for each of ``texts``, in order."""
    return [await resolve(client, text) for text in texts]


def shortest_unique(ids: Sequence[str], minimum: int = SHORT_LENGTH) -> int:
    """The shortest prefix length (at least ``minimum``) that tells ``ids`` apart.

    Ids of one burst differ only in their last characters, so this may be the full length;
    a child run's id (``PARENT.0``) is its parent's plus a suffix, so it may be longer.
    """
    length = minimum
    ordered = sorted(set(ids))
    for lower, upper in itertools.pairwise(ordered):
        common = next(
            (i for i, (a, b) in enumerate(zip(lower, upper, strict=False)) if a != b), len(lower)
        )
        length = max(length, common + 1)
    return min(length, max((len(run_id) for run_id in ids), default=ID_LENGTH))
