"""scripts/system-deps: what `make test` runs first to install the system packages it needs.

redis-server and Chromium are installed on the machines that run this suite, so the "missing"
cases run the script on a PATH without them, with a stand-in apt-get that records its calls.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "system-deps"
BASH = "/bin/bash"
ALL = "redis-server chromium fonts-liberation"


def _run(path: str, *args: str, font: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": path}
    if font is not None:
        env["TASKCAST_FONT_FILE"] = font
    return subprocess.run(
        [BASH, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=30
    )


def _fake_apt_get(directory: Path) -> Path:
    """An apt-get that writes each call's arguments to a file and installs nothing."""
    directory.mkdir()
    calls = directory / "calls"
    apt = directory / "apt-get"
    apt.write_text(f'#!{BASH}\necho "$*" >> {calls}\n')
    apt.chmod(0o755)
    return calls


def test_check_passes_where_every_package_is_installed() -> None:
    done = subprocess.run(
        [str(SCRIPT), "--check"], capture_output=True, text=True, timeout=30, env=os.environ
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_check_names_what_is_missing_and_the_one_command_that_installs_it(
    tmp_path: Path,
) -> None:
    done = _run(str(tmp_path), "--check", font=str(tmp_path / "no-font.ttf"))
    assert done.returncode == 1
    assert f"needs {ALL}, missing here" in done.stderr
    assert f"apt-get update && apt-get install -y {ALL}" in done.stderr


def test_dry_run_prints_the_install_command_of_the_missing_packages_only(tmp_path: Path) -> None:
    # The font is there (the real one of this machine): only the programs are missing.
    done = _run(str(tmp_path), "--dry-run")
    assert done.returncode == 0
    assert done.stdout == "apt-get update && apt-get install -y redis-server chromium\n"


def test_as_root_with_apt_get_it_updates_then_installs_what_is_missing(tmp_path: Path) -> None:
    calls = _fake_apt_get(tmp_path / "bin")
    done = _run(str(tmp_path / "bin"), font=str(tmp_path / "no-font.ttf"))
    if os.geteuid() == 0:
        assert calls.read_text().splitlines() == ["update -q", f"install -y -q {ALL}"]
        # The stand-in installed nothing: the script checks again and says so.
        assert done.returncode == 1
        assert f"still missing after apt-get: {ALL}" in done.stderr
    else:  # not root: it stops at once with the command, and never calls apt-get
        assert not calls.exists()
        assert done.returncode == 1
        assert f"apt-get update && apt-get install -y {ALL}" in done.stderr


def test_without_apt_get_it_stops_at_once_with_the_command(tmp_path: Path) -> None:
    done = _run(str(tmp_path))
    assert done.returncode == 1
    assert "apt-get update && apt-get install -y redis-server chromium" in done.stderr


def test_an_unknown_option_is_refused() -> None:
    done = _run("/nonexistent", "--install-everything")
    assert done.returncode == 2
    assert "unknown option '--install-everything'" in done.stderr


def test_make_test_runs_it_before_anything_else_and_ci_only_calls_make_test() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert "\ntest: system-deps lint\n" in makefile
    assert "\nsystem-deps:\n\tscripts/system-deps\n" in makefile
    ci = (REPO / ".ci" / "run").read_text()
    assert "apt-get" not in ci and "\nmake test\n" in ci
