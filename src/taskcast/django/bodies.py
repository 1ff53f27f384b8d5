"""Task bodies that use Django's ORM: connections handled, model instances loaded by key.

A sync body runs in a worker thread (``taskcast.tasks``); Django opens a database connection
per thread and never closes it by itself outside a request, so ``close_old_connections`` runs
before and after each run in that thread (as Django does around a request): a connection that
broke or outlived ``CONN_MAX_AGE`` is not reused. An async body uses the async ORM as is.

A parameter annotated with a model class (``order: Order``) is the model's primary key in the
run's arguments (JSON has no model instances): its JSON schema is the key's, and the body gets
the instance, loaded in the run (``Order.DoesNotExist`` fails the run if it is gone).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from django.db import close_old_connections
from django.db.models import Model

_INTEGER_KEYS = frozenset(
    {
        "AutoField",
        "BigAutoField",
        "SmallAutoField",
        "IntegerField",
        "BigIntegerField",
        "SmallIntegerField",
        "PositiveIntegerField",
        "PositiveBigIntegerField",
        "PositiveSmallIntegerField",
    }
)


def _model_of(annotation: Any) -> type[Model] | None:
    if inspect.isclass(annotation) and issubclass(annotation, Model):
        return annotation
    return None


def _key_type(model: type[Model]) -> type:
    key = model._meta.pk
    assert key is not None
    return int if key.get_internal_type() in _INTEGER_KEYS else str


def django_body(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` wrapped for taskcast (see the module docstring); its signature shows each
    model parameter as the model's key type."""
    try:
        signature = inspect.signature(function, eval_str=True)
    except NameError:
        signature = inspect.signature(function)
    models = {
        name: model
        for name, parameter in signature.parameters.items()
        if (model := _model_of(parameter.annotation)) is not None
    }
    wrapper = _wrap(function, models)
    functools.update_wrapper(wrapper, function)
    del wrapper.__wrapped__  # type: ignore[attr-defined]  # the signature below is the one
    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[
            parameter.replace(annotation=_key_type(models[name])) if name in models else parameter
            for name, parameter in signature.parameters.items()
        ]
    )
    return wrapper


def _load(models: dict[str, type[Model]], kwargs: dict[str, Any]) -> None:
    for name, model in models.items():
        if name in kwargs and not isinstance(kwargs[name], model):
            kwargs[name] = model._default_manager.get(pk=kwargs[name])


async def _aload(models: dict[str, type[Model]], kwargs: dict[str, Any]) -> None:
    for name, model in models.items():
        if name in kwargs and not isinstance(kwargs[name], model):
            kwargs[name] = await model._default_manager.aget(pk=kwargs[name])


def _wrap(function: Callable[..., Any], models: dict[str, type[Model]]) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(function):

        async def async_generator(*args: Any, **kwargs: Any) -> Any:
            await _aload(models, kwargs)
            async for item in function(*args, **kwargs):
                yield item

        return async_generator
    if inspect.iscoroutinefunction(function):

        async def coroutine(*args: Any, **kwargs: Any) -> Any:
            await _aload(models, kwargs)
            return await function(*args, **kwargs)

        return coroutine
    if inspect.isgeneratorfunction(function):

        def generator(*args: Any, **kwargs: Any) -> Any:
            close_old_connections()
            try:
                _load(models, kwargs)
                yield from function(*args, **kwargs)
            finally:
                close_old_connections()

        return generator

    def plain(*args: Any, **kwargs: Any) -> Any:
        close_old_connections()
        try:
            _load(models, kwargs)
            return function(*args, **kwargs)
        finally:
            close_old_connections()

    return plain


def as_arguments(args: dict[str, Any]) -> dict[str, Any]:
    """``args`` with each model instance replaced by its primary key (what the run stores)."""
    return {name: value.pk if isinstance(value, Model) else value for name, value in args.items()}
