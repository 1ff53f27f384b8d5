"""Fault injection into awaited calls, chosen by a seed so a failure replays.

A :class:`Faults` plan wraps chosen async callables (``faults.inject(client,
"fetch", raises=ConnectionError)``). On each call it draws from its seeded
random generator whether to let the call through, raise, or delay it. The
draws happen in call order, so a deterministic program (one schedule, virtual
time) sees the same faults at the same calls for the same seed.

In pytest, the ``faults`` fixture is seeded by ``--taskcast-seed``, else by
the test's schedule seed (``@pytest.mark.schedules``), else 0; a failing test
prints the seed and every fault injected.
"""

from __future__ import annotations

import asyncio
import functools
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class InjectedFault:
    """One fault: the *call* number (1-based, over all wrapped calls), where, and what."""

    call: int
    target: str
    action: str

    def __str__(self) -> str:
        return f"call #{self.call} to {self.target}: {self.action}"


class Faults:
    """A seeded plan of faults for the async callables it wraps.

    Use as a context manager (or call :meth:`restore`) to undo
    :meth:`inject`. Raises TypeError if *seed* is not an int.
    """

    def __init__(self, seed: int = 0) -> None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"seed must be an int, got {seed!r}")
        self.seed = seed
        self.calls = 0
        self.injected: list[InjectedFault] = []
        self._rng = random.Random(seed)
        self._patched: list[tuple[object, str, Any]] = []

    def wrap(
        self,
        function: Callable[..., Awaitable[T]],
        *,
        raises: BaseException | type[BaseException] | None = None,
        delay: float | tuple[float, float] = 0.0,
        probability: float = 0.3,
        name: str | None = None,
    ) -> Callable[..., Awaitable[T]]:
        """Return *function* wrapped so each call may fail or be delayed.

        With *probability* a call is faulted: it raises *raises* (an
        exception instance or class) or sleeps for *delay* seconds (a number,
        or a ``(low, high)`` range drawn from) before running; with both
        given, the seed picks one. Delays use ``asyncio.sleep``, so under
        virtual time they cost nothing.

        Raises ValueError if *probability* is not in [0, 1], if a delay is
        negative or not finite, or if neither *raises* nor *delay* is given.
        """
        if not (0.0 <= probability <= 1.0):
            raise ValueError(f"probability must be within [0, 1], got {probability!r}")
        low, high = delay if isinstance(delay, tuple) else (delay, delay)
        if not all(math.isfinite(d) and d >= 0 for d in (low, high)) or low > high:
            raise ValueError(f"delay must be seconds >= 0 or a (low, high) range, got {delay!r}")
        actions = (["raise"] if raises is not None else []) + (["delay"] if high > 0 else [])
        if not actions:
            raise ValueError("give raises=..., delay=..., or both")
        label: str = name or getattr(function, "__qualname__", None) or repr(function)

        @functools.wraps(function)
        async def faulty(*args: Any, **kwargs: Any) -> T:
            self.calls += 1
            call = self.calls
            if self._rng.random() < probability:
                action = self._rng.choice(actions)
                if action == "raise":
                    assert raises is not None
                    error = raises() if isinstance(raises, type) else raises
                    self.injected.append(InjectedFault(call, label, f"raised {error!r}"))
                    raise error
                seconds = self._rng.uniform(low, high)
                self.injected.append(InjectedFault(call, label, f"delayed {seconds:.3f}s"))
                await asyncio.sleep(seconds)
            return await function(*args, **kwargs)

        return faulty

    def inject(
        self,
        owner: object,
        attribute: str,
        *,
        raises: BaseException | type[BaseException] | None = None,
        delay: float | tuple[float, float] = 0.0,
        probability: float = 0.3,
    ) -> None:
        """Replace ``owner.attribute`` (an async callable) by a faulty wrapper until restore.

        Raises AttributeError if *owner* has no such attribute; see
        :meth:`wrap` for the other arguments and errors.
        """
        original = getattr(owner, attribute)
        name = f"{getattr(owner, '__name__', type(owner).__name__)}.{attribute}"
        faulty = self.wrap(original, raises=raises, delay=delay, probability=probability, name=name)
        had_own = attribute in getattr(owner, "__dict__", {})
        self._patched.append((owner, attribute, original if had_own else _ABSENT))
        setattr(owner, attribute, faulty)

    def restore(self) -> None:
        """Undo every :meth:`inject`, newest first; idempotent."""
        while self._patched:
            owner, attribute, original = self._patched.pop()
            if original is _ABSENT:
                delattr(owner, attribute)
            else:
                setattr(owner, attribute, original)

    def describe(self) -> str:
        """Say which seed this is and every fault it injected, for a failure report."""
        lines = [f"fault seed={self.seed}: {len(self.injected)} fault(s) in {self.calls} call(s)"]
        lines.extend(f"  {fault}" for fault in self.injected)
        return "\n".join(lines)

    def __enter__(self) -> Faults:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.restore()


_ABSENT = object()
