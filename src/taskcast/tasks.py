"""Registered tasks: a function, its name, its policy, and how to call it.

A task body may be

* an ``async def`` function: awaited;
* an async generator: each yielded dict becomes a ``progress`` event, the last one is the result;
* a sync generator: run in a worker thread, same rules as the async generator;
* a plain ``def`` function: run in a worker thread, never on the event loop.

If the first parameter is named ``ctx`` (or annotated ``Context``), the run's context is passed
there. The other parameters are the run's arguments: they are validated (and coerced, e.g. the
string "5" for an ``int``) by pydantic at submit time, so a bad argument is refused with the
parameter's name before anything is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import random
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal, Protocol

import pydantic

from .errors import InvalidArguments, InvalidRequest
from .limits import timeout_error
from .models import Event, compact_json
from .policies import RateLimit, Retention, check_priority


class Context(Protocol):
    """What invoking a body needs of the run's context (``taskcast.runs.context.Context``)."""

    run_id: str
    attempt: int

    async def emit(self, type: str, data: Any = None) -> Event: ...

    async def progress(
        self, current: float, total: float | None = None, message: str | None = None
    ) -> Event: ...

    async def log(self, message: str, level: str = "info") -> Event: ...

    async def step(
        self,
        name: str,
        fn: Callable[..., Any],
        /,
        *args: Any,
        retries: int = 0,
        backoff: float = 1.0,
        **kwargs: Any,
    ) -> Any: ...

    async def sleep(self, seconds: float) -> None: ...


