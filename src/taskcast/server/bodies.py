"""Request bodies are read with the stores' own JSON rule (``models.strict_loads``).

Python's ``json`` accepts ``NaN``, ``Infinity``, ``1e400`` (read as infinity) and lone
surrogates (``"\\ud800"``), none of which a store can write back as JSON: a run holding one would
answer 500 on every read and break every listing that includes it. So every route with a body
parses it strictly, and such a body is a 422 that names the field, like any other bad request.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from ..models import strict_loads


class StrictJSONRequest(Request):
    """A request whose ``json()`` refuses what the stores could not read back."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = strict_loads(body)
            except json.JSONDecodeError:
                raise
            except (ValueError, RecursionError) as exc:
                # FastAPI turns a decode error into a 422 whose problem is this message.
                raise json.JSONDecodeError(str(exc), body.decode("utf-8", "replace"), 0) from None
        return self._json


class StrictJSONRoute(APIRoute):
    """An ``APIRoute`` whose handler reads the body with ``StrictJSONRequest``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handle(StrictJSONRequest(request.scope, request.receive))

        return strict
