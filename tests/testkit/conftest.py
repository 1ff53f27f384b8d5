"""Fixtures for the test kit's own tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from gallery_runner import INI, Snippet

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _without_django(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suites these tests run (inline or in a subprocess) load no pytest-django: this
    session configured Django for tests/django_project, and pytest-django would set its test
    environment up a second time in an inline session."""
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:django")


@pytest.fixture
def snippet(pytester: pytest.Pytester) -> Callable[[str], Snippet]:
    """Return a factory: ``snippet("leaked_task")`` copies that gallery file."""
    return lambda name: Snippet(pytester, name)


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """pytester with pytest-asyncio in auto mode and function-scoped loops, without
    pytest-django (set after pytester, which clears ``PYTEST_ADDOPTS``)."""
    pytester.makeini(INI)
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:django")
    return pytester
