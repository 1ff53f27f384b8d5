// taskcast dashboard: cancelling or retrying many runs at once from the list.
//
// Runs are ticked one by one, a page at a time, or all those matching the filter (the newest
// BULK_LIMIT of them, read page by page from `GET /runs`). The action is the API's own, one
// request per run (`POST /runs/{id}/cancel` or `/retry`), a few at a time, and the outcome of
// each run is listed as it comes: cancelling, retried as a new run, or why not.
"use strict";

const BULK_LIMIT = 1000; // runs one action takes at most
const BULK_AT_ONCE = 4; // requests in flight

const bulk = {
  shown: false, // runs were selected when the selection was last shown
  running: false,
  action: null, // "cancel" or "retry", while the dialog is open
};

/** Show the selection: the boxes, the page's box and the bar of actions. Costs nothing while
 * nothing is selected (the list calls it on every change it shows). */
function renderSelection() {
  const count = list.selected.size;
  const pageBox = $("select-page");
  if (count === 0 && !bulk.shown) {
    pageBox.checked = pageBox.indeterminate = false;
    return;
  }
  bulk.shown = count > 0;
  $("bulk").hidden = count === 0 || bulk.running;
  let ticked = 0;
  for (const [id, row] of list.rows) {
    const box = row.cells[0].firstChild;
    const selected = list.selected.has(id);
    if (box.checked !== selected) box.checked = selected;
    if (selected) ticked += 1;
  }
  pageBox.checked = list.rows.size > 0 && ticked === list.rows.size;
  pageBox.indeterminate = ticked > 0 && ticked < list.rows.size;
  if (count === 0) return;
  $("bulk-count").textContent = `${number.format(count)} run${count === 1 ? "" : "s"} selected`;
  const total = matchingTotal();
  const more = list.nextBefore !== null || list.before !== null;
  const all = $("bulk-all");
  all.hidden = !more || (total !== null && count >= Math.min(total, BULK_LIMIT));
  all.textContent = total !== null && total <= BULK_LIMIT
    ? `Select all ${number.format(total)} matching the filter`
    : `Select the newest ${number.format(BULK_LIMIT)} matching the filter`;
  all.disabled = false;
}

/** Tick the newest runs matching the filter (up to BULK_LIMIT), read from the whole store. */
async function selectAllMatching() {
  const button = $("bulk-all");
  button.disabled = true;
  button.textContent = "Selecting…";
  const ids = [];
  let before = null;
  try {
    while (ids.length < BULK_LIMIT) {
      const query = filterQuery();
      query.set("limit", String(Math.min(BULK_LIMIT - ids.length, 1000)));
      if (before) query.set("before", before);
      const body = await api(`/runs?${query}`);
      ids.push(...body.runs.map((item) => item.id));
      if (body.next_before === null) break;
      before = body.next_before;
    }
  } catch (error) {
    if (!(error instanceof AuthRequired)) $("bulk-count").textContent = `Could not select them: ${error.message}`;
    return;
  }
  list.selected = new Set(ids);
  renderSelection();
}

function askBulk(action) {
  const count = list.selected.size;
  const runs = `${number.format(count)} run${count === 1 ? "" : "s"}`;
  bulk.action = action;
  $("bulk-dialog-title").textContent = action === "cancel" ? `Cancel ${runs}?` : `Retry ${runs}?`;
  $("bulk-dialog-text").textContent = action === "cancel"
    ? "Each queued or running run is stopped and ends cancelled; runs that already ended are left as they are."
    : "Each failed, cancelled, timed-out or interrupted run starts again as a new run; the others are left as they are.";
  $("bulk-dialog-confirm").textContent = action === "cancel" ? `Cancel ${runs}` : `Retry ${runs}`;
  $("bulk-dialog-confirm").className = action === "cancel" ? "danger" : "";
  const dialog = $("bulk-dialog");
  dialog.returnValue = "";
  dialog.showModal();
}

/** One run's action: the outcome's words and, for a retry, the new run's id. */
async function actOn(id, action) {
  try {
    if (action === "cancel") {
      await api(`/runs/${encodeURIComponent(id)}/cancel`, {
        method: "POST",
        body: JSON.stringify({ reason: "cancelled from the dashboard" }),
      });
      return { ok: true, text: "cancelling" };
    }
    const created = await api(`/runs/${encodeURIComponent(id)}/retry`, { method: "POST" });
    return { ok: true, text: "retried as", link: created.id };
  } catch (error) {
    if (error instanceof AuthRequired) throw error;
    const verb = action === "cancel" ? "not cancelled" : "not retried";
    return { ok: false, text: `${verb}: ${error.message}` };
  }
}

async function runBulk(action) {
  const ids = [...list.selected].sort().reverse();
  list.selected = new Set();
  bulk.running = true;
  renderSelection();
  const outcome = $("bulk-outcome");
  const results = $("bulk-results");
  results.replaceChildren();
  $("bulk-outcome-title").textContent = action === "cancel" ? "Cancelling runs" : "Retrying runs";
  $("bulk-dismiss").hidden = true;
  outcome.hidden = false;
  outcome.focus();
  const items = new Map();
  for (const id of ids) {
    const item = document.createElement("li");
    item.dataset.runId = id;
    item.append(runLink(id), " — waiting");
    items.set(id, item);
  }
  results.append(...items.values());
  let done = 0;
  let succeeded = 0;
  const progress = () => {
    const verb = action === "cancel" ? "cancelled" : "retried";
    $("bulk-progress").textContent = done < ids.length
      ? `${done} of ${ids.length} done…`
      : `Done: ${succeeded} of ${ids.length} ${verb}, ${ids.length - succeeded} not.`;
  };
  progress();
  const queue = ids.slice();
  const worker = async () => {
    while (queue.length) {
      const id = queue.shift();
      const result = await actOn(id, action);
      const item = items.get(id);
      item.className = result.ok ? "ok" : "refused";
      item.replaceChildren(runLink(id), ` — ${result.text}`);
      if (result.link) item.append(" ", runLink(result.link));
      done += 1;
      if (result.ok) succeeded += 1;
      progress();
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(BULK_AT_ONCE, ids.length) }, worker));
  } catch (error) {
    $("bulk-progress").textContent = "Stopped: sign in again.";
  } finally {
    bulk.running = false;
    $("bulk-dismiss").hidden = false;
    renderSelection();
  }
}

function setUpBulk() {
  $("runs-body").addEventListener("change", (event) => {
    const box = event.target;
    if (!box.classList.contains("select-run")) return;
    const id = box.closest("tr").dataset.runId;
    if (box.checked) list.selected.add(id);
    else list.selected.delete(id);
    renderSelection();
  });
  $("select-page").addEventListener("change", (event) => {
    for (const id of list.rows.keys()) {
      if (event.target.checked) list.selected.add(id);
      else list.selected.delete(id);
    }
    renderSelection();
  });
  $("bulk-all").addEventListener("click", selectAllMatching);
  $("bulk-clear").addEventListener("click", () => {
    list.selected = new Set();
    renderSelection();
  });
  $("bulk-cancel").addEventListener("click", () => askBulk("cancel"));
  $("bulk-retry").addEventListener("click", () => askBulk("retry"));
  $("bulk-dialog").addEventListener("close", () => {
    const action = bulk.action;
    bulk.action = null;
    if ($("bulk-dialog").returnValue === "go" && action && list.selected.size) runBulk(action);
  });
  $("bulk-dismiss").addEventListener("click", () => {
    $("bulk-outcome").hidden = true;
    $("bulk-results").replaceChildren();
  });
}
