"""Run the test kit over real projects' own test suites, and write the table to docs/testing.md.

Not part of ``make test``: it downloads sdists from PyPI (``pip download``). Run it
with ``make realsuites``. For each project it runs the project's own suite twice in a
venv of its own dependencies plus taskcast (``--no-deps``): once with the plugin and
the leak guard on (``--taskcast-leaks``), once with ``-p no:taskcast``. It reports
the outcome of each run, the overhead and every leak report, each with its verdict
(``VERDICTS`` below: a true leak, or a false positive to fix in the kit).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "testing.md"
BEGIN, END = "<!-- real-suites:begin -->", "<!-- real-suites:end -->"

#: Project (PyPI name) -> the test dependencies its suite needs beyond pytest-asyncio.
PROJECTS: dict[str, list[str]] = {
    "janus": ["pytest-benchmark"],
    "aiostream": [],
    "async-lru": [],
    "aiolimiter": ["dunamai"],
    "asgiref": [],
    "aiofiles": [],
    "httpx-sse": ["httpx", "sse-starlette", "starlette", "uvicorn"],
}
COMMON = ["pytest", "pytest-asyncio", "pytest-timeout", "anyio", "typing_extensions"]

#: (project, test id substring) -> verdict written next to each report, judged by reading the test.
_ON_PURPOSE = "true leak, on purpose: the test leaves its own generator open to test that case"
VERDICTS: dict[tuple[str, str], str] = {
    ("aiostream", "test_aitercontext_wrong_usage"): _ON_PURPOSE,
    ("aiostream", "test_stuck_in_aitercontext"): _ON_PURPOSE,
    ("aiostream", "test_preserve"): "true leak, on purpose: preserve() must not close its source",
    ("asgiref", "test_server"): "true leak: arun() leaves application_checker() running and "
    "the test's UDP sockets are never closed",
    ("aiofiles", "test_scandir"): "true leak: the scandir iterator is never closed "
    "(no user frame: it is made in a worker thread)",
    ("aiofiles", "test_"): "true leak: the test never closes what it opened",
}


@dataclass
class Run:
    outcome: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    reports: list[tuple[str, str]] = field(default_factory=list)  # (test id, report text)

    def summary(self) -> str:
        order = ("passed", "failed", "errors", "skipped", "xfailed")
        parts = [f"{self.outcome[key]} {key}" for key in order if self.outcome.get(key)]
        return ", ".join(parts) or "nothing ran"


def sh(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True)


def prepare(work: Path, name: str) -> tuple[Path, Path]:
    """Download *name*'s sdist, unpack it, make its venv; return (source dir, python)."""
    sdists = work / "sdists"
    sdists.mkdir(parents=True, exist_ok=True)
    normal = name.replace("-", "_")
    found = [p for p in sdists.glob("*.tar.gz") if p.name.lower().startswith(normal + "-")]
    if not found:
        got = sh(
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-binary",
            ":all:",
            "--no-deps",
            "-d",
            sdists,
            name,
        )
        if got.returncode:
            raise RuntimeError(f"pip download {name} failed: {got.stderr[-500:]}")
        found = [p for p in sdists.glob("*.tar.gz") if p.name.lower().startswith(normal + "-")]
    sdist = sorted(found)[-1]
    source = work / "src" / sdist.name.removesuffix(".tar.gz")
    if not source.exists():
        with tarfile.open(sdist) as archive:
            archive.extractall(work / "src", filter="data")
    venv = work / "venvs" / normal
    python = venv / "bin" / "python"
    if not python.exists():
        sh(sys.executable, "-m", "venv", venv)
        got = sh(python, "-m", "pip", "install", "-q", *COMMON, *PROJECTS[name], source)
        if got.returncode:
            raise RuntimeError(f"installing {name} failed: {got.stderr[-800:]}")
        got = sh(python, "-m", "pip", "install", "-q", "--no-deps", "-e", ROOT)
        if got.returncode:
            raise RuntimeError(f"installing taskcast failed: {got.stderr[-800:]}")
    return source, python


def run_suite(source: Path, python: Path, *plugin_args: str) -> Run:
    junit = source / "junit.xml"
    started = time.perf_counter()
    sh(
        python,
        "-m",
        "pytest",
        "tests",
        "-q",
        "-p",
        "no:cacheprovider",
        "-o",
        "addopts=",
        "-o",
        "timeout=120",
        "-W",
        "error::RuntimeWarning",
        f"--junitxml={junit}",
        *plugin_args,
        cwd=source,
    )
    run = Run(seconds=time.perf_counter() - started)
    if not junit.exists():
        return run
    suite = ElementTree.parse(junit).getroot()
    for case in suite.iter("testcase"):
        test = f"{case.get('classname')}::{case.get('name')}"
        kinds = {child.tag for child in case}
        key = (
            "errors"
            if "error" in kinds
            else "failed"
            if "failure" in kinds
            else "skipped"
            if "skipped" in kinds
            else "passed"
        )
        run.outcome[key] = run.outcome.get(key, 0) + 1
        for child in case:
            text = child.text or child.get("message") or ""
            if "taskcast leak guard" in text or "taskcast hang" in text:
                run.reports.append((test, text))
    return run


def leak_lines(text: str) -> list[str]:
    """The leak entries of one report ("- kind: summary" and the first user frame)."""
    lines = text.splitlines()
    found = []
    for index, line in enumerate(lines):
        if re.match(r"\s*- [a-z ]+: ", line):
            site = next(
                (
                    lines[j].strip()
                    for j in range(index + 1, min(index + 12, len(lines)))
                    if re.match(r"\s+\S+\.py:\d+ in ", lines[j]) and "site-packages" not in lines[j]
                ),
                "(no user frame)",
            )
            found.append(f"{line.strip()[:160]} -- at {site}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "real_suites")
    parser.add_argument("projects", nargs="*", default=list(PROJECTS))
    args = parser.parse_args()
    rows, details = [], []
    for name in args.projects:
        source, python = prepare(args.work, name)
        without = run_suite(source, python, "-p", "no:taskcast")
        with_kit = run_suite(source, python, "--taskcast-leaks", "-o", "taskcast_hang_timeout=60")
        overhead = with_kit.seconds / without.seconds if without.seconds else float("nan")
        tests = sum(with_kit.outcome.values())
        rows.append(
            f"| {source.name} | {tests} | {without.summary()} | {with_kit.summary()} "
            f"| {len(with_kit.reports)} | {overhead:.2f}x |"
        )
        for test, text in with_kit.reports:
            verdict = next(
                (v for (p, t), v in VERDICTS.items() if p == name and t in test), "NOT JUDGED"
            )
            for entry in leak_lines(text) or [text.splitlines()[0][:160]]:
                details.append(f"- {source.name} `{test}`: {entry}. **{verdict}**")
        print(rows[-1], flush=True)
    table = "\n".join(
        [
            "| project | tests | without the plugin | with the leak guard | reports | time ratio |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            "Every report, with its verdict:",
            "",
            *(details or ["- none"]),
        ]
    )
    text = DOC.read_text()
    if BEGIN in text:
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        DOC.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}")
    print(table)


if __name__ == "__main__":
    main()
