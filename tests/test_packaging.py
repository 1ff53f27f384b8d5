"""What ships in the package: a wheel carries the dashboard's static files; `python -m build`
makes a wheel and an sdist that install in a fresh virtual environment and serve the dashboard;
the CHANGELOG has a section per version, the newest being the package's."""

import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import tomllib
import zipfile
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
DASHBOARD_FILES = {
    "index.html",
    "dashboard.css",
    "dashboard.js",
    "charts.js",
    "bulk.js",
    "timeline.js",
    "uPlot.iife.min.js",
    "uPlot.min.css",
    "uPlot.LICENSE.txt",
}


INSTALL_TIMEOUT = 600
"""Seconds to install the wheel's dependencies into a fresh environment (from the index)."""

READY = re.compile(r"taskcast serving on (http://127\.0\.0\.1:\d+)")


def _source_copy(tmp_path: Path) -> Path:
    """The files a build reads, copied, so that building leaves nothing in the work tree."""
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(REPO / "src", source / "src", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    return source


def test_the_wheel_ships_the_dashboard_files(tmp_path: Path) -> None:
    source = _source_copy(tmp_path)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = tmp_path.glob("taskcast-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = {Path(name).name for name in archive.namelist() if "/dashboard/static/" in name}
    assert names == DASHBOARD_FILES


def test_the_shipped_uplot_is_the_release_named_with_its_licence() -> None:
    from taskcast.server.dashboard import UPLOT_VERSION

    static = REPO / "src/taskcast/server/dashboard/static"
    script = (static / "uPlot.iife.min.js").read_text()
    assert script.startswith(f"/*! https://github.com/leeoniya/uPlot (v{UPLOT_VERSION}) */")
    licence = (static / "uPlot.LICENSE.txt").read_text()
    assert "The MIT License" in licence and "Leon Sorokin" in licence


def test_the_changelog_has_a_section_per_version_the_newest_being_the_packages() -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    headings = re.findall(r"^## (.+)$", (REPO / "CHANGELOG.md").read_text(), re.MULTILINE)
    assert headings, "no version section"
    pattern = re.compile(r"(\d+\.\d+\.\d+) \((unreleased|\d{4}-\d{2}-\d{2})\)")
    for heading in headings:
        assert pattern.fullmatch(heading), f"{heading!r} is not 'X.Y.Z (YYYY-MM-DD|unreleased)'"
    versions = [pattern.fullmatch(heading).group(1) for heading in headings]  # type: ignore[union-attr]
    assert versions[0] == version, "the newest section is the version in pyproject.toml"
    assert len(set(versions)) == len(versions)
    assert all("unreleased" not in heading for heading in headings[1:]), "only the newest is"


@pytest.mark.timeout(INSTALL_TIMEOUT + 300)
def test_the_built_wheel_installs_in_a_fresh_venv_and_serves_the_dashboard(tmp_path: Path) -> None:
    source = _source_copy(tmp_path)
    dist = tmp_path / "dist"
    # The release shape: the sdist, then the wheel built from it (so the sdist is complete).
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(dist), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    [sdist] = dist.glob(f"taskcast-{version}.tar.gz")
    [wheel] = dist.glob(f"taskcast-{version}-py3-none-any.whl")
    with tarfile.open(sdist) as archive:
        assert any(name.endswith("dashboard/static/dashboard.js") for name in archive.getnames())

    venv = tmp_path / "venv"  # fresh: nothing of this environment or of the work tree in it
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python, taskcast = venv / "bin" / "python", venv / "bin" / "taskcast"
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
        check=True,
        capture_output=True,
        timeout=INSTALL_TIMEOUT,
        env=env,
        cwd=tmp_path,
    )
    found = subprocess.run(
        [str(python), "-c", "import taskcast; print(taskcast.__file__, taskcast.__version__)"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    ).stdout.split()
    assert found[0].startswith(str(venv)) and found[1] == version
    shown = subprocess.run([str(taskcast), "--version"], capture_output=True, text=True, env=env)
    assert shown.stdout.strip() == f"taskcast {version}"

    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [str(taskcast), "serve", "--port", "0", "--store", "memory://"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**env, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
            cwd=tmp_path,
        )
    try:
        url = _wait_ready(server, log_path)
        with httpx.Client(base_url=url, timeout=20) as client:
            page = client.get("/")
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            assert "dashboard.js" in page.text
            script = client.get("/dashboard/dashboard.js")
            assert script.status_code == 200 and "/changes" in script.text
            assert client.get("/health").json()["status"] == "ok"
            assert client.get("/openapi.json").json()["info"]["version"] == version
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(10)


def _wait_ready(server: subprocess.Popen[bytes], log_path: Path) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = READY.search(log_path.read_text(errors="replace"))
        if found:
            return found.group(1)
        if server.poll() is not None:
            raise AssertionError(
                f"taskcast serve exited {server.returncode}: {log_path.read_text()}"
            )
        time.sleep(0.05)  # polling the log for startup, bounded by the deadline
    raise AssertionError(f"taskcast serve did not start: {log_path.read_text()}")
