"""Run the test kit over real projects' own test suites, and write the table to docs/testing.md.

Not part of ``make test``: it downloads sdists from PyPI (``pip download``). Run it
with ``make realsuites``. For each project it runs the project's own suite in a venv
of its own dependencies plus taskcast (``--no-deps``), ``--runs`` times (3) each way,
interleaved: with ``-p no:taskcast``, and with the leak guard on (``--taskcast-leaks``)
and a hang budget. It writes the outcome of each configuration, the ratio of the
fastest runs and every report (a report seen in some runs only says so), each with its verdict
(``VERDICTS`` below, judged by reading the flagged test: a true leak, or a false
positive to fix in the kit). A report nobody judged yet is written as NOT JUDGED and
makes the script exit with status 1.
"""

from __future__ import annotations

import argparse
import os
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

#: Project (PyPI name) -> the test dependencies its suite needs beyond COMMON.
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

#: Tests that cannot run from an sdist, with the reason; left out of both runs.
DESELECT: dict[str, dict[str, str]] = {
    "aiolimiter": {
        "tests/test_aiolimiter.py::test_version": "compares the version with the project's "
        "own git checkout, which an sdist does not have",
    },
}

#: Tests that fail without the plugin too, here, with the reason (they run both ways).
FAIL_ANYWAY: dict[str, dict[str, str]] = {
    "aiofiles": {
        "tests/test_os.py::test_access": "expects chmod to deny access, but this machine runs "
        "the suites as root, whom access() never denies",
    },
}

_ON_PURPOSE_GENERATOR = "true leak, on purpose: the test leaves its own generator open"
_NEVER_CLOSED = "true leak: the test never closes what it opened"

#: (project, test id substring, report line substring) -> verdict, judged by reading the test.
#: The first match wins, so specific entries come before general ones.
VERDICTS: list[tuple[str, str, str, str]] = [
    ("aiostream", "test_aitercontext_wrong_usage", "", _ON_PURPOSE_GENERATOR),
    ("aiostream", "test_stuck_in_aitercontext", "", _ON_PURPOSE_GENERATOR),
    (
        "aiostream",
        "test_preserve",
        "",
        "true leak, on purpose: preserve() must not close its source, and the test leaves it open",
    ),
    (
        "aiolimiter",
        "test_multiple_loops",
        "AsyncLimiter.acquire()",
        "true leak, on purpose: each asyncio.run leaves the acquire() tasks that got no slot "
        "waiting (the test needs a waiting task), and asyncio.run cancels them silently",
    ),
    (
        "asgiref",
        "test_server",
        "application_checker()",
        "true leak, in asgiref: StatelessServer.arun() gathers application_checker() with "
        "handle() and leaves the checker running when handle() ends (gather does not cancel "
        "the others)",
    ),
    (
        "asgiref",
        "test_server",
        "running StatelessServer.arun()",
        "true leak: the test gathers server.arun() with its client and leaves arun() running "
        "when the client raises Done",
    ),
    (
        "asgiref",
        "test_server",
        "socket",
        "true leak: the test's UDP client sockets are never closed",
    ),
    (
        "asgiref",
        "test_wsgi",
        "SyncToAsync.thread_handler()",
        "true leak, a race: the test takes the application's last message and ends without "
        "waiting for the application (ApplicationCommunicator.wait()); its WSGI thread is "
        "still running and then sends through a new event loop",
    ),
    (
        "aiofiles",
        "test_scandir",
        "scandir iterator",
        "true leak: the test never closes the scandir iterator aiofiles returns",
    ),
    (
        "aiofiles",
        "test_simple::",
        "StreamWriter",
        "true leak: the test drops its client's writer (reader, _ = await "
        "asyncio.open_connection(...)) and never closes the connection",
    ),
    (
        "aiofiles",
        "test_slow_file",
        "StreamWriter",
        "true leak, a race: the test cancels spam_client() wherever it is, and when that is "
        "between open_connection() and w.close() nothing closes the connection",
    ),
    (
        "aiofiles",
        "test_simple_detach",
        "unclosed file",
        "true leak: the test detaches the raw file and never closes it",
    ),
    ("aiofiles", "", "unclosed file", _NEVER_CLOSED),
]

