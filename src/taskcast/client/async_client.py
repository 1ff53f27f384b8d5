"""``AsyncClient``: the API of a taskcast server, for asyncio code."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar, cast

import httpx

from ..errors import TaskcastError
from ..models import Event, Run
from ..states import RunState
from . import calls
from .base import ClientBase
from .calls import Call, TaskInfo
from .errors import connection_failed
from .stream import Follower

T = TypeVar("T")

END_OF_BODY_TIMEOUT = 1.0
"""Seconds to wait for the end of a stream's body after its terminal event."""


async def _read_to_the_end(texts: AsyncGenerator[str, None]) -> None:
    """Read what is left of a body the server is closing (it does right after the terminal
    event). httpx's inner generators then end by themselves; left suspended, they would be
    finalized by the event loop later, one per loop iteration."""
    with contextlib.suppress(TimeoutError, httpx.TransportError):
        async with asyncio.timeout(END_OF_BODY_TIMEOUT):
            async for _ in texts:
                pass


def _texts(response: httpx.Response) -> AsyncGenerator[str, None]:
    # httpx types it as an iterator; it is a generator, closed with the stream when we break.
    return cast(AsyncGenerator[str, None], response.aiter_text())


class AsyncClient(ClientBase):
    __doc__ = f"""{ClientBase.__doc__}
    Use it as ``async with AsyncClient(url) as client:`` (or call ``aclose()``). Cancelling a
    call closes its connection.
    """

    _http_class = httpx.AsyncClient
    _transport_class = httpx.AsyncHTTPTransport
    _http: httpx.AsyncClient

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every connection of the pool. Calling it again does nothing."""
        await self._http.aclose()

    async def _call(self, call: Call[T]) -> T:
        try:
            response = await self._http.send(call.request(self._http))
        except httpx.TransportError as error:
            raise connection_failed(self.url, error) from error
        return call.read(response)

    async def submit(self, task: str, /, **args: Any) -> Run:
        """Queue a run of ``task`` with ``args`` and return it (state ``queued``).

        Raises ``UnknownTask``, ``InvalidArguments`` (naming each bad parameter),
        ``NotSerializable``, ``QueueFull`` (``retry_after`` seconds), ``ShuttingDown``. For run
        options use ``submit_with``. If the connection breaks, the run may exist anyway: give it
        an ``id`` with ``submit_with`` to retry safely.
        """
        return await self.submit_with(task, args)

    async def submit_with(
        self,
        task: str,
        args: Mapping[str, Any] | None = None,
        *,
        id: str | None = None,
        timeout: float | None = None,
        max_attempts: int | None = None,
        after: Sequence[str] | None = None,
        after_policy: str = "fail",
        run_at: datetime | None = None,
        delay: float | None = None,
        priority: int | None = None,
        owner: str | None = None,
        traceparent: str | None = None,
    ) -> Run:
        """``submit`` with options: ``timeout`` (seconds per attempt), ``max_attempts``
        (overrides the task's), and ``id``, an idempotency key: submitting an id that exists
        returns that run and queues nothing; ``after`` and ``after_policy`` as for
        ``App.submit_with``; ``owner`` (who submits it) and ``traceparent`` (default: the
        current OpenTelemetry span's, sent as the ``traceparent`` header). Raises what
        ``submit`` raises, and ``InvalidRequest`` for a bad option (or an ``after`` id no run
        has, or a cycle)."""
        call = calls.submit(
            task,
            args,
            id=id,
            timeout=timeout,
            max_attempts=max_attempts,
            after=after,
            after_policy=after_policy,
            run_at=run_at,
            delay=delay,
            priority=priority,
            owner=owner,
            traceparent=traceparent,
        )
        return await self._call(call)

    async def get(self, run_id: str) -> Run:
        """The run as stored. Raises ``RunNotFound``."""
        return await self._call(calls.get(run_id))

    async def runs(
        self,
        *,
        state: RunState | str | None = None,
        task: str | None = None,
        limit: int = 100,
        before: str | None = None,
        parent: str | None = None,
        prefix: str | None = None,
    ) -> list[Run]:
        """Runs newest first, filtered by ``state``, ``task``, ``parent`` (its children) and
        ``prefix`` (ids that start with it); page with ``before=<last id>``. Raises
        ``InvalidRequest`` for an unknown state or a limit outside 1..1000."""
        call = calls.runs(
            state=state, task=task, limit=limit, before=before, parent=parent, prefix=prefix
        )
        return await self._call(call)

    async def retry(self, run_id: str) -> Run:
        """Start a new run of the same task with the same arguments as ``run_id`` (which failed,
        was cancelled, timed out or was interrupted) and return it; its ``retry_of`` is
        ``run_id``. Raises ``RunNotFound``, ``NotRetryable`` (queued, running or completed),
        ``QueueFull``, ``ShuttingDown``."""
        return await self._call(calls.retry(run_id))

    async def cancel(self, run_id: str, reason: str | None = None) -> bool:
        """Cancel a queued or running run: True if it will end ``cancelled``, False for an
        unknown or finished run (as in-process). Does not wait: use ``wait``. ``reason`` is
        shown in the ``cancelled`` event (the server's default when None)."""
        return await self._call(calls.cancel(run_id, reason))

    async def signal(self, run_id: str, name: str, data: Any = None) -> None:
        """Send the signal ``name`` with JSON ``data`` to a queued or running run (the task's
        ``await ctx.signal(name)`` returns ``data``). Raises ``RunNotFound``, ``RunFinished``."""
        await self._call(calls.signal(run_id, name, data))

    async def tasks(self) -> list[TaskInfo]:
        """The tasks the server runs, with their parameters (JSON Schema) and policy."""
        return await self._call(calls.tasks())

    async def schedules(self) -> list[dict[str, Any]]:
        """The server's periodic schedules: definition, ``paused``, ``next_tick``,
        ``last_tick``, ``last_run`` (times in Unix seconds)."""
        return await self._call(calls.schedules())

    async def pause_schedule(self, name: str) -> dict[str, Any]:
        """Pause the schedule ``name`` (for every process); returns it. Raises
        ``UnknownSchedule``."""
        return await self._call(calls.set_schedule_paused(name, True))

    async def resume_schedule(self, name: str) -> dict[str, Any]:
        """Resume the schedule ``name``; returns it. Raises ``UnknownSchedule``."""
        return await self._call(calls.set_schedule_paused(name, False))

    async def trigger_schedule(self, name: str) -> Run:
        """Start a run of the schedule ``name`` now; returns it. Raises ``UnknownSchedule``."""
        return await self._call(calls.trigger_schedule(name))

    async def events(self, run_id: str, after: int = 0) -> AsyncGenerator[Event, None]:
        """The run's events with ``seq > after``, the same ``Event`` objects as in-process: the
        stored log, then live ones, ending after the terminal event (or at once when there is
        nothing left to send).

        A broken or silent connection is replaced, resuming after the last event yielded, so no
        event is lost or repeated; a ``shutdown`` event (the server stopping) is yielded and the
        stream goes on once the server is back. Raises ``RunNotFound`` (and the other typed
        errors) at once, ``ConnectionFailed`` if the first connect fails, ``StreamLost`` after
        ``reconnects`` failed reconnects in a row. Break out inside
        ``contextlib.aclosing(client.events(...))`` to close the connection at once.
        """
        follower = Follower(self.url, run_id, after, self._config.reconnect)
        timeout = self._config.stream_timeout()
        while True:
            failure: Exception | None = None
            try:
                async with self._http.stream(
                    "GET", follower.path, headers=follower.headers(), timeout=timeout
                ) as response:
                    if response.is_error:
                        await response.aread()
                    follower.opened(response)
                    async with contextlib.aclosing(_texts(response)) as texts:
                        async for text in texts:
                            for event in follower.received(text):
                                yield event
                            if follower.done:
                                await _read_to_the_end(texts)
                                break
            except (httpx.TransportError, TaskcastError) as error:
                failure = error
            if follower.done:
                return
            await asyncio.sleep(follower.reconnect_delay(failure))

    async def wait(self, run_id: str, timeout: float | None = None) -> Run:
        """Wait until the run finishes and return it as stored.

        Follows the run's events from its current ``last_seq`` until the terminal event (no
        polling; across reconnects and server restarts like ``events``), then reads the run.
        Raises ``RunNotFound``, ``TimeoutError`` after ``timeout`` seconds (the whole call),
        ``StreamLost`` if the server stays unreachable.
        """
        async with asyncio.timeout(timeout):
            run = await self.get(run_id)
            if run.is_finished:
                return run
            async with contextlib.aclosing(self.events(run_id, after=run.last_seq)) as events:
                async for _ in events:
                    pass
            return await self.get(run_id)
