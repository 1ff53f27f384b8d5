"""Workflow tests run against the memory store and a real SQLite file.

Not against Redis: child runs and ``after=`` dependencies are not supported on a shared store
yet, and are refused there with a clear error (``test_refused_on_a_shared_store.py``).
"""

from pathlib import Path

import pytest

from tests.engine.conftest import app, make_app

__all__ = ["app", "make_app", "store_url"]


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    return f"sqlite:///{tmp_path / 'runs.db'}"
