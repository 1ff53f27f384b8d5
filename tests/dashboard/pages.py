"""``Dashboard``: what a test does and reads on the dashboard, in the words of a person using it."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.sync_api import Locator, Page, expect


def submit(api: httpx.Client, task: str, **args: Any) -> str:
    """Submit a run over the HTTP API (arranging a test); returns its id."""
    response = api.post("/runs", json={"task": task, "args": args})
    assert response.status_code == 201, response.text
    run_id: str = response.json()["id"]
    return run_id


class Dashboard:
    """The dashboard served at ``url``, shown in ``page``."""

    def __init__(self, page: Page, url: str) -> None:
        self.page = page
        self.url = url

    # -- going places --------------------------------------------------------------------------

    def open_list(self, query: str = "") -> None:
        self.page.goto(f"{self.url}/#/{'?' + query if query else ''}")
        expect(self.page.locator("#list-view")).to_be_visible()

    def open_run(self, run_id: str) -> None:
        self.page.goto(f"{self.url}/#/runs/{run_id}")
        expect(self.page.locator("#run-id")).to_have_text(run_id)

    # -- the list ------------------------------------------------------------------------------

    def row(self, run_id: str) -> Locator:
        return self.page.locator(f'#runs-body tr[data-run-id="{run_id}"]')

    def row_state(self, run_id: str) -> Locator:
        return self.row(run_id).locator(".state")

    COLUMNS = ("select", "run", "task", "state", "attempt", "age", "duration")

    def cell(self, run_id: str, column: str) -> Locator:
        """The cell of ``column`` (one of ``COLUMNS``) in the run's row."""
        return self.row(run_id).locator("td").nth(self.COLUMNS.index(column))

    def select(self, run_id: str) -> None:
        """Tick the run's box in the list."""
        self.page.get_by_role("checkbox", name=f"Select run {run_id}", exact=True).check()

    def listed_ids(self) -> list[str]:
        ids: list[str] = self.page.locator("#runs-body tr").evaluate_all(
            "rows => rows.map(row => row.dataset.runId)"
        )
        return ids

    def count_of(self, state: str) -> Locator:
        return self.page.locator(f'#counts a[data-state="{state}"]')

    # -- a run's page --------------------------------------------------------------------------

    @property
    def state(self) -> Locator:
        return self.page.locator("#run-state")

    @property
    def outcome(self) -> Locator:
        return self.page.locator("#run-outcome-body")

    def log_line(self, seq: int) -> Locator:
        return self.page.locator(f'#log li[data-seq="{seq}"]')

    def log_lines_of(self, event_type: str) -> Locator:
        return self.page.locator(f'#log li[data-type="{event_type}"]')

    def log_seqs(self) -> list[int]:
        """The seqs of the log lines shown, top to bottom."""
        seqs: list[int] = self.page.locator("#log li").evaluate_all(
            "lines => lines.map(line => Number(line.dataset.seq))"
        )
        return seqs

    def cancel(self, *, confirm: bool = True) -> None:
        """Press Cancel, then confirm (or keep the run) in the dialog."""
        self.page.get_by_role("button", name="Cancel run…").click()
        dialog = self.page.get_by_role("dialog")
        expect(dialog).to_be_visible()
        name = "Cancel the run" if confirm else "Keep it running"
        dialog.get_by_role("button", name=name).click()
        expect(dialog).to_be_hidden()
