"""Shared resources: async pools tasks borrow from (``ctx.resource("db")``), and a shared httpx
client (``ctx.http``). See docs/semantics.md, "Shared resources".

A ``Pool`` makes at most ``max_size`` items with ``create()``; a borrower gets an idle one
(checked with ``validate`` first, if given), a new one while there is room, or waits in line:
waiters are served strictly in arrival order, each returned item handed to the oldest waiter.
A borrower that is cancelled, times out or raises gives its item back (the return is
synchronous, so a cancel cannot skip it). ``close()`` (at app shutdown) closes idle items at once,
borrowed ones when they come back, and refuses new borrowers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, TypeVar

import httpx

from .errors import TaskcastError

logger = logging.getLogger("taskcast")

_T = TypeVar("_T")


class ResourceError(TaskcastError):
    """A resource cannot be borrowed: unknown name, pool closed, or no item within the timeout."""

    code = "resource_error"


class ResourceTimeout(ResourceError, TimeoutError):
    """No item of the pool was free within the acquisition timeout."""

    code = "resource_timeout"


class Pool(Generic[_T]):
    """An async pool of items made by ``create`` and closed by ``close`` (see module docstring).

    ``validate(item)`` (optional) is awaited before an idle item is lent; a false answer (or an
    exception) closes that item and the borrower gets another. ``timeout``: default seconds a
    borrower waits for an item (``None``: for ever).
    """

    def __init__(
        self,
        name: str,
        create: Callable[[], Awaitable[_T]],
        close: Callable[[_T], Awaitable[Any]],
        *,
        validate: Callable[[_T], Awaitable[bool]] | None = None,
        max_size: int = 10,
        timeout: float | None = 30.0,
    ) -> None:
        if max_size < 1:
            raise ValueError(f"max_size of resource {name!r} must be >= 1, got {max_size}")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout of resource {name!r} must be > 0 seconds, got {timeout}")
        self.name = name
        self.max_size = max_size
        self.timeout = timeout
        self._create = create
        self._close = close
        self._validate = validate
        self._idle: deque[_T] = deque()
        self._waiters: deque[asyncio.Future[_T | None]] = deque()
        self.size = 0
        """Items that exist: idle, lent, or being created."""
        self.closed = False
        self._closing: list[_T] = []  # returned after close(), to be closed
        self._closer: asyncio.Event | None = None

    # -- state at a glance ---------------------------------------------------------------------

    @property
    def idle_count(self) -> int:
        return len(self._idle)

    @property
    def borrowed_count(self) -> int:
        """Items lent out (or being created for a borrower)."""
        return self.size - len(self._idle)

    @property
    def waiting_count(self) -> int:
        return sum(1 for waiter in self._waiters if not waiter.done())

    # -- borrowing -----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def borrow(self, timeout: float | None = None) -> AsyncIterator[_T]:
        """Lend an item for the ``async with`` block, and take it back however the block ends.

        Raises ``ResourceTimeout`` after ``timeout`` seconds (default: the pool's), or
        ``ResourceError`` if the pool is closed; whatever ``create`` or ``validate`` raise.
        """
        item = await self.acquire(self.timeout if timeout is None else timeout)
        try:
            yield item
        finally:
            self.release(item)

    async def acquire(self, timeout: float | None) -> _T:
        """Take an item (prefer ``borrow``); give it back with ``release``. See ``borrow``."""
        try:
            async with asyncio.timeout(timeout):
                item = await self._take()
                if item is not None and await self._still_good(item):
                    return item
                # Room to make one: there was, or the stale item's place is ours now.
                return await self._make()
        except TimeoutError:
            raise ResourceTimeout(
                f"no {self.name!r} resource was free within {timeout:g} s (max_size"
                f" {self.max_size}, {self.waiting_count} waiting); raise max_size or the timeout"
            ) from None

    async def _take(self) -> _T | None:
        """An idle item, or ``None`` when there is room to make one; else wait in line."""
        if self.closed:
            raise ResourceError(f"resource {self.name!r} is closed (the app is shutting down)")
        if not self._waiters:
            if self._idle:
                return self._idle.popleft()
            if self.size < self.max_size:
                self.size += 1  # reserved before any await: the room cannot be taken twice
                return None
        waiter: asyncio.Future[_T | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                served = waiter.result()  # served just as we gave up: pass it on
                if served is None:
                    self._free_room()
                else:
                    self._hand_back(served)
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    async def _make(self) -> _T:
        """Create an item in the room reserved by ``_take``; free the room if that fails."""
        try:
            return await self._create()
        except BaseException:
            self._free_room()
            raise

    def _free_room(self) -> None:
        self.size -= 1
        self._hand_back(None)

    async def _still_good(self, item: _T) -> bool:
        """Validate an idle item; a bad one is closed and its room kept for the borrower."""
        if self._validate is None:
            return True
        try:
            good = await self._validate(item)
        except asyncio.CancelledError:
            self.release(item)
            raise
        except Exception:
            logger.warning("resource %r: validate raised; closing the item", self.name)
            good = False
        if not good:
            try:
                await self._close_quietly(item)
            except BaseException:
                self._free_room()
                raise
        return bool(good)

    def release(self, item: _T) -> None:
        """Give an item back: to the oldest waiter, to the idle list, or closed if the pool is.

        Synchronous on purpose: it runs in ``finally`` blocks of cancelled borrowers.
        """
        if self.closed:
            self.size -= 1
            self._closing.append(item)
            self._wake_closer()
            return
        self._hand_back(item)

    def _hand_back(self, item: _T | None) -> None:
        """Give ``item`` (or, with ``None``, the room for a new one) to the oldest live waiter."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                if item is None:
                    self.size += 1  # the waiter makes a new one in that room
                waiter.set_result(item)
                return
        if item is not None:
            self._idle.append(item)

    # -- closing -------------------------------------------------------------------------------

    def _wake_closer(self) -> None:
        if self._closer is not None:
            self._closer.set()

    async def close(self, timeout: float = 5.0) -> None:
        """Refuse new borrowers, close idle items, and wait up to ``timeout`` seconds for lent
        ones to come back (closing each). Items still lent after that are logged and left."""
        if self.closed:
            return
        self.closed = True
        self._closing = list(self._idle)
        self.size -= len(self._idle)
        self._idle.clear()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(ResourceError(f"resource {self.name!r} was closed"))
        self._closer = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while True:
                    while self._closing:
                        await self._close_quietly(self._closing.pop())
                    if self.size <= 0:
                        break
                    self._closer.clear()
                    await self._closer.wait()
        if self.size > 0:
            logger.warning("resource %r: %d item(s) still lent at shutdown", self.name, self.size)

    async def _close_quietly(self, item: _T) -> None:
        try:
            await self._close(item)
        except Exception:
            logger.exception("resource %r: closing an item failed", self.name)


class Resources:
    """The app's named pools and its shared ``httpx.AsyncClient`` (made on first use)."""

    def __init__(self) -> None:
        self.pools: dict[str, Pool[Any]] = {}
        self._http: httpx.AsyncClient | None = None
        self.closed = False

    def add(self, pool: Pool[Any]) -> None:
        """Register ``pool``; ``ValueError`` if its name is taken."""
        if pool.name in self.pools:
            raise ValueError(f"a resource named {pool.name!r} is already registered")
        self.pools[pool.name] = pool

    def pool(self, name: str) -> Pool[Any]:
        """The pool ``name``, or ``ResourceError`` listing the registered names."""
        try:
            return self.pools[name]
        except KeyError:
            known = ", ".join(sorted(self.pools)) or "none"
            raise ResourceError(
                f"no resource named {name!r}; registered resources: {known}"
                " (register one with app.resource(name, create, close))"
            ) from None

    @property
    def http(self) -> httpx.AsyncClient:
        """The shared client (connection pool, follows redirects), closed at shutdown."""
        if self.closed:
            raise ResourceError("the shared HTTP client is closed (the app is shutting down)")
        if self._http is None:
            self._http = httpx.AsyncClient(follow_redirects=True, timeout=httpx.Timeout(30.0))
        return self._http

    async def close(self, timeout: float = 5.0) -> None:
        """Close every pool (see ``Pool.close``) and the shared client. Idempotent."""
        if self.closed:
            return
        self.closed = True
        for pool in self.pools.values():
            await pool.close(timeout)
        if self._http is not None:
            await self._http.aclose()
            self._http = None
