"""The README's Workflows example runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_workflows_example_runs_and_prints_its_results(tmp_path: Path) -> None:
    section = README.read_text().split("## Workflows", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "README.md lost its Workflows example"
    script = tmp_path / "workflows_example.py"
    script.write_text(code.group(1))
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["285", "5"]
