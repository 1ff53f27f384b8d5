"""The plugin waits to be asked: inert until enabled, and cheap to import."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest
from gallery_runner import Snippet

# Run in a fresh interpreter: this one has imported the whole application already.
_IMPORT_PLUGIN = """
import sys
import pytest
before = set(sys.modules)
import taskcast.testing.plugin
added = sorted(set(sys.modules) - before)
print(",".join(added))
"""

# What `pip install --no-deps taskcast` leaves out of a venv: the application's own
# dependencies. A suite in that venv must still run, and the guard must still work.
_WITHOUT_APP_DEPENDENCIES = """
import sys
import importlib.abc

class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"httpx", "fastapi", "pydantic", "redis", "uvicorn", "rich"}:
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, Missing())
import pytest
sys.exit(pytest.main(sys.argv[1:]))
"""


def test_importing_the_plugin_loads_only_the_standard_library_and_pytest() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_PLUGIN], capture_output=True, text=True, check=True
    ).stdout
    added = out.strip().split(",")
    assert set(added) <= {"taskcast", "taskcast.testing", "taskcast.testing.plugin"}, added
    for heavy in ("httpx", "fastapi", "pydantic", "redis", "uvicorn", "asyncio"):
        assert heavy not in added


_NO_GUARD_INI = "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"


@pytest.mark.allow_leaks(reason="the nested session leaks a task on purpose, unguarded")
def test_the_plugin_is_inert_until_enabled(snippet: Callable[[str], Snippet]) -> None:
    example = snippet("leaked_task")
    example.pytester.makeini(_NO_GUARD_INI)
    example.run().assert_outcomes(passed=2)


def test_the_command_line_option_enables_the_guard(snippet: Callable[[str], Snippet]) -> None:
    example = snippet("leaked_task")
    example.pytester.makeini(_NO_GUARD_INI)
    example.run("--taskcast-leaks").assert_outcomes(passed=2, errors=1)


def test_a_venv_without_the_application_dependencies_still_runs_the_guard(
    pytester: pytest.Pytester, snippet: Callable[[str], Snippet]
) -> None:
    example = snippet("leaked_task")
    runner = pytester.makepyfile(run_without_deps=_WITHOUT_APP_DEPENDENCIES)
    result = subprocess.run(
        [sys.executable, str(runner), "-p", "no:cacheprovider", "-q", "-rN", example.filename],
        cwd=pytester.path,
        capture_output=True,
        text=True,
    )
    assert "No module named" not in result.stdout + result.stderr
    assert "1 error" in result.stdout and "2 passed" in result.stdout, result.stdout
