"""Dependencies between runs: ``submit(..., after=[ids])`` (docs/semantics.md, "Workflows").

A run submitted ``after`` other runs stays ``queued`` until each of them has ended. Then it starts
if they all completed; if one failed, was cancelled or timed out, it fails with an error naming
that one (``after_policy="fail"``, the default) or starts anyway (``after_policy="always"``).

This module checks a submit at the door (every id exists, no cycle) and words the failure; the
coordinator does the waiting, from the terminal events the store commits.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidRequest
from ..models import Run
from ..states import ENDED_IN_WORDS, GONE_IN_WORDS, RunState
from ..stores.base import Store

AFTER_POLICIES = ("fail", "always")
"""What a dependency that did not complete does to its dependents: fail them, or run them."""

MAX_DEPENDENCIES = 1000


async def check_dependencies(store: Store, run_id: str, after: list[str]) -> list[Run]:
    """Refuse unknown ids and cycles; return the dependencies that have already ended.

    Raises ``InvalidRequest`` naming the id: one that no run has, the run's own id, or one that
    (transitively) waits for ``run_id`` already, which only an explicit id (an idempotency key
    re-used) can cause.
    """
    if len(after) > MAX_DEPENDENCIES:
        raise InvalidRequest(
            f"after lists {len(after)} runs; a run may wait for at most {MAX_DEPENDENCIES}"
        )
    if run_id in after:
        raise InvalidRequest(
            f"after: run {run_id!r} cannot wait for itself (a dependency cycle)", run_id=run_id
        )
    ended: list[Run] = []
    found: dict[str, Run] = {}
    for dependency_id in after:
        dependency = await store.get_run(dependency_id)
        if dependency is None:
            raise InvalidRequest(
                f"after: no run with id {dependency_id!r}; a run can only wait for runs that"
                " exist (submit it first)",
                run_id=dependency_id,
            )
        found[dependency_id] = dependency
        if dependency.is_finished:
            ended.append(dependency)
    await _refuse_cycles(store, run_id, found)
    return ended


async def _refuse_cycles(store: Store, run_id: str, dependencies: dict[str, Run]) -> None:
    """Walk what the dependencies wait for, transitively; reaching ``run_id`` is a cycle."""
    paths: dict[str, list[str]] = {dep: [dep] for dep in dependencies}
    pending = list(dependencies.values())
    seen = set(dependencies)
    while pending:
        run = pending.pop()
        for upstream in run.after:
            path = [*paths[run.id], upstream]
            if upstream == run_id:
                chain = " -> ".join([run_id, *path])
                raise InvalidRequest(
                    f"after: waiting for {path[0]!r} would make a dependency cycle ({chain})",
                    run_id=path[0],
                )
            if upstream in seen:
                continue
            seen.add(upstream)
            found = await store.get_run(upstream)
            if found is not None:
                paths[upstream] = path
                pending.append(found)


def dependency_error(
    dependency_id: str, state: RunState | None, error: dict[str, Any] | None
) -> dict[str, Any]:
    """The error a dependent fails with: ``{"type": "DependencyFailed", "message"}``."""
    if state is None:
        what = GONE_IN_WORDS
    else:
        what = ENDED_IN_WORDS.get(state, f"ended {state.value}")
    message = f"dependency {dependency_id} {what}"
    if error and error.get("message"):
        message += f": {error['message']}"
    return {"type": "DependencyFailed", "message": message}