_REPORT_LINE = re.compile(r"^- ([a-z ]+): (.*)$")
_FRAME = re.compile(r"^\s+(\S+\.py):(\d+) in (\S+)$")


@dataclass
class Run:
    """One pytest run of a project's suite: outcome counts, wall time, kit reports."""

    outcome: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    reports: list[tuple[str, str]] = field(default_factory=list)  # (test id, report text)
    crash: str = ""

    def summary(self) -> str:
        order = ("passed", "failed", "errors", "skipped", "xfailed")
        parts = [f"{self.outcome[key]} {key}" for key in order if self.outcome.get(key)]
        return ", ".join(parts) or f"nothing ran ({self.crash or 'no junit report'})"


def sh(
    *args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, env=env)


def prepare(work: Path, name: str) -> tuple[Path, Path]:
    """Download *name*'s sdist, unpack it, make its venv; return (source dir, python)."""
    sdists = work / "sdists"
    sdists.mkdir(parents=True, exist_ok=True)
    normal = name.replace("-", "_")
    found = [p for p in sdists.glob("*.tar.gz") if p.name.lower().startswith(normal + "-")]
    if not found:
        got = sh(
            sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:",
            "--no-deps", "-d", sdists, name,
        )  # fmt: skip
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
    # Always the current kit: an editable install, refreshed each run.
    got = sh(python, "-m", "pip", "install", "-q", "--no-deps", "-e", ROOT)
    if got.returncode:
        raise RuntimeError(f"installing taskcast failed: {got.stderr[-800:]}")
    return source, python


def _sets_fixture_loop_scope(source: Path) -> bool:
    for config in ("pytest.ini", "pyproject.toml", "setup.cfg", "tox.ini"):
        path = source / config
        if path.exists() and "asyncio_default_fixture_loop_scope" in path.read_text():
            return True
    return False


def run_suite(name: str, source: Path, python: Path, *plugin_args: str) -> Run:
    """Run *name*'s suite in *source*; parse its junit report."""
    junit = source / "junit.xml"
    junit.unlink(missing_ok=True)
    options = ["-o", "addopts=", "-o", "timeout=120", "-W", "error::RuntimeWarning"]
    if not _sets_fixture_loop_scope(source):
        # pytest-asyncio warns when it is unset, and suites with filterwarnings=error stop.
        options += ["-o", "asyncio_default_fixture_loop_scope=function"]
    for test in DESELECT.get(name, {}):
        options += ["--deselect", test]
    # The sdists are unpacked inside taskcast's own checkout: git must not find it.
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(source.parent)}
    started = time.perf_counter()
    done = sh(
        python, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider", *options,
        f"--junitxml={junit}", *plugin_args, cwd=source, env=env,
    )  # fmt: skip
    run = Run(seconds=time.perf_counter() - started)
    if not junit.exists():
        run.crash = (done.stdout + done.stderr).strip().splitlines()[-1:][0][:200]
        return run
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        test = f"{case.get('classname')}::{case.get('name')}"
        kinds = {child.tag for child in case}
        key = next(
            (k for tag, k in (("error", "errors"), ("failure", "failed"), ("skipped", "skipped"))
             if tag in kinds),
            "passed",
        )  # fmt: skip
        run.outcome[key] = run.outcome.get(key, 0) + 1
        for child in case:
            text = child.text or child.get("message") or ""
            if "taskcast leak guard" in text or "taskcast hang" in text:
                run.reports.append((test, text))
    return run


