"""``Attempts``: executing a run: each attempt's body under its deadline, and what its exit means.

An attempt writes ``started``, runs the body with a ``Context`` (bounded by the run's timeout and
by its parent's deadline), and, however the body exits, first ends the children it left
unfinished, then records the outcome:

* it returned: ``completed`` (or ``failed`` with ``NotSerializable`` if the result is not JSON);
* it raised: ``retrying`` (a new attempt after a backoff) if the policy allows, else ``failed``;
* its deadline passed: ``timed_out``;
* it was stopped on purpose (``ActiveRun.stop``): ``cancelled``, or ``interrupted`` by shutdown,
  whatever the body did with its ``CancelledError`` (re-raise, swallow and return, raise
  something else). A body that ignores cancellation outright is recorded ``cancelled`` after
  ``cancel_timeout`` anyway (``watch_cancel``) and reported by shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from .. import tracing
from ..errors import NotSerializable, StepMismatch
from ..models import encode_json
from ..supervisor import Supervisor
from . import clock
from .active import ActiveRun, Phase, StopKind
from .context import Context
from .outcomes import Outcomes
from .ports import RunServices
from .slots import Slots
from .waits import Endings

logger = logging.getLogger("taskcast")


class Attempts:
    """Executes the runs the coordinator starts (see the module docstring).

    ``requeue(active)`` takes back a run whose failed attempt was recorded ``retrying``;
    ``over(active)`` is told when a run's task ends.
    """

    def __init__(
        self,
        services: RunServices,
        outcomes: Outcomes,
        slots: Slots,
        endings: Endings,
        supervisor: Supervisor,
        *,
        cancel_timeout: float,
        requeue: Callable[[ActiveRun], None],
        over: Callable[[ActiveRun], None],
    ) -> None:
        self._services = services
        self._outcomes = outcomes
        self._slots = slots
        self._endings = endings
        self._supervisor = supervisor
        self.cancel_timeout = cancel_timeout
        self._requeue = requeue
        self._over = over

    async def execute(self, active: ActiveRun) -> None:
        """The run's task (``Supervisor.start``): one attempt, or what a stop before its first
        turn means."""
        try:
            if active.stop is None:
                await self._attempt(active)
            elif active.stop is StopKind.CANCEL:  # cancelled before its first turn
                active.phase = Phase.DONE
                await self._outcomes.cancel_in_store(active.run.id, active.stop_reason)
            else:  # shutdown before its first turn: it never started, so it stays queued
                active.phase = Phase.WAITING
        except Exception:  # a bug: logged as the supervisor logs its tasks' crashes
            logger.exception("task taskcast run %s crashed", active.run.id)
        finally:
            if active.stop is not None:
                active.cancel_timer()  # the cancel watchdog: the body did stop
            self._slots.release(active)
            self._over(active)
            self._supervisor.done(active.task)

    async def _attempt(self, active: ActiveRun) -> None:
        active.phase = Phase.RUNNING
        run = active.run
        definition = active.definition
        attempt = run.attempt + 1
        timeout = run.timeout if run.timeout is not None else definition.timeout
        loop = asyncio.get_running_loop()
        scope: asyncio.Timeout | None = None
        outcomes = self._outcomes
        try:
            moved = await outcomes.started(active, attempt, clock.now())
            if moved is None:  # finished by someone else meanwhile
                active.phase = Phase.DONE
                return
            active.run = run = moved[0]
            cap = active.deadline_cap
            if timeout is None and cap is None:  # no scope at all: the common case stays cheap
                result = await self._invoke(active, None)
            else:
                deadline = loop.time() + timeout if timeout is not None else None
                if cap is not None and (deadline is None or cap < deadline):
                    # The parent's deadline comes first: it bounds this attempt.
                    deadline, timeout = cap, round(max(0.0, cap - loop.time()), 6)
                assert deadline is not None
                async with asyncio.timeout_at(deadline) as scope:
                    result = await self._invoke(active, deadline)
        except asyncio.CancelledError:
            self._body_over(active)
            await outcomes.stopped(active, cleanup_error=None)
            raise
        except (KeyboardInterrupt, SystemExit) as exc:
            self._body_over(active)
            # Durable: the process is on its way out, and the loop may not outlive this task.
            await outcomes.failed(active, exc, durable=True)
            raise
        except Exception as exc:
            self._body_over(active)
            if active.stop is not None:
                await outcomes.stopped(active, cleanup_error=exc)
            elif scope is not None and scope.expired():
                await outcomes.timed_out(active, timeout)
            elif (
                attempt < run.max_attempts
                and definition.retry.should_retry(exc)
                and not isinstance(exc, StepMismatch)  # the same body would mismatch again
            ):
                await self._retry(active, exc)
            else:
                await outcomes.failed(active, exc)
        else:
            self._body_over(active)
            if active.stop is not None:  # the body swallowed the CancelledError
                await outcomes.stopped(active, cleanup_error=None)
            elif scope is not None and scope.expired():
                await outcomes.timed_out(active, timeout)
            else:
                try:
                    if result is not None:
                        encode_json(result, f"the result of task {definition.name!r}")
                except NotSerializable as exc:
                    await outcomes.failed(active, exc)
                else:
                    await outcomes.completed(active, result)

    def _body_over(self, active: ActiveRun) -> None:
        active.phase = Phase.FINISHING
        self._slots.release(active)

    async def _invoke(self, active: ActiveRun, deadline: float | None) -> Any:
        """Run the body; whichever way it exits, its unfinished children end before it does."""
        active.deadline = deadline
        context = Context(self._services, active, deadline)
        parent = active.run.id
        active.body_over = False
        active.waits, active.lent = 0, False
        try:
            with tracing.attempt(active.run, active.run.attempt, lambda: _why_stopped(active)):
                result = await active.definition.invoke(context, active.run.args)
        except asyncio.CancelledError:
            active.body_over = True
            # A shutdown (or a cancel from outside taskcast) stops the children by itself and
            # they resume with the parent; a cancel or a timeout ends them here.
            if active.children:
                if active.stop is StopKind.CANCEL:
                    await self.end_children(active, f"its parent {parent} was cancelled")
                elif deadline is not None and asyncio.get_running_loop().time() >= deadline:
                    await self.end_children(active, f"its parent {parent} timed out")
            raise
        except BaseException:
            active.body_over = True
            if active.children:
                await self.end_children(active, f"its parent {parent} failed")
            raise
        active.body_over = True
        if active.children:
            await self.end_children(active, f"its parent {parent} finished without awaiting it")
        return result

    async def end_children(self, active: ActiveRun, reason: str) -> None:
        """Cancel the run's unfinished children and wait until each has ended (its cleanup ran).

        Bounded: a child that ignores its cancel is recorded ``cancelled`` after
        ``cancel_timeout``. Cancelling this wait stops waiting, not the cancellation.
        """
        children = list(active.children or ())
        if not children:
            return
        for child_id in children:
            await self._services.cancel(child_id, reason)
        endings = [e for c in children if (e := self._endings.pending(c)) is not None]
        if endings:
            await asyncio.wait(endings)

    async def _retry(self, active: ActiveRun, exc: BaseException) -> None:
        active.phase = Phase.RESCHEDULING
        run_id = active.run.id
        moved = await self._outcomes.retrying(
            active, exc, active.definition.retry.delay(active.run.attempt)
        )
        if moved is None:
            active.phase = Phase.DONE
            return
        active.run = moved
        if active.stop is StopKind.CANCEL:  # cancelled while the write was on its way
            active.phase = Phase.DONE
            await self._outcomes.cancel_in_store(run_id, active.stop_reason)
            return
        self._requeue(active)

    def watch_cancel(self, active: ActiveRun) -> None:
        """Record a cancelled RUNNING run ``cancelled`` anyway if its body ignores the
        cancellation for ``cancel_timeout`` (its ``timer`` is free while it runs)."""
        active.timer = asyncio.get_running_loop().call_later(
            self.cancel_timeout, self._abandon_if_stuck, active
        )

    def _abandon_if_stuck(self, active: ActiveRun) -> None:
        active.timer = None
        if active.phase is not Phase.RUNNING or self._supervisor.closed:
            return
        logger.warning(
            "run %s ignored cancellation for %gs; recording it as cancelled",
            active.run.id,
            self.cancel_timeout,
        )
        active.phase = Phase.DONE
        self._supervisor.spawn(
            self._outcomes.abandoned(active), name=f"taskcast abandon {active.run.id}"
        )


def _why_stopped(active: ActiveRun) -> str | None:
    """What cancelled ``active``'s body, for its attempt's span (``taskcast.tracing``)."""
    if active.stop is StopKind.CANCEL:
        return "cancelled"
    if active.stop is not None:
        return "shutdown"
    deadline = active.deadline
    if deadline is not None and asyncio.get_running_loop().time() >= deadline:
        return "timed_out"
    return None
