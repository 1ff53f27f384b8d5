"""What ships in the package: a wheel carries the dashboard's static files."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DASHBOARD_FILES = {
    "index.html",
    "dashboard.css",
    "dashboard.js",
    "charts.js",
    "bulk.js",
    "timeline.js",
    "steps.js",
    "uPlot.iife.min.js",
    "uPlot.min.css",
    "uPlot.LICENSE.txt",
}


def test_the_wheel_ships_the_dashboard_files(tmp_path: Path) -> None:
    # A copy, so the build leaves nothing in the work tree.
    source = tmp_path / "source"
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
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
