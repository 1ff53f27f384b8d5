"""Stores: where runs and event logs live. ``store_from_url(url)`` picks one by URL scheme."""

from __future__ import annotations

from ..errors import StoreError
from .base import Store
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = ["MemoryStore", "SQLiteStore", "Store", "store_from_url"]


def store_from_url(url: str) -> Store:
    """The store for ``url``: ``memory://``, ``sqlite:///PATH`` (``sqlite:////abs/path``),
    ``redis://HOST:PORT/DB`` (redis-py is loaded only then).

    Raises ``StoreError`` naming the accepted forms for anything else. The store is not opened.
    """
    if url.startswith("memory://"):
        return MemoryStore(url)
    if url.startswith("sqlite://"):
        return SQLiteStore(url)
    if url.startswith(("redis://", "rediss://")):
        from .redis import RedisStore

        return RedisStore(url)
    raise StoreError(
        f"cannot open store {url!r}: use memory://, sqlite:///relative/path.db, "
        "sqlite:////absolute/path.db or redis://HOST:PORT/DB"
    )
