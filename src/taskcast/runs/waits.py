"""Waiting for runs to end: ``Endings`` (a parent awaiting its children) and ``DependencyHolds``
(runs submitted ``after`` others).

Both learn that a run ended the way watchers do: from the terminal events the store commits
(``note``), never from a second path. So a wait resolves once the end is durable, whichever
process wrote it. A store shared by several processes announces other processes' events only
once it follows them (``Store.follow_events``, which ``Endings`` asks for before anything is
awaited), and may miss announcements while its subscription is broken: then ``recheck`` reads
every awaited run from the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from .. import events
from ..errors import RunNotFound
from ..models import Event, Run
from ..states import RunState
from ..stores.base import Store
from .active import ActiveRun, Phase
from .dependencies import dependency_error
from .outcomes import error_in


class Endings:
    """Futures of the ends of runs somebody awaits, resolved with the terminal event (or the
    ``shutdown`` event when the process stops first) as soon as it is committed."""

    def __init__(self, store: Store) -> None:
        self._store = store
        #: Run id -> the future of its end, for the runs somebody awaits.
        self.awaited: dict[str, asyncio.Future[Event]] = {}
        #: This process is shutting down: a ``shutdown`` event ends a wait (before, it is another
        #: process's shutdown, and the run will be taken up again elsewhere).
        self.stopping = False

    async def follow(self) -> None:
        """Make sure the store announces the ends other processes write (before the first run
        to await exists, so none of its events can be missed)."""
        await self._store.follow_events()

    def expect(self, run_id: str) -> tuple[asyncio.Future[Event], bool]:
        """The future of ``run_id``'s end, made before the run exists (a child about to be
        created, which another process may finish at once: keep this future, the map entry
        goes once it is resolved), and whether it was made now (for ``forget``, if the run is
        not created after all)."""
        made = run_id not in self.awaited
        return self.future(run_id), made

    def forget(self, run_id: str) -> None:
        """Drop the unresolved future ``expect`` made."""
        ending = self.awaited.pop(run_id, None)
        if ending is not None and not ending.done():
            ending.cancel()

    async def recheck(self) -> None:
        """Resolve the futures of runs whose end the store holds (announcements may have been
        missed while a shared store's subscription was broken)."""
        for run_id, ending in list(self.awaited.items()):
            if ending.done():
                continue
            run = await self._store.get_run(run_id)
            if run is not None and run.is_finished and not ending.done():
                last = await self._store.read_events(run_id, after=run.last_seq - 1)
                if last and not ending.done():
                    ending.set_result(last[-1])
                    if self.awaited.get(run_id) is ending:
                        del self.awaited[run_id]

    def future(self, run_id: str) -> asyncio.Future[Event]:
        """The future of ``run_id``'s end, made if nobody awaited it yet (it does not look at
        the store: ``watch`` does)."""
        ending = self.awaited.get(run_id)
        if ending is None:
            ending = self.awaited[run_id] = asyncio.get_running_loop().create_future()
        return ending

    def pending(self, run_id: str) -> asyncio.Future[Event] | None:
        """The future of ``run_id``'s end if somebody awaits it, else None."""
        return self.awaited.get(run_id)

    async def watch(self, run_id: str) -> asyncio.Future[Event]:
        """A future resolved with the run's terminal (or ``shutdown``) event; already resolved
        if the run has ended. Raises ``RunNotFound``."""
        await self.follow()
        ending = self.future(run_id)
        if not ending.done():
            run = await self._store.get_run(run_id)
            if run is None:
                if self.awaited.get(run_id) is ending and not ending.done():
                    del self.awaited[run_id]
                raise RunNotFound(run_id)
            if run.is_finished and not ending.done():
                last = await self._store.read_events(run_id, after=run.last_seq - 1)
                if not ending.done():
                    ending.set_result(last[-1])
                    if self.awaited.get(run_id) is ending:
                        del self.awaited[run_id]
        return ending

    async def wait(self, run_id: str) -> Event:
        """Wait until the run ends and return its terminal event (or its ``shutdown`` event when
        the process stops first). Raises ``RunNotFound``. Cancelling the wait leaves the run be.
        """
        return await asyncio.shield(await self.watch(run_id))

    def note(self, committed: Sequence[Event]) -> None:
        """Resolve the futures of the runs whose end is among ``committed``."""
        for event in committed:
            if event.type in events.TERMINAL_EVENT_TYPES or (
                event.type == events.SHUTDOWN and self.stopping
            ):
                ending = self.awaited.pop(event.run_id, None)
                if ending is not None and not ending.done():
                    ending.set_result(event)


class DependencyHolds:
    """Runs held (phase BLOCKED) until every run they were submitted ``after`` has ended.

    ``released(active)`` is called once all of a held run's dependencies ended; the run's
    ``dependency_failures`` then lists those that did not complete.
    """

    def __init__(self, store: Store, released: Callable[[ActiveRun], None]) -> None:
        self._store = store
        self._released = released
        #: Dependency id -> the runs it holds.
        self.blocked: dict[str, list[ActiveRun]] = {}

    def awaited(self) -> frozenset[str]:
        """The ids of the runs held runs wait for (retention must not prune them)."""
        return frozenset(self.blocked)

    def watch(self, active: ActiveRun) -> None:
        """Start listening for the ends of the run's dependencies (before reading them, so an
        end committed meanwhile is not missed)."""
        if not active.run.after:
            return
        active.waiting_for = set(active.run.after)
        for dependency in active.waiting_for:
            self.blocked.setdefault(dependency, []).append(active)

    def unwatch(self, active: ActiveRun) -> None:
        if not active.waiting_for:
            return
        for dependency in active.waiting_for:
            waiting = self.blocked.get(dependency)
            if waiting is not None and active in waiting:
                waiting.remove(active)
                if not waiting:
                    del self.blocked[dependency]
        active.waiting_for = None

    def hold(self, active: ActiveRun) -> None:
        """Hold a stored run whose dependencies are watched; release it at once if they all
        ended already."""
        active.phase = Phase.BLOCKED
        self.release_if_ready(active)

    async def check_ended(self, active: ActiveRun) -> None:
        """Note the dependencies that ended (or vanished) while nobody listened, e.g. while the
        process was down."""
        for dependency_id in active.run.after:
            dependency = await self._store.get_run(dependency_id)
            if dependency is None:  # pruned: it had ended, its outcome is gone
                self.ended(active, dependency_id, None, None)
            elif dependency.is_finished:
                self.ended(active, dependency_id, dependency.state, dependency)

    def ended(
        self, active: ActiveRun, dependency_id: str, state: RunState | None, run: Run | None
    ) -> None:
        """Note that ``dependency_id`` ended in ``state`` (None: its record is gone)."""
        if active.waiting_for is None or dependency_id not in active.waiting_for:
            return
        active.waiting_for.discard(dependency_id)
        if state is not RunState.COMPLETED:
            error = run.error if run is not None else None
            if active.dependency_failures is None:
                active.dependency_failures = []
            active.dependency_failures.append(
                (dependency_id, dependency_error(dependency_id, state, error))
            )
        self.release_if_ready(active)

    def release_if_ready(self, active: ActiveRun) -> None:
        if active.phase is Phase.BLOCKED and not active.waiting_for:
            self._released(active)

    def note(self, committed: Sequence[Event]) -> None:
        """Release the runs held by the runs whose end is among ``committed``."""
        for event in committed:
            if event.type in events.TERMINAL_EVENT_TYPES:
                waiting = self.blocked.pop(event.run_id, None)
                if waiting is not None:
                    state = RunState(event.type)
                    ended = Run(event.run_id, "", {}, state, error=error_in(event))
                    for active in waiting:
                        self.ended(active, event.run_id, state, ended)