def report_entries(text: str) -> list[tuple[str, str]]:
    """The entries of one kit report: (``kind: summary``, where it was created).

    Where: the first frame of the entry's "created at" that is in the project's tests,
    else its first frame outside site-packages and the stdlib.
    """
    lines = text.splitlines()
    entries = []
    for index, line in enumerate(lines):
        if line.startswith("taskcast hang:"):
            entries.append((line[:160], "(hang report)"))
            continue
        match = _REPORT_LINE.match(line)
        if not match:
            continue
        frames: list[str] = []
        in_site = False
        for following in lines[index + 1 :]:
            if following.startswith(("- ", "Fix the leak")):
                break
            in_site = in_site or following.strip() == "created at:"
            frame = _FRAME.match(following)
            if in_site and frame and not re.search(r"site-packages|/lib/python3", frame[1]):
                frames.append(f"{frame[1]}:{frame[2]} in {frame[3]}")
        tests = [frame for frame in frames if frame.startswith("tests/")]
        site = (tests or frames or ["(no user frame)"])[0]
        summary = re.sub(r" at 0x[0-9a-f]+|fd=\d+|\d{2,}", "N", match[2])[:150]
        entries.append((f"{match[1]}: {summary}", site))
    return entries


def verdict_for(project: str, test: str, entry: str) -> str:
    for name, test_part, entry_part, verdict in VERDICTS:
        if name == project and test_part in test and entry_part in entry:
            return verdict
    return "NOT JUDGED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "real_suites")
    parser.add_argument(
        "--runs", type=int, default=3, help="runs of each suite per configuration (min time)"
    )
    parser.add_argument("projects", nargs="*", default=list(PROJECTS))
    args = parser.parse_args()
    rows: list[str] = []
    details: list[str] = []
    unjudged = 0
    for name in args.projects:
        source, python = prepare(args.work, name)
        plain: list[Run] = []
        kit: list[Run] = []
        for _ in range(args.runs):  # interleaved, so load on the machine hits both alike
            plain.append(run_suite(name, source, python, "-p", "no:taskcast"))
            kit.append(
                run_suite(
                    name, source, python, "--taskcast-leaks", "-o", "taskcast_hang_timeout=60"
                )
            )
        ratio = min(run.seconds for run in kit) / min(run.seconds for run in plain)
        flagged = {test for run in kit for test, _ in run.reports}
        rows.append(
            f"| {source.name} | {sum(plain[0].outcome.values())} | {_outcomes(plain)} "
            f"| {_outcomes(kit)} | {len(flagged)} | {ratio:.2f}x |"
        )
        for test, reason in DESELECT.get(name, {}).items():
            details.append(f"- {source.name} `{test}`: left out of both runs: {reason}.")
        for test, reason in FAIL_ANYWAY.get(name, {}).items():
            details.append(f"- {source.name} `{test}`: fails with and without the kit: {reason}.")
        # Each distinct entry once, with how many times one run reported it and in how many runs.
        seen: dict[tuple[str, str, str], tuple[int, int]] = {}
        for run in kit:
            in_this_run: dict[tuple[str, str, str], int] = {}
            for test, text in run.reports:
                for entry, site in report_entries(text):
                    key = (test, entry, site)
                    in_this_run[key] = in_this_run.get(key, 0) + 1
            for key, count in in_this_run.items():
                most, runs = seen.get(key, (0, 0))
                seen[key] = (max(most, count), runs + 1)
        for (test, entry, site), (count, runs) in seen.items():
            verdict = verdict_for(name, test, entry)
            unjudged += verdict == "NOT JUDGED"
            times = f" (x{count})" if count > 1 else ""
            some = f" In {runs} of {args.runs} runs." if runs < args.runs else ""
            details.append(
                f"- {source.name} `{test}`: {entry}{times}, created at {site}.{some} **{verdict}**"
            )
        print(rows[-1], flush=True)
    table = "\n".join(
        [
            "| project | tests | without the plugin | with the leak guard | tests flagged "
            "| time ratio |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            "Every report, with its verdict (judged by reading the flagged test):",
            "",
            *(details or ["- none"]),
        ]
    )
    text = DOC.read_text()
    if BEGIN in text and len(args.projects) == len(PROJECTS):
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        DOC.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}")
    print(table)
    if unjudged:
        print(f"{unjudged} report(s) NOT JUDGED: read the tests and add them to VERDICTS")
        sys.exit(1)


def _outcomes(runs: list[Run]) -> str:
    """The outcome of the runs: one summary, or each run's when they differ."""
    summaries = [run.summary() for run in runs]
    return summaries[0] if len(set(summaries)) == 1 else " / ".join(summaries)


if __name__ == "__main__":
    main()
