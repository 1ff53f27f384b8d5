"""The README's FastAPI example runs as written, under a real uvicorn."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from ..uvicorn_server import uvicorn_server

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_fastapi_example_serves_its_route_and_the_mounted_api(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    example = next(block for block in blocks if "taskcast.asgi(" in block)
    (tmp_path / "main.py").write_text(example)
    auth = {"Authorization": "Bearer change-me"}
    with (
        uvicorn_server(tmp_path, "main:api", cwd=tmp_path) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        answer = client.post("/greetings", params={"name": "ada"}, headers=auth)
        assert answer.status_code == 200, answer.text
        with client.stream("GET", answer.json()["events"], headers=auth) as stream:
            body = stream.read().decode()
        run = client.get(f"/taskcast/runs/{answer.json()['run']}", headers=auth).json()
    assert "event: completed" in body
    assert run["result"] == "hello ada"