class BodyKind(Enum):
    ASYNC_FUNCTION = "async function"
    ASYNC_GENERATOR = "async generator"
    SYNC_GENERATOR = "sync generator"
    SYNC_FUNCTION = "sync function"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How failed attempts are retried: exponential backoff with full jitter.

    The delay before attempt ``n + 1`` is uniform in ``[0, min(backoff_max, backoff * 2**(n-1))]``
    (``jitter=False``: exactly that upper bound). Only exceptions that are instances of
    ``retry_on`` are retried; timeouts and cancellations never are.
    """

    retries: int = 0
    backoff: float = 1.0
    backoff_max: float = 60.0
    jitter: bool = True
    retry_on: tuple[type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        if not self.backoff >= 0 or not self.backoff_max >= 0:
            raise ValueError("backoff and backoff_max must be >= 0 seconds")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        ceiling: float = min(self.backoff_max, self.backoff * 2 ** (attempt - 1))
        return random.uniform(0, ceiling) if self.jitter else ceiling

    def should_retry(self, error: BaseException) -> bool:
        return isinstance(error, self.retry_on)


@dataclass(slots=True)
class TaskDefinition:
    """A registered task: what ``@app.task`` builds. See the module docstring for body kinds.

    ``concurrency`` is per task, or per value of the ``concurrency_key`` argument when one is
    named; ``rate_limit`` per task, or per value of ``rate_key``; ``priority`` is the default of
    its runs; ``retention`` overrides the App's for its finished runs.
    """

    name: str
    function: Callable[..., Any]
    timeout: float | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    concurrency: int | None = None
    concurrency_key: str | None = None
    rate_limit: RateLimit | None = None
    rate_key: str | None = None
    priority: int = 0
    retention: Retention | None = None
    description: str = ""
    kind: BodyKind = BodyKind.ASYNC_FUNCTION
    wants_context: bool = False
    parameters: list[inspect.Parameter] = field(default_factory=list)
    _arguments_model: type[pydantic.BaseModel] | None = None

    @classmethod
    def from_function(
        cls,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        concurrency: int | None = None,
        concurrency_key: str | None = None,
        rate_limit: str | RateLimit | None = None,
        rate_key: str | None = None,
        priority: int = 0,
        retention: Retention | str | float | None = None,
    ) -> TaskDefinition:
        """Inspect ``function`` and build its definition. Raises ``ValueError`` on a bad policy
        (naming the option: a rate limit that is not ``"N/s|m|h"``, a key that is not a
        parameter of the function, a priority outside 0-9...)."""
        if (problem := timeout_error(timeout, "timeout")) is not None:
            raise ValueError(problem)
        if concurrency is not None and (
            isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
        ):
            raise ValueError(f"concurrency must be an integer >= 1, got {concurrency!r}")
        try:
            parsed_rate = (
                rate_limit
                if rate_limit is None or isinstance(rate_limit, RateLimit)
                else RateLimit.parse(rate_limit)
            )
            check_priority(priority)
            parsed_retention = None if retention is None else Retention.parse(retention)
        except InvalidRequest as exc:
            raise ValueError(exc.message) from None
        if concurrency_key is not None and concurrency is None:
            raise ValueError(
                f"concurrency_key={concurrency_key!r} needs concurrency=K: how many runs at once"
                " per value of that argument"
            )
        if rate_key is not None and parsed_rate is None:
            raise ValueError(
                f'rate_key={rate_key!r} needs rate_limit="N/s|m|h": the rate per value of that'
                " argument"
            )
        # The function's own name, as written (and as arq, SAQ and Dramatiq name tasks): the
        # module it lives in does not change what a user types in curl or the CLI.
        task_name = name or function.__name__
        try:
            # Modules with `from __future__ import annotations` keep annotations as strings.
            signature = inspect.signature(function, eval_str=True)
        except NameError:  # a name imported only under TYPE_CHECKING: keep the strings
            signature = inspect.signature(function)
        params = list(signature.parameters.values())
        wants_context = bool(params) and (
            params[0].name == "ctx" or _is_context_annotation(params[0].annotation)
        )
        if wants_context:
            params = params[1:]
        names = [p.name for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD]
        for option, key in (("concurrency_key", concurrency_key), ("rate_key", rate_key)):
            if key is not None and key not in names:
                raise ValueError(
                    f"{option}={key!r} is not a parameter of task {task_name!r}; its parameters:"
                    f" {', '.join(names) or 'none'}"
                )
        definition = cls(
            name=task_name,
            function=function,
            timeout=timeout,
            retry=retry or RetryPolicy(),
            concurrency=concurrency,
            concurrency_key=concurrency_key,
            rate_limit=parsed_rate,
            rate_key=rate_key,
            priority=priority,
            retention=parsed_retention,
            description=inspect.getdoc(function) or "",
            kind=_body_kind(function),
            wants_context=wants_context,
            parameters=params,
        )
        definition._arguments_model = _arguments_model(task_name, params)
        return definition

    @property
    def max_attempts(self) -> int:
        return self.retry.retries + 1

    @property
    def task_concurrency(self) -> int | None:
        """Runs of this task at once in all (``None`` when ``concurrency`` is per key)."""
        return self.concurrency if self.concurrency_key is None else None

    def concurrency_key_of(self, args: dict[str, Any]) -> str | None:
        """The value of the ``concurrency_key`` argument in ``args`` (as JSON), or None."""
        return None if self.concurrency_key is None else self._argument(args, self.concurrency_key)

    def rate_key_of(self, args: dict[str, Any]) -> str | None:
        """The value of the ``rate_key`` argument in ``args`` (as JSON), or None: runs with the
        same value share one rate (every run of the task shares it without a ``rate_key``)."""
        return None if self.rate_key is None else self._argument(args, self.rate_key)

    def _argument(self, args: dict[str, Any], name: str) -> str:
        if name in args:
            value = args[name]
        else:  # left to its default: runs that omit it share the default's limit
            value = next((p.default for p in self.parameters if p.name == name), None)
            if value is inspect.Parameter.empty:
                value = None
        try:
            return compact_json(value)
        except (TypeError, ValueError, RecursionError):
            return repr(value)

    def validate_arguments(self, args: dict[str, Any]) -> dict[str, Any]:
        """The arguments as JSON-ready values, or ``InvalidArguments`` naming each bad one."""
        model = self._arguments_model
        if model is None:
            if args:
                raise InvalidArguments(
                    self.name,
                    [
                        {"param": key, "problem": "unexpected argument (the task takes none)"}
                        for key in args
                    ],
                )
            return {}
        try:
            validated = model.model_validate(args)
        except pydantic.ValidationError as exc:
            raise InvalidArguments(self.name, _problems(exc)) from None
        dumped: dict[str, Any] = validated.model_dump(mode="json", exclude_unset=True)
        return dumped

    def _call_arguments(self, args: dict[str, Any]) -> dict[str, Any]:
        """Stored JSON arguments back to the Python values the function declared."""
        model = self._arguments_model
        if model is None:
            return {}
        validated = model.model_validate(args)
        values = {name: getattr(validated, name) for name in validated.model_fields_set}
        values.update(validated.model_extra or {})
        return values

    def describe(self) -> dict[str, Any]:
        """The task as JSON: name, description, parameters (JSON Schema) and policy."""
        schema = (
            self._arguments_model.model_json_schema()
            if self._arguments_model is not None
            else {"type": "object", "properties": {}, "additionalProperties": False}
        )
        return {
            "name": self.name,
            "description": self.description,
            "kind": self.kind.value,
            "parameters": schema,
            "timeout": self.timeout,
            "max_attempts": self.max_attempts,
            "concurrency": self.concurrency,
            "concurrency_key": self.concurrency_key,
            "rate_limit": None if self.rate_limit is None else str(self.rate_limit),
            "rate_key": self.rate_key,
            "priority": self.priority,
            "retention": None if self.retention is None else str(self.retention),
        }

    def invoke(self, context: Context, args: dict[str, Any]) -> Awaitable[Any]:
        """The body once with ``args``, to await for its result (see module docstring).

        An async function's own coroutine is returned as it is, not wrapped in another: one
        coroutine less per run."""
        kwargs = self._call_arguments(args)
        if self.kind is BodyKind.ASYNC_FUNCTION:
            if self.wants_context:
                return self.function(context, **kwargs)  # type: ignore[no-any-return]
            return self.function(**kwargs)  # type: ignore[no-any-return]
        if self.kind is BodyKind.ASYNC_GENERATOR:
            return self._drain_async_generator(context, kwargs)
        return self._run_in_thread(context, kwargs)

    async def _drain_async_generator(self, context: Context, kwargs: dict[str, Any]) -> Any:
        generator = (
            self.function(context, **kwargs) if self.wants_context else self.function(**kwargs)
        )
        last: Any = None
        async with contextlib.aclosing(generator):
            async for item in generator:
                await context.emit("progress", item)
                last = item
        return last

    async def _run_in_thread(self, context: Context, kwargs: dict[str, Any]) -> Any:
        """Run a sync body in a worker thread; cancel sets ``ctx.cancelled`` for it to see.

        A sync generator is stopped at its next ``yield`` (its ``finally`` runs in the thread)
        and this waits for that. A plain function cannot be interrupted: the run is recorded as
        cancelled at once and the thread's eventual result is dropped.
        """
        loop = asyncio.get_running_loop()
        bridge = ThreadContext(context, loop)
        positional = (bridge,) if self.wants_context else ()
        if self.kind is BodyKind.SYNC_FUNCTION:
            try:
                return await asyncio.to_thread(self.function, *positional, **kwargs)
            finally:
                bridge._cancelled.set()
        future = loop.run_in_executor(None, self._drain_sync_generator, bridge, positional, kwargs)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            bridge._cancelled.set()
            with contextlib.suppress(Exception):
                await future  # let the generator's finally run before we report `cancelled`
            raise

    def _drain_sync_generator(
        self, bridge: ThreadContext, positional: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        generator = self.function(*positional, **kwargs)
        last: Any = None
        with contextlib.closing(generator):
            for item in generator:
                if bridge.cancelled:
                    break
                bridge.emit("progress", item)
                last = item
        return last


class ThreadContext:
    """What a sync task body gets as ``ctx``: blocking versions of ``Context``'s methods.

    ``cancelled`` turns true when the run is cancelled or times out: long sync work should check
    it and return early, since a thread cannot be interrupted from outside.
    """

    def __init__(self, context: Context, loop: asyncio.AbstractEventLoop) -> None:
        self._context = context
        self._loop = loop
        self._cancelled = threading.Event()
        self.run_id = context.run_id
        self.attempt = context.attempt

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def emit(self, type: str, data: Any = None) -> None:
        """Append an event to the run's log; blocks until it is stored."""
        asyncio.run_coroutine_threadsafe(self._context.emit(type, data), self._loop).result()

    def progress(
        self, current: float, total: float | None = None, message: str | None = None
    ) -> None:
        asyncio.run_coroutine_threadsafe(
            self._context.progress(current, total, message), self._loop
        ).result()

    def log(self, message: str) -> None:
        asyncio.run_coroutine_threadsafe(self._context.log(message), self._loop).result()

    def step(
        self,
        name: str,
        fn: Callable[..., Any],
        /,
        *args: Any,
        retries: int = 0,
        backoff: float = 1.0,
        **kwargs: Any,
    ) -> Any:
        """``Context.step``, blocking: ``fn`` runs (a plain function in another worker thread)
        or its recorded result comes back."""
        call = self._context.step(name, fn, *args, retries=retries, backoff=backoff, **kwargs)
        return asyncio.run_coroutine_threadsafe(call, self._loop).result()

    def sleep(self, seconds: float) -> None:
        """``Context.sleep``, blocking (durable: a body that runs again sleeps only the rest)."""
        asyncio.run_coroutine_threadsafe(self._context.sleep(seconds), self._loop).result()


