"""Child runs: ``ctx.spawn`` and ``ctx.map`` (docs/semantics.md, "Workflows").

A child is a run like any other (its own id, log, state, visible over HTTP) that records its
parent (``parent_id``); the parent's log gets a ``child`` event per child. Children follow
structured concurrency: none outlives its parent's attempt (the coordinator cancels those still
unfinished when the body exits), a child's deadline never exceeds its parent's, and a parent that
waits for children lends them its concurrency slot.

Child ids are ``<parent id>.<n>``, ``n`` counting the children of the attempt in spawn order. So a
parent that runs again (a retry, or resumed after a restart) and spawns the same task with the
same arguments at the same position gets the earlier child back instead of a new run: its result
if it completed, the run itself if it is still unfinished. A child that failed, was cancelled or
timed out is run again (as ``<parent id>.<n>~<attempt>``).
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Callable, Generator, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .. import events
from ..errors import BatchTimedOut, InvalidRequest, TaskFailed
from ..models import Event, Run, compact_json
from ..states import RunState
from .active import ActiveRun
from .ports import ChildSubmission, RunServices, child_submitted

if TYPE_CHECKING:
    from ..tasks import TaskDefinition

_ULID_ROOT = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}(\.|$)")
_NOT_REUSABLE = frozenset({RunState.FAILED, RunState.CANCELLED, RunState.TIMED_OUT})
MAX_ID_LENGTH = 128
SPAWN_CHUNK = 256
"""Children ``ctx.map`` submits at once (their store writes can share a commit)."""


class ChildRun:
    """A child run spawned by ``ctx.spawn``: ``await child`` returns its result.

    Awaiting raises ``TaskFailed`` if the child failed, was cancelled, timed out or was
    interrupted. While it waits, the parent lends its concurrency slot (it takes one back before
    it continues). Cancelling the await leaves the child running; the parent's exit ends it.
    """

    def __init__(
        self, services: RunServices, parent: ActiveRun, run: Run, ending: asyncio.Future[Event]
    ) -> None:
        self._services = services
        self._parent = parent
        self._ending = ending
        self.run_id = run.id
        self.task = run.task

    def __repr__(self) -> str:
        return f"<ChildRun {self.run_id} {self.task} {'done' if self.done() else 'pending'}>"

    def done(self) -> bool:
        """True once the child has ended."""
        return self._ending.done()

    async def end(self) -> Event:
        """Wait for the child's terminal event (or ``shutdown``) and return it; never raises
        for the child's failure."""
        if self._ending.done():
            return self._ending.result()
        async with self._services.lending_slot(self._parent):
            return await asyncio.shield(self._ending)

    async def result(self) -> Any:
        """The child's result; ``TaskFailed`` if it did not complete."""
        return outcome(await self.end(), self.task)

    def __await__(self) -> Generator[Any, None, Any]:
        return self.result().__await__()

    async def cancel(self, reason: str = "cancelled by its parent") -> bool:
        """Cancel the child (see ``App.cancel``); True if it will end ``cancelled``."""
        return await self._services.cancel(self.run_id, reason)


def outcome(event: Event, task: str) -> Any:
    """The result a terminal event carries, or the ``TaskFailed`` it means, raised."""
    error = failure(event, task)
    if error is not None:
        raise error
    data = event.data if isinstance(event.data, dict) else {}
    return data.get("result")


def failure(event: Event, task: str) -> TaskFailed | None:
    """``None`` for ``completed``; else the ``TaskFailed`` describing why the child ended."""
    if event.type == "completed":
        return None
    data = event.data if isinstance(event.data, dict) else {}
    if event.type == "cancelled":
        error: Any = {"type": "Cancelled", "message": str(data.get("reason", "cancelled"))}
        state = "cancelled"
    elif event.type == events.SHUTDOWN:
        error = {"type": "Interrupted", "message": "the process stopped before it finished"}
        state = "interrupted"
    else:
        error = data.get("error")
        state = event.type
    return TaskFailed(event.run_id, task, state, error if isinstance(error, dict) else None)


async def spawn(
    services: RunServices, parent: ActiveRun, task: str, args: Mapping[str, Any], index: int
) -> ChildRun:
    """Submit the ``index``-th child of ``parent``'s attempt (see the module docstring)."""
    (child,) = await spawn_many(services, parent, task, [(index, args)])
    return child


async def spawn_many(
    services: RunServices,
    parent: ActiveRun,
    task: str,
    children: list[tuple[int, Mapping[str, Any]]],
) -> list[ChildRun]:
    """Submit children ``(index, args)`` of ``parent``'s attempt, their store writes together
    when the store can; return their handles in the same order."""
    definition = services.definition(task)
    attempt = parent.run.attempt
    submitted: list[ChildSubmission] = []
    if attempt <= 1 and _ULID_ROOT.match(parent.run.id):
        # The first attempt of a parent whose id we generated: no run can have these ids yet.
        creating = [
            services.start_child(parent, definition, args, f"{parent.run.id}.{i}", fresh=True)
            for i, args in children
        ]
        for one in creating:
            submitted.append(await child_submitted(one))
    else:
        for index, args in children:
            submitted.append(await _submit_again(services, parent, definition, args, index))
    handles = []
    for submission in submitted:
        run, ending = submission.run, submission.ending
        if ending is None:  # an earlier attempt's child: finished, or still running
            ending = await services.watch_end(run.id)
            if not ending.done():
                services.adopt(parent, run.id)
        handles.append(ChildRun(services, parent, run, ending))
    # The `child` events, written together (``Store.append_many``: one write where the store
    # can, else handed over in order and answered in one go by a store over the network).
    notes = []
    for handle in handles:
        data = {"run_id": handle.run_id, "task": handle.task}
        notes.append((events.CHILD, data, compact_json(data)))
    await services.emit_many(parent.run.id, notes)
    return handles


