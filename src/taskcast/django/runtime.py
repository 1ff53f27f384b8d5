"""``taskcast.django.runtime:app``: the project's App for the command line (the management
commands pass it as ``--app``); Django must be set up first."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "app":
        from .conf import get_app

        return get_app()
    raise AttributeError(name)
