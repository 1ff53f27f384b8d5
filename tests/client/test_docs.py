"""The client examples of README.md and docs/client.md run as written against a real server."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ..server.live import LiveServer

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_URL = "http://127.0.0.1:8000"


def client_examples(path: Path) -> list[str]:
    """The Python blocks of ``path`` that talk to a server at the default URL."""
    blocks = re.findall(r"```python\n(.*?)```", path.read_text(), re.S)
    return [block for block in blocks if f'Client("{DEFAULT_URL}"' in block]


EXAMPLES = [
    pytest.param(code, id=f"{path.name}-{index}")
    for path in (ROOT / "README.md", ROOT / "docs" / "client.md")
    for index, code in enumerate(client_examples(path))
]


def test_the_docs_show_the_client_sync_and_async() -> None:
    for path in (ROOT / "README.md", ROOT / "docs" / "client.md"):
        examples = client_examples(path)
        assert any("taskcast.Client(" in code for code in examples), path
        assert any("taskcast.AsyncClient(" in code for code in examples), path


@pytest.mark.parametrize("code", EXAMPLES)
def test_a_client_example_runs_and_sees_its_run_complete(
    code: str, server: LiveServer, tmp_path: Path
) -> None:
    script = tmp_path / "example.py"
    script.write_text(code.replace(DEFAULT_URL, server.url))
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("1 queued") and lines[-1] == "completed"
