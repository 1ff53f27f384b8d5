"""Every example in docs/testing.md runs, with the outcome the page claims."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).parents[2] / "docs" / "testing.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)


def _expectation(source: str) -> str:
    first = source.splitlines()[0]
    found = re.match(r"# expect: (\w+)", first)
    return found.group(1) if found else "passes"


def test_docs_have_examples() -> None:
    assert len(BLOCKS) >= 8


@pytest.mark.parametrize("source", BLOCKS, ids=[f"example-{n}" for n in range(len(BLOCKS))])
def test_docs_example_runs_as_documented(pytester: pytest.Pytester, source: str) -> None:
    pytester.makepyfile(test_example=source)
    result = pytester.runpytest("-W", "error::RuntimeWarning")
    outcomes = result.parseoutcomes()
    expected = _expectation(source)
    if expected == "passes":
        assert outcomes.get("passed", 0) >= 1, result.stdout.str()
        assert not {"failed", "errors"} & outcomes.keys(), result.stdout.str()
    elif expected == "fails":
        assert outcomes.get("failed", 0) == 1, result.stdout.str()
    else:
        assert outcomes.get("errors", 0) == 1, result.stdout.str()
