"""A file opened and dropped without close(): data may never be flushed.

The leak guard reports the unclosed file and the open() call.
"""

from pathlib import Path


def write_report(path: Path) -> None:
    handle = open(path, "w")  # BUG: never closed
    handle.write("done")


def test_buggy(tmp_path: Path) -> None:
    write_report(tmp_path / "report.txt")


def test_fixed(tmp_path: Path) -> None:
    with open(tmp_path / "report.txt", "w") as handle:
        handle.write("done")
    assert (tmp_path / "report.txt").read_text() == "done"
