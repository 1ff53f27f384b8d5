"""Trace context of runs: W3C ``traceparent`` in, OpenTelemetry spans out (``taskcast[otel]``).

A run stores the ``traceparent`` it continues (``Run.traceparent``), so whichever process runs
it (a Redis worker, after a restart) joins the same trace. At submit the trace context is taken
from, in order: the ``traceparent`` given (the Python API's argument), the current
OpenTelemetry span (a traced view or job submitting), the HTTP request's ``traceparent``
header (``incoming``, set by ``server.tracing``).

With ``opentelemetry-api`` installed (the ``otel`` extra) and a tracer provider configured:
each submit writes a short ``submit <task>`` span (PRODUCER), a child of the submitter's span
or the root of a new trace, whose context the run stores: a trace per run. Each attempt is a
``run <task>`` span (CONSUMER) under it, with the run's id, task and attempt as attributes; a
child run's submit span is a child of its parent's attempt span. A failure is recorded on the
attempt's span as an exception with status ERROR; a cancel, a timeout or a shutdown as an
event (``cancelled``, ``timed_out``, ``shutdown``) and the attribute ``taskcast.outcome``.

Without the package, every function here is a cheap no-op beyond storing a header's value:
nothing is imported, nothing is allocated per attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from .errors import InvalidRequest

if TYPE_CHECKING:
    from .models import Run

TRACEPARENT_PATTERN = r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-[ -~]*)?$"
"""W3C Trace Context's ``traceparent``: version, trace id, parent id, flags (lower-case hex);
a later version may append fields, which are kept as sent."""

_TRACEPARENT = re.compile(TRACEPARENT_PATTERN.replace("$", r"\Z"))
MAX_TRACEPARENT = 512

incoming: ContextVar[str | None] = ContextVar("taskcast_incoming_traceparent", default=None)
"""The ``traceparent`` header of the HTTP request being served (``server.tracing``)."""

_OTEL: Any = None
_CHECKED = False


def traceparent_error(value: object) -> str | None:
    """Why ``value`` is not a usable ``traceparent``, or None if it is. Version ``ff`` and
    all-zero trace or parent ids are invalid (W3C Trace Context, section 3.2)."""
    if (
        isinstance(value, str)
        and len(value) <= MAX_TRACEPARENT
        and _TRACEPARENT.match(value)
        and not value.startswith("ff")
        and value[3:35] != "0" * 32
        and value[36:52] != "0" * 16
        and (len(value) == 55 or not value.startswith("00"))  # version 00 has no more fields
    ):
        return None
    return (
        "traceparent must be a W3C trace context: 00-<32 hex trace id>-<16 hex parent id>-"
        "<2 hex flags>, in lower case, ids not all zeros"
    )


def check_traceparent(value: Any) -> str | None:
    """``value`` if None or a valid ``traceparent``, else ``InvalidRequest`` naming it."""
    if value is None:
        return None
    problem = traceparent_error(value)
    if problem is not None:
        raise InvalidRequest(problem, param="traceparent")
    return str(value)


def _otel() -> Any:
    """The ``_Otel`` helper if ``opentelemetry`` is installed (checked once) and a tracer
    provider is set (checked per call: the application may set it after importing taskcast),
    else None."""
    global _OTEL, _CHECKED
    if not _CHECKED:
        _CHECKED = True
        try:
            _OTEL = _Otel()
        except ImportError:
            _OTEL = None
    if _OTEL is None or not _OTEL.tracing():
        return None
    return _OTEL


def current_traceparent() -> str | None:
    """The current OpenTelemetry span's ``traceparent`` (for a client's request), or None:
    no span, or no OpenTelemetry."""
    otel = _otel()
    if otel is None:
        return None
    return _format(otel.trace.get_current_span().get_span_context())


def on_submit(run: Run, given: str | None) -> None:
    """Set ``run.traceparent`` for a new run (see the module docstring for where from)."""
    otel = _otel()
    if otel is None:
        run.traceparent = given if given is not None else incoming.get()
        return
    run.traceparent = otel.submitted(run, given if given is not None else incoming.get())


_NOTHING = contextlib.nullcontext()


def attempt(
    run: Run, number: int, outcome: Callable[[], str | None]
) -> contextlib.AbstractContextManager[None]:
    """The span of ``run``'s attempt ``number`` around its body (no-op without OpenTelemetry).

    ``outcome()`` is asked when the body was cancelled: ``"cancelled"``, ``"timed_out"`` or
    ``"shutdown"`` (None: a cancel from outside taskcast)."""
    otel = _otel()
    if otel is None:
        return _NOTHING
    manager: contextlib.AbstractContextManager[None] = otel.attempt(run, number, outcome)
    return manager


class _Otel:
    """The OpenTelemetry side, imported only when the package is there."""

    def __init__(self) -> None:
        from opentelemetry import context, trace
        from opentelemetry.trace import SpanKind, Status, StatusCode
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.trace = trace
        self.context = context
        # What get_tracer_provider returns while the application set none: spans would be
        # dropped, so nothing is made (a run costs nothing more than without the package).
        self.unset = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
        self.provider_set = False
        trace.get_tracer_provider()  # sets one up from OTEL_PYTHON_TRACER_PROVIDER, if named
        self.kind = SpanKind
        self.status = Status
        self.code = StatusCode
        self.propagator = TraceContextTextMapPropagator()

    def tracing(self) -> bool:
        """True once the application set a tracer provider (it cannot be unset again)."""
        if self.provider_set:
            return True
        # The module's global, read directly: get_tracer_provider() reads os.environ on every
        # call, which would cost every run a few microseconds while nothing is traced.
        provider = getattr(self.trace, "_TRACER_PROVIDER", None)
        self.provider_set = provider is not None and not isinstance(provider, self.unset)
        return self.provider_set

    def _tracer(self) -> Any:
        # Asked per use: the application may set its provider after importing taskcast.
        return self.trace.get_tracer("taskcast")

    def _parent(self, traceparent: str | None) -> Any:
        if traceparent is None:
            return None
        return self.propagator.extract({"traceparent": traceparent})

    def submitted(self, run: Run, given: str | None) -> str | None:
        current = self.trace.get_current_span().get_span_context()
        if given is not None:
            parent = self._parent(given)
        elif current.is_valid:
            parent = None  # the current context
        else:
            parent = self._parent(incoming.get())
        span = self._tracer().start_span(
            f"submit {run.task}",
            context=parent,
            kind=self.kind.PRODUCER,
            attributes={"taskcast.run_id": run.id, "taskcast.task": run.task},
        )
        span.end()
        if not span.get_span_context().is_valid:  # a provider that records nothing
            return given if given is not None else _format(current) or incoming.get()
        carrier: dict[str, str] = {}
        self.propagator.inject(carrier, context=self.trace.set_span_in_context(span))
        return carrier.get("traceparent")

    @contextlib.contextmanager
    def attempt(self, run: Run, number: int, outcome: Callable[[], str | None]) -> Iterator[None]:
        attributes: dict[str, Any] = {
            "taskcast.run_id": run.id,
            "taskcast.task": run.task,
            "taskcast.attempt": number,
        }
        if run.parent_id is not None:
            attributes["taskcast.parent_id"] = run.parent_id
        with self._tracer().start_as_current_span(
            f"run {run.task}",
            context=self._parent(run.traceparent),
            kind=self.kind.CONSUMER,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield
            except BaseException as exc:
                if isinstance(exc, asyncio.CancelledError):
                    ended = outcome() or "cancelled"
                    span.add_event(ended)
                    span.set_attribute("taskcast.outcome", ended)
                    if ended != "shutdown":
                        span.set_status(self.status(self.code.ERROR, ended))
                else:
                    span.record_exception(exc)
                    span.set_attribute("taskcast.outcome", "failed")
                    span.set_status(self.status(self.code.ERROR, f"{type(exc).__name__}: {exc}"))
                raise
            span.set_attribute("taskcast.outcome", "completed")


def _format(span_context: Any) -> str | None:
    if not span_context.is_valid:
        return None
    return (
        f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}"
        f"-{int(span_context.trace_flags):02x}"
    )