def _body_kind(function: Callable[..., Any]) -> BodyKind:
    if inspect.isasyncgenfunction(function):
        return BodyKind.ASYNC_GENERATOR
    if inspect.iscoroutinefunction(function):
        return BodyKind.ASYNC_FUNCTION
    if inspect.isgeneratorfunction(function):
        return BodyKind.SYNC_GENERATOR
    if callable(function):
        return BodyKind.SYNC_FUNCTION
    raise TypeError(f"a task must be a function, got {function!r}")


def _is_context_annotation(annotation: Any) -> bool:
    name = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    return isinstance(name, str) and name.rsplit(".", 1)[-1] == "Context"


def _arguments_model(
    task_name: str, params: list[inspect.Parameter]
) -> type[pydantic.BaseModel] | None:
    if not params:
        return None
    fields: dict[str, Any] = {}
    extra: Literal["forbid", "allow"] = "forbid"
    for param in params:
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            extra = "allow"
            continue
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.POSITIONAL_ONLY):
            raise TypeError(
                f"task {task_name!r}: parameter {param.name!r} cannot be passed by name;"
                " task arguments are keyword arguments"
            )
        annotation = Any if param.annotation is inspect.Parameter.empty else param.annotation
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (annotation, default)
    # A ``float`` parameter refuses NaN and infinity (no store could write them back); any
    # other field keeps them as they are (not ``null``), for submit to refuse: NotSerializable.
    config = pydantic.ConfigDict(
        extra=extra, arbitrary_types_allowed=True, allow_inf_nan=False, ser_json_inf_nan="constants"
    )
    model: type[pydantic.BaseModel] = pydantic.create_model(
        f"{task_name}.arguments", __config__=config, **fields
    )
    return model


def _problems(error: pydantic.ValidationError) -> list[dict[str, Any]]:
    problems = []
    for item in error.errors(include_url=False):
        location = ".".join(str(part) for part in item["loc"]) or "(arguments)"
        message = item["msg"]
        if item["type"] == "missing":
            message = "required argument is missing"
        elif item["type"] == "extra_forbidden":
            message = "unexpected argument (not a parameter of the task)"
        problems.append({"param": location, "problem": message})
    return problems
