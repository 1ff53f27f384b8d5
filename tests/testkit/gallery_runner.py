"""Run a gallery snippet (tests/testkit/gallery) in a nested pytest session."""

from __future__ import annotations

from pathlib import Path

import pytest

GALLERY = Path(__file__).parent / "gallery"

INI = """\
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
taskcast_leak_guard = true
"""


class Snippet:
    """A gallery snippet copied into a pytester directory, ready to run."""

    def __init__(self, pytester: pytest.Pytester, name: str) -> None:
        self.source = (GALLERY / f"{name}.py").read_text()
        self.filename = f"test_{name}.py"
        self.pytester = pytester
        pytester.makeini(INI)
        pytester.makepyfile(**{f"test_{name}": self.source})

    def line_of(self, marker: str) -> int:
        """Return the 1-based line number of the first line containing *marker*."""
        for number, line in enumerate(self.source.splitlines(), start=1):
            if marker in line:
                return number
        raise AssertionError(f"{marker!r} not in snippet {self.filename}")

    def site(self, marker: str = "# BUG") -> str:
        """Return ``file:line`` of the line containing *marker*, as reports print it."""
        return f"{self.filename}:{self.line_of(marker)}"

    def run(self, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest("-v", "-p", "no:cacheprovider", *args)

    def run_in_a_process(self, *args: str) -> pytest.RunResult:
        """Run it in its own process: what the nested session leaves ends with it."""
        return self.pytester.runpytest_subprocess("-v", "-p", "no:cacheprovider", *args)
