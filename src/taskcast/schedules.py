"""Registered schedules: a task run at every tick of a cron expression or of a period.

``app.schedule(name, task, args, cron="*/5 * * * *", timezone="UTC")`` or ``every=seconds``
builds a ``Schedule``. Its ticks are a pure function of the schedule and the time, so every
process sharing a store computes the same ticks, and each tick's run gets an id derived from the
schedule's name and the tick (``ids.derived_run_id``): however many processes fire a tick, and
however often a process restarts, the store creates its run once.

* ``cron``: a 5-field cron expression, evaluated by cronsim in the schedule's ``timezone`` (an
  IANA name), DST-correct: a wall-clock time skipped by a spring-forward fires at the first
  minute after the gap, and one repeated by a fall-back fires once;
* ``every``: a period of at least 1 second; the ticks are the Unix times divisible by it (so
  ``every=3600`` ticks on the hour, UTC, whatever process computes them).

``catch_up`` says what happens to ticks missed while no process was up: ``"latest"`` starts one
run for the latest of them, ``"none"`` skips them all.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import cronsim

from .ids import derived_run_id

CATCH_UPS = ("latest", "none")

_NAME = re.compile(r"[A-Za-z0-9._:-]{1,64}\Z")


@dataclass(frozen=True, slots=True)
class Schedule:
    """A task started at every tick (see the module docstring). Build it with
    ``Schedule.create``, which checks every field."""

    name: str
    task: str
    args: dict[str, Any] = field(default_factory=dict)
    cron: str | None = None
    every: float | None = None
    timezone: str = "UTC"
    catch_up: Literal["latest", "none"] = "latest"
    enabled: bool = True

    @classmethod
    def create(
        cls,
        name: Any,
        task: Any,
        args: Any = None,
        *,
        cron: Any = None,
        every: Any = None,
        timezone: Any = "UTC",
        catch_up: Any = "latest",
        enabled: Any = True,
    ) -> Schedule:
        """A checked ``Schedule``. Raises ``ValueError`` naming the field: a name that is not
        1-64 letters, digits and ``._:-``; neither or both of ``cron`` and ``every``; a cron
        expression cronsim cannot read; ``every`` below 1 second; an unknown time zone; a
        ``catch_up`` other than ``"latest"`` or ``"none"``."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(
                f"schedule name must be 1 to 64 letters, digits and ._:- (it goes in URLs),"
                f" got {name!r}"
            )
        if not isinstance(task, str) or not task:
            raise ValueError(f"schedule {name!r}: task must be a task name, got {task!r}")
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise ValueError(f"schedule {name!r}: args must be a dict, got {args!r}")
        if (cron is None) == (every is None):
            raise ValueError(f"schedule {name!r}: give cron='...' or every=seconds (one of them)")
        if every is not None and (
            isinstance(every, bool)
            or not isinstance(every, int | float)
            or not math.isfinite(every)
            or every < 1
        ):
            raise ValueError(
                f"schedule {name!r}: every must be a number of seconds >= 1, got {every!r}"
            )
        if not isinstance(timezone, str):
            raise ValueError(f"schedule {name!r}: timezone must be an IANA name, got {timezone!r}")
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"schedule {name!r}: unknown timezone {timezone!r} (an IANA name such as"
                " 'UTC' or 'Europe/Paris')"
            ) from None
        if cron is not None:
            if not isinstance(cron, str):
                raise ValueError(f"schedule {name!r}: cron must be a string, got {cron!r}")
            try:
                cronsim.CronSim(cron, datetime.now(zone))
            except cronsim.CronSimError as exc:
                raise ValueError(
                    f"schedule {name!r}: cron {cron!r} is not a cron expression ({exc}); five"
                    " fields: minute hour day-of-month month day-of-week, e.g. '*/5 * * * *'"
                ) from None
        if catch_up not in CATCH_UPS:
            raise ValueError(
                f"schedule {name!r}: catch_up must be 'latest' or 'none', got {catch_up!r}"
            )
        return cls(
            name,
            task,
            dict(args),
            cron,
            None if every is None else float(every),
            timezone,
            catch_up,
            bool(enabled),
        )

    def next_tick(self, after: float) -> float:
        """The first tick strictly after the Unix time ``after``."""
        if self.every is not None:
            return (math.floor(after / self.every) + 1) * self.every
        assert self.cron is not None
        start = datetime.fromtimestamp(after, ZoneInfo(self.timezone))
        return next(cronsim.CronSim(self.cron, start)).timestamp()

    def latest_tick(self, at: float) -> float | None:
        """The last tick at or before the Unix time ``at`` (None if there is none)."""
        if self.every is not None:
            return math.floor(at / self.every) * self.every
        assert self.cron is not None
        start = datetime.fromtimestamp(at + 0.001, ZoneInfo(self.timezone))
        try:
            return next(cronsim.CronSim(self.cron, start, reverse=True)).timestamp()
        except StopIteration:
            return None

    def ticks_between(self, after: float, until: float, most: int = 10_000) -> int:
        """How many ticks lie in ``(after, until]`` (counting at most ``most``)."""
        if self.every is not None:
            return min(
                most, max(0, math.floor(until / self.every) - math.floor(after / self.every))
            )
        count, tick = 0, after
        while count < most:
            tick = self.next_tick(tick)
            if tick > until:
                break
            count += 1
        return count

    def run_id(self, tick: float) -> str:
        """The id of the run of ``tick``: the same in every process, at every try."""
        return derived_run_id(tick, f"schedule\n{self.name}\n{tick!r}")

    def describe(self) -> dict[str, Any]:
        """The schedule's definition as JSON."""
        return {
            "name": self.name,
            "task": self.task,
            "args": self.args,
            "cron": self.cron,
            "every": self.every,
            "timezone": self.timezone,
            "catch_up": self.catch_up,
            "enabled": self.enabled,
        }