async def _submit_again(
    services: RunServices,
    parent: ActiveRun,
    definition: TaskDefinition,
    args: Mapping[str, Any],
    index: int,
) -> ChildSubmission:
    """A child of a parent that may have run before: reuse its earlier child at this position
    if it has the same task and arguments and did not fail (see the module docstring)."""
    base = f"{parent.run.id}.{index}"
    expected = definition.validate_arguments(dict(args))
    for run_id in (base, f"{base}~{parent.run.attempt}"):
        if len(run_id) > MAX_ID_LENGTH:
            break
        submission = await child_submitted(services.start_child(parent, definition, args, run_id))
        run = submission.run
        reusable = (
            run.parent_id == parent.run.id
            and run.task == definition.name
            and run.args == expected
            and run.state not in _NOT_REUSABLE
        )
        if submission.ending is not None or reusable:
            return submission
    return await child_submitted(services.start_child(parent, definition, args, None))


async def map_children(
    services: RunServices,
    parent: ActiveRun,
    reserve: Callable[[int], int],
    task: str,
    items: Iterable[Mapping[str, Any]],
    *,
    concurrency: int | None,
    isolate: bool,
    timeout: float | None,
) -> list[Any]:
    """``ctx.map``: see ``Context.map`` for the contract. ``reserve(n)`` gives the position of
    the first of ``n`` children about to be spawned."""
    batch = list(items)
    if concurrency is not None and not (isinstance(concurrency, int) and concurrency >= 1):
        raise InvalidRequest(f"concurrency must be an integer >= 1, got {concurrency!r}")
    if timeout is not None and not timeout > 0:
        raise InvalidRequest(f"timeout must be a positive number of seconds, got {timeout!r}")
    for position, args in enumerate(batch):
        if not isinstance(args, Mapping):
            raise InvalidRequest(
                f"ctx.map takes a list of argument dicts; item {position} is {args!r}"
            )
    first = reserve(len(batch))
    limit = concurrency or max(len(batch), 1)
    results: list[Any] = [None] * len(batch)
    completed: dict[int, Any] = {}
    running: dict[asyncio.Future[Event], tuple[int, ChildRun]] = {}
    # Endings arrive here as they happen: waiting on one event, not on every pending future
    # (asyncio.wait over thousands of futures per completion would be quadratic).
    ended: deque[asyncio.Future[Event]] = deque()
    wake = asyncio.Event()

    def on_end(ending: asyncio.Future[Event]) -> None:
        ended.append(ending)
        wake.set()

    first_failure: TaskFailed | None = None
    timed_out = False

    def settle(ending: asyncio.Future[Event]) -> TaskFailed | None:
        position, child = running.pop(ending)
        problem = failure(ending.result(), child.task)
        if problem is None:
            results[position] = completed[position] = outcome(ending.result(), child.task)
        else:
            results[position] = problem
        return problem

    async def stop_the_rest(reason: str) -> None:
        for _, child in running.values():
            await child.cancel(reason)
        if running:
            await asyncio.wait(list(running))
        for ending in list(running):
            settle(ending)

    next_position = 0
    async with services.lending_slot(parent):
        try:
            async with asyncio.timeout(timeout):
                while next_position < len(batch) or running:
                    room = min(limit - len(running), len(batch) - next_position, SPAWN_CHUNK)
                    positions = range(next_position, next_position + room)
                    next_position += room
                    spawned = await spawn_many(
                        services, parent, task, [(first + p, batch[p]) for p in positions]
                    )
                    for position, child in zip(positions, spawned, strict=True):
                        running[child._ending] = (position, child)
                        child._ending.add_done_callback(on_end)
                    if not ended:
                        wake.clear()
                        await wake.wait()
                    while ended:
                        ending = ended.popleft()
                        if ending not in running:
                            continue  # settled already
                        problem = settle(ending)
                        if problem is not None and not isolate and first_failure is None:
                            first_failure = problem
                    if first_failure is not None:
                        await stop_the_rest(f"its sibling {first_failure.run_id} failed")
                        break
        except TimeoutError:
            timed_out = True
            await stop_the_rest("the batch timed out")
    if first_failure is not None:
        first_failure.partial = completed
        raise first_failure
    if timed_out and not isolate:
        assert timeout is not None
        unfinished = [p for p in range(len(batch)) if p not in completed]
        raise BatchTimedOut(timeout, completed, unfinished)
    if timed_out:  # isolated: the children never spawned are reported as cancelled too
        for position in range(next_position, len(batch)):
            results[position] = TaskFailed(
                f"{parent.run.id}.{first + position}",
                task,
                "cancelled",
                {"type": "Cancelled", "message": "the batch timed out before it started"},
            )
    return results
