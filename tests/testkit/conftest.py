"""Fixtures for the test kit's own tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from gallery_runner import INI, Snippet

pytest_plugins = ["pytester"]


@pytest.fixture
def snippet(pytester: pytest.Pytester) -> Callable[[str], Snippet]:
    """Return a factory: ``snippet("leaked_task")`` copies that gallery file."""
    return lambda name: Snippet(pytester, name)


@pytest.fixture
def pytester(pytester: pytest.Pytester) -> pytest.Pytester:
    """pytester with pytest-asyncio in auto mode and function-scoped loops."""
    pytester.makeini(INI)
    return pytester
