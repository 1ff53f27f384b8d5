"""``Client``: the API of a taskcast server for code without an event loop (scripts, threads)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Generator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar, cast

import httpx

from ..errors import TaskcastError
from ..models import Event, Run
from ..states import RunState
from . import calls
from .async_client import AsyncClient
from .base import ClientBase, documented_like
from .calls import Call, TaskInfo
from .errors import connection_failed
from .stream import Follower

T = TypeVar("T")


def _texts(response: httpx.Response) -> Generator[str, None, None]:
    # httpx types it as an iterator; it is a generator, closed with the stream when we break.
    return cast(Generator[str, None, None], response.iter_text())


def _time_left(deadline: float | None) -> float | None:
    """Seconds until ``deadline`` (``time.monotonic``); ``TimeoutError`` once it passed."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the run did not finish within the timeout")
    return left


@documented_like(AsyncClient)
class Client(ClientBase):
    __doc__ = f"""{ClientBase.__doc__}
    The same API as ``AsyncClient``, blocking: every method there is a method here that returns
    what the coroutine would, and ``events`` is an iterator; same errors, same resume logic.
    Use it as ``with Client(url) as client:`` (or call ``close()``).
    """

    _http_class = httpx.Client
    _transport_class = httpx.HTTPTransport
    _http: httpx.Client

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection of the pool. Calling it again does nothing."""
        self._http.close()

    def _call(self, call: Call[T]) -> T:
        try:
            response = self._http.send(call.request(self._http))
        except httpx.TransportError as error:
            raise connection_failed(self.url, error) from error
        return call.read(response)

    def submit(self, task: str, /, **args: Any) -> Run:
        return self.submit_with(task, args)

    def submit_with(
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
        return self._call(
            calls.submit(
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
        )

    def get(self, run_id: str) -> Run:
        return self._call(calls.get(run_id))

    def runs(
        self,
        *,
        state: RunState | str | None = None,
        task: str | None = None,
        limit: int = 100,
        before: str | None = None,
        parent: str | None = None,
        prefix: str | None = None,
    ) -> list[Run]:
        call = calls.runs(
            state=state, task=task, limit=limit, before=before, parent=parent, prefix=prefix
        )
        return self._call(call)

    def retry(self, run_id: str) -> Run:
        return self._call(calls.retry(run_id))

    def cancel(self, run_id: str, reason: str | None = None) -> bool:
        return self._call(calls.cancel(run_id, reason))

    def signal(self, run_id: str, name: str, data: Any = None) -> None:
        self._call(calls.signal(run_id, name, data))

    def tasks(self) -> list[TaskInfo]:
        return self._call(calls.tasks())

    def schedules(self) -> list[dict[str, Any]]:
        return self._call(calls.schedules())

    def pause_schedule(self, name: str) -> dict[str, Any]:
        return self._call(calls.set_schedule_paused(name, True))

    def resume_schedule(self, name: str) -> dict[str, Any]:
        return self._call(calls.set_schedule_paused(name, False))

    def trigger_schedule(self, name: str) -> Run:
        return self._call(calls.trigger_schedule(name))

    def events(self, run_id: str, after: int = 0) -> Generator[Event, None, None]:
        """See ``AsyncClient.events``. Wrap it in ``contextlib.closing`` when you break out, to
        close the connection at once."""
        return self._follow(run_id, after, deadline=None)

    def wait(self, run_id: str, timeout: float | None = None) -> Run:
        """See ``AsyncClient.wait``. The deadline is checked whenever data arrives and bounds
        every wait for data, so it is kept to within a read of the server (keep-alives included).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        run = self.get(run_id)
        if run.is_finished:
            return run
        with contextlib.closing(self._follow(run_id, run.last_seq, deadline)) as events:
            for _ in events:
                pass
        return self.get(run_id)

    def _follow(
        self, run_id: str, after: int, deadline: float | None
    ) -> Generator[Event, None, None]:
        follower = Follower(self.url, run_id, after, self._config.reconnect)
        while True:
            left = _time_left(deadline)
            read = (
                self._config.read_timeout if left is None else min(left, self._config.read_timeout)
            )
            failure: Exception | None = None
            try:
                with self._http.stream(
                    "GET",
                    follower.path,
                    headers=follower.headers(),
                    timeout=self._config.stream_timeout(read),
                ) as response:
                    if response.is_error:
                        response.read()
                    follower.opened(response)
                    with contextlib.closing(_texts(response)) as texts:
                        for text in texts:
                            yield from follower.received(text)
                            if follower.done:
                                break
                            _time_left(deadline)
            except (httpx.TransportError, TaskcastError) as error:
                failure = error
            if follower.done:
                return
            left = _time_left(deadline)  # a read cut short by the deadline is no failure
            delay = follower.reconnect_delay(failure)
            time.sleep(delay if left is None else min(delay, left))
