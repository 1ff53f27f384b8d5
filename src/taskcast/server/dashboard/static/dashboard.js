// taskcast dashboard: plain JavaScript, no build step, nothing loaded from elsewhere.
//
// Data flows one way, as everywhere in taskcast: the server's logs are the truth and this page
// reads them. The list of runs is `GET /runs` once per (re)connection, then kept live by the
// `GET /changes` stream (each change carries its run's `seq`, so a change older than what the
// page holds is ignored). A run's page replays its log from `GET /runs/{id}/events` and follows
// it live; on a reconnect it resumes with `?after=<last seq shown>`, so nothing is shown twice
// or skipped. Streams are read with fetch() rather than EventSource: it can send the token as
// a header (not in URLs that end up in logs) and it sees every event type a task may invent.
"use strict";

const LOG_LIMIT = 1000; // log lines kept on a run's page; older ones are dropped from view
const TERMINAL = new Set(["completed", "failed", "cancelled", "timed_out"]);
const STATES = ["scheduled", "queued", "running", "completed", "failed", "cancelled", "timed_out", "interrupted"];
const CANCELLABLE = new Set(["scheduled", "queued", "running"]);
const RETRYABLE = new Set(["failed", "cancelled", "timed_out", "interrupted"]);
const STATE_AFTER = {
  scheduled: "scheduled", queued: "queued", started: "running", retrying: "queued", interrupted: "interrupted",
};
const TOKEN_KEY = "taskcast.token";

const $ = (id) => document.getElementById(id);

// -- measurements (read by the browser tests; see docs/performance.md) --------------------------

/** Durations of this page's event handlers, in milliseconds, with the events they handled. */
class Timings {
  constructor() {
    this.samples = [];
    this.events = 0;
  }
  add(started, events) {
    if (this.samples.length < 100000) this.samples.push(performance.now() - started);
    this.events += events;
  }
}
window.taskcastMetrics = {
  changes: new Timings(), // a chunk of GET /changes applied to the list and the counter
  log: new Timings(), // a chunk of a run's events appended to its page
  render: new Timings(), // the whole list rendered after GET /runs
  clock: new Timings(), // ages and durations refreshed (once a second)
};

// -- talking to the API ------------------------------------------------------------------------

class HttpError extends Error {
  constructor(status, body) {
    super((body && body.message) || `the server answered ${status}`);
    this.status = status;
    this.body = body;
  }
}
class AuthRequired extends Error {}

function authHeaders(extra = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

/**
 * A route of the API (`/runs`) relative to the page, so the dashboard works wherever the API is
 * mounted (`/`, or `/taskcast/` inside another application).
 */
function apiUrl(path) {
  return path.replace(/^\//, "");
}

/** fetch() a JSON route; throws HttpError, or AuthRequired after showing the sign-in form. */
async function api(path, options = {}) {
  const headers = authHeaders(options.body ? { "Content-Type": "application/json" } : {});
  const response = await fetch(apiUrl(path), { ...options, headers, cache: "no-store" });
  if (response.status === 401) {
    requireLogin();
    throw new AuthRequired();
  }
  let body = null;
  try {
    body = await response.json();
  } catch (error) {
    // A JSON answer cut mid-body (the server stopped, the network broke) is a failure, not null.
    const json = (response.headers.get("content-type") || "").includes("json");
    if (response.ok && json) throw new Error(`the answer to ${path} was cut: ${error.message}`);
  }
  if (!response.ok) throw new HttpError(response.status, body);
  return body;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Reads one Server-Sent Events route and reconnects when it ends, until stopped or done.
 * `onEvents(list)` gets the events of each network chunk at once (one DOM update per chunk).
 * With `resume`, reconnects continue after the last `id:` seen, with `?after=`.
 */
class EventReader {
  constructor(path, { resume = false, isLast = () => false, onOpen, onEvents, onStatus, onMissing }) {
    this.path = path;
    this.resume = resume;
    this.isLast = isLast;
    this.after = 0;
    this.done = false;
    this.handlers = { onOpen, onEvents, onStatus, onMissing };
    this.controller = new AbortController();
  }

  start() {
    this.loop();
    return this;
  }

  stop() {
    this.done = true;
    this.controller.abort();
  }

  async loop() {
    let delay = 0;
    while (!this.done) {
      if (delay) await sleep(delay);
      if (this.done) return;
      try {
        await this.readOnce();
        delay = 500; // the stream ended without its last event: come back soon
      } catch (error) {
        if (this.done || error instanceof AuthRequired) return;
        if (error instanceof HttpError && error.status === 404) {
          this.done = true;
          this.handlers.onMissing?.(error);
          return;
        }
        delay = Math.min(Math.max(delay * 2, 500), 5000);
      }
      if (!this.done) this.handlers.onStatus?.("down");
    }
    if (!this.controller.signal.aborted) this.handlers.onStatus?.("ended");
  }

  async readOnce() {
    const url = this.resume && this.after > 0 ? `${this.path}?after=${this.after}` : this.path;
    const response = await fetch(apiUrl(url), {
      headers: authHeaders({ Accept: "text/event-stream" }),
      signal: this.controller.signal,
      cache: "no-store",
    });
    if (response.status === 401) {
      requireLogin();
      throw new AuthRequired();
    }
    if (response.status === 204) {
      this.done = true; // nothing more will ever come
      return;
    }
    if (!response.ok) throw new HttpError(response.status, await response.json().catch(() => null));
    this.handlers.onStatus?.("live");
    this.handlers.onOpen?.();
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let kind = "";
    let data = [];
    let id = null;
    let at = null;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += decoder.decode(value, { stream: true });
        const batch = [];
        let start = 0;
        for (let end = buffer.indexOf("\n"); end >= 0; end = buffer.indexOf("\n", start)) {
          let line = buffer.slice(start, end);
          start = end + 1;
          if (line.endsWith("\r")) line = line.slice(0, -1);
          if (line === "") {
            if (data.length) batch.push({ type: kind || "message", data: data.join("\n"), id, at });
            kind = "";
            data = [];
            id = null;
            at = null;
          } else if (line[0] !== ":") {
            const colon = line.indexOf(":");
            const field = colon < 0 ? line : line.slice(0, colon);
            let text = colon < 0 ? "" : line.slice(colon + 1);
            if (text[0] === " ") text = text.slice(1);
            if (field === "event") kind = text;
            else if (field === "data") data.push(text);
            else if (field === "id") id = text;
            else if (field === "at") at = Number(text);
          }
        }
        buffer = buffer.slice(start);
        if (batch.length) this.deliver(batch);
        if (this.done) return;
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  deliver(batch) {
    const events = [];
    for (const raw of batch) {
      const event = { type: raw.type, data: JSON.parse(raw.data), seq: null, at: raw.at };
      if (raw.id !== null) {
        event.seq = Number(raw.id);
        if (this.resume && event.seq <= this.after) continue; // never twice
        this.after = event.seq;
      }
      events.push(event);
      if (this.isLast(event)) this.done = true; // the server ends the stream after it
    }
    if (events.length) this.handlers.onEvents(events);
  }
}

// -- formatting --------------------------------------------------------------------------------

function shortDuration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "—";
  if (seconds < 10) return `${Math.max(seconds, 0).toFixed(1)} s`;
  if (seconds < 60) return `${Math.floor(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.floor(seconds % 60)} s`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
  return `${Math.floor(seconds / 86400)} d ${Math.floor((seconds % 86400) / 3600)} h`;
}

function age(run, now) {
  const seconds = now - run.created_at;
  if (seconds < 60) return `${Math.max(Math.floor(seconds), 0)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h`;
  return `${Math.floor(seconds / 86400)} d`;
}

function duration(run, now) {
  if (!run.started_at) return "—";
  if (run.finished_at) return shortDuration(run.finished_at - run.started_at);
  if (run.state === "running") return shortDuration(now - run.started_at);
  return "—";
}

function stateBadge(state) {
  const badge = document.createElement("span");
  badge.className = `state state-${state}`;
  badge.textContent = state;
  return badge;
}

function setBadge(badge, state) {
  if (badge.textContent === state) return;
  badge.className = `state state-${state}`;
  badge.textContent = state;
}

function runLink(id, text = id) {
  const link = document.createElement("a");
  link.href = `#/runs/${encodeURIComponent(id)}`;
  link.textContent = text;
  link.className = "mono";
  return link;
}

function nowSeconds() {
  return Date.now() / 1000;
}

/** The state a lifecycle event leaves its run in, or null for other events. */
function stateAfter(type, data) {
  if (TERMINAL.has(type)) return type;
  if (type === "shutdown") return (data && data.state) || "interrupted";
  return STATE_AFTER[type] || null;
}

// -- the live counter ---------------------------------------------------------------------------

let counts = null; // runs by state: the server's last figures, moved along by the changes seen

function renderCounts() {
  const list = $("counts");
  const items = [];
  for (const state of STATES) {
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = `#/?state=${state}`;
    link.dataset.state = state;
    link.className = `state state-${state}`;
    link.textContent = `${state} ${counts[state] || 0}`;
    item.append(link);
    items.push(item);
  }
  list.replaceChildren(...items);
}

// -- the list of runs ---------------------------------------------------------------------------
//
// One page of the whole store at a time: `GET /runs` with the filters and `limit`, and `before`
// (the last id of the previous page) for older pages. The newest page is live: new runs are
// inserted at its top and push its oldest row to the next page. Every page keeps its rows'
// states live; a run that stops matching the filter leaves it, one that starts to match and
// falls within the page's ids joins it.

const list = {
  runs: new Map(), // id -> run, as listed (matching the filter)
  rows: new Map(), // id -> <tr>
  filter: { state: "", task: "", prefix: "" },
  limit: 100, // rows per page
  before: null, // the page's cursor: only runs older than this id (null: the newest page, live)
  newer: [], // cursors of the pages before this one, for "Newer"
  nextBefore: null, // the cursor of the next (older) page, or null on the last page
  loading: false,
  generation: 0,
  buffered: [], // changes that arrived while the list was being fetched
  fetching: new Set(), // ids of runs fetched because a change named a run the page did not hold
  taskOf: new Map(), // id -> task of runs seen but not listed (bounded), to filter their changes
  selected: new Set(), // ids ticked for a bulk action (bulk.js)
};

function matches(run) {
  return (!list.filter.state || run.state === list.filter.state) &&
    (!list.filter.task || run.task === list.filter.task) &&
    (!list.filter.prefix || run.id.startsWith(list.filter.prefix));
}

/** Whether a run's id falls within this page: below its cursor and, on a full page, above its
 * oldest row (an older one belongs to a later page). */
function withinPage(id) {
  if (list.before !== null && id >= list.before) return false;
  if (list.runs.size < list.limit) return true;
  const oldest = $("runs-body").lastElementChild; // rows are in id order, newest first
  return !oldest || id > oldest.dataset.runId;
}

/** The list's query string (for `GET /runs`), without `before` and `limit`. */
function filterQuery() {
  const query = new URLSearchParams();
  for (const name of ["state", "task", "prefix"]) if (list.filter[name]) query.set(name, list.filter[name]);
  return query;
}

async function loadList() {
  const generation = ++list.generation;
  list.loading = true;
  const query = filterQuery();
  query.set("limit", String(list.limit));
  if (list.before !== null) query.set("before", list.before);
  let body;
  try {
    body = await api(`/runs?${query}`);
  } catch (error) {
    if (generation === list.generation) list.loading = false;
    if (!(error instanceof AuthRequired)) $("list-summary").textContent = `Could not list runs: ${error.message}`;
    return;
  }
  if (generation !== list.generation) return; // a newer load (other filter) is under way
  list.loading = false;
  list.nextBefore = body.next_before;
  const started = performance.now();
  list.runs = new Map(body.runs.map((run) => [run.id, run]));
  renderAllRows();
  window.taskcastMetrics.render.add(started, body.runs.length);
  const buffered = list.buffered;
  list.buffered = [];
  applyChanges(buffered);
}

/** An empty row, cloned for each run: one clone costs less than building its nine elements. */
const ROW_TEMPLATE = (() => {
  const row = document.createElement("tr");
  const cells = [];
  for (let i = 0; i < 7; i++) cells.push(document.createElement("td"));
  const box = document.createElement("input");
  box.type = "checkbox";
  box.className = "select-run";
  cells[0].className = "col-select";
  cells[0].append(box);
  const link = document.createElement("a");
  link.className = "mono";
  cells[1].append(link);
  cells[3].append(stateBadge("queued"));
  cells[4].className = "num col-attempt";
  cells[5].className = "num";
  cells[6].className = "num";
  row.append(...cells);
  return row;
})();

function makeRow(run) {
  const row = ROW_TEMPLATE.cloneNode(true);
  row.dataset.runId = run.id;
  const cells = row.cells;
  const box = cells[0].firstChild;
  box.setAttribute("aria-label", `Select run ${run.id}`);
  if (list.selected.has(run.id)) box.checked = true;
  const link = cells[1].firstChild;
  link.href = `#/runs/${encodeURIComponent(run.id)}`;
  link.textContent = run.id;
  cells[2].textContent = run.task;
  fillRow(row, run, nowSeconds());
  return row;
}

function fillRow(row, run, now) {
  const cells = row.cells;
  setBadge(cells[3].firstChild, run.state);
  const attempt = String(run.attempt);
  if (cells[4].textContent !== attempt) cells[4].textContent = attempt;
  fillTimes(cells, run, now);
}

function fillTimes(cells, run, now) {
  const shownAge = age(run, now);
  if (cells[5].textContent !== shownAge) cells[5].textContent = shownAge;
  const shownDuration = duration(run, now);
  if (cells[6].textContent !== shownDuration) cells[6].textContent = shownDuration;
}

function renderAllRows() {
  const fragment = document.createDocumentFragment();
  list.rows = new Map();
  const ids = [...list.runs.keys()].sort().reverse();
  for (const id of ids) {
    const row = makeRow(list.runs.get(id));
    list.rows.set(id, row);
    fragment.append(row);
  }
  $("runs-body").replaceChildren(fragment);
  renderSummary();
}

/** How many runs match the filter in the whole store, from the counts by task and state
 * (`/stats`, refreshed with the charts) or by state (the live counter); null when unknown (an
 * id prefix: no count says how many ids start with it). */
function matchingTotal() {
  if (list.filter.prefix) return null;
  const { state, task } = list.filter;
  if (!task && counts) {
    return state ? counts[state] || 0 : STATES.reduce((sum, name) => sum + (counts[name] || 0), 0);
  }
  const byTask = activity.counts; // charts.js
  if (!byTask) return null;
  let total = 0;
  for (const [name, states] of Object.entries(byTask)) {
    if (task && name !== task) continue;
    for (const [stateName, n] of Object.entries(states)) if (!state || stateName === state) total += n;
  }
  return total;
}

const number = new Intl.NumberFormat("en");

function renderSummary() {
  const count = list.runs.size;
  const what = [list.filter.state, list.filter.task].filter(Boolean);
  if (list.filter.prefix) what.push(`id starting with ${list.filter.prefix}`);
  const total = matchingTotal();
  let text;
  if (count === 0) text = list.before === null ? "No runs" : "No older runs";
  else if (list.before === null && list.nextBefore === null) text = `${number.format(count)} run${count === 1 ? "" : "s"}`;
  else text = `${number.format(count)} run${count === 1 ? "" : "s"} shown`;
  if (what.length) text += ` (${what.join(", ")})`;
  if (total !== null && (list.before !== null || list.nextBefore !== null)) text += ` of ${number.format(total)} in all`;
  $("list-summary").textContent = text;
  $("page-newest").disabled = list.before === null;
  $("page-newer").disabled = list.before === null;
  $("page-older").disabled = list.nextBefore === null;
  $("page-position").textContent = list.before === null ? "newest runs" : `older than ${list.before}`;
  if (typeof renderSelection === "function") renderSelection(); // bulk.js
}

function insertRow(run) {
  const row = makeRow(run);
  list.rows.set(run.id, row);
  const body = $("runs-body");
  // Ids sort by creation time; a new run is almost always the newest.
  let before = body.firstElementChild;
  while (before && before.dataset.runId > run.id) before = before.nextElementSibling;
  body.insertBefore(row, before);
}

function removeRun(id) {
  list.runs.delete(id);
  const row = list.rows.get(id);
  if (row) row.remove();
  list.rows.delete(id);
}

function patchRun(run, change) {
  run.state = change.state;
  run.last_seq = change.seq;
  if (change.type === "started") {
    run.attempt = change.attempt ?? run.attempt + 1;
    run.started_at = change.at;
    run.finished_at = null;
  } else if (TERMINAL.has(change.type)) {
    run.finished_at = change.at;
  }
}

/** Move the counter along between the server's figures (which always win). */
function countMove(from, to) {
  if (!counts || from === to) return;
  if (from) counts[from] = Math.max((counts[from] || 0) - 1, 0);
  counts[to] = (counts[to] || 0) + 1;
  counts.moved = true;
}

function applyChanges(changes) {
  if (!changes.length) return;
  const now = nowSeconds();
  let added = false;
  for (const change of changes) {
    const run = list.runs.get(change.id);
    if (run) {
      if (change.seq <= run.last_seq) continue; // the page already holds something newer
      countMove(run.state, change.state);
      patchRun(run, change);
      if (matches(run)) fillRow(list.rows.get(run.id), run, now);
      else removeRun(run.id);
    } else if (change.type === "queued" && change.task) {
      rememberTask(change.id, change.task);
      countMove(null, change.state);
      const fresh = {
        id: change.id, task: change.task, args: null, state: change.state, attempt: 0,
        created_at: change.at, started_at: null, finished_at: null, last_seq: change.seq,
      };
      if (list.before === null && matches(fresh)) {
        list.runs.set(fresh.id, fresh);
        insertRow(fresh);
        added = true;
      }
    } else if (mayBelong(change)) {
      fetchMissing(change.id); // a run the page did not list may now belong in it
    }
  }
  if (counts && counts.moved) {
    delete counts.moved;
    renderCounts();
  }
  if (added && list.runs.size > list.limit) {
    // The newest page is full: its oldest rows move to the next page.
    const ids = [...list.runs.keys()].sort();
    const excess = list.runs.size - list.limit;
    for (const id of ids.slice(0, excess)) removeRun(id);
    list.nextBefore = ids[excess];
  }
  renderSummary();
}

/** Whether a change to a run the page does not list could bring it into the list. */
function mayBelong(change) {
  if (list.filter.state && list.filter.state !== change.state) return false;
  if (list.filter.prefix && !change.id.startsWith(list.filter.prefix)) return false;
  const task = list.taskOf.get(change.id);
  if (list.filter.task && task !== undefined && task !== list.filter.task) return false;
  return withinPage(change.id);
}

function rememberTask(id, task) {
  list.taskOf.set(id, task);
  if (list.taskOf.size > 10000) list.taskOf.delete(list.taskOf.keys().next().value);
}

async function fetchMissing(id) {
  if (list.fetching.has(id)) return;
  list.fetching.add(id);
  try {
    const run = await api(`/runs/${encodeURIComponent(id)}`);
    rememberTask(id, run.task);
    const held = list.runs.get(id);
    if (held && held.last_seq >= run.last_seq) return;
    if (held) removeRun(id);
    if (!matches(run) || !withinPage(id)) return;
    list.runs.set(id, run);
    insertRow(run);
    renderSummary();
  } catch (error) {
    // Gone (pruned) or unreachable: the next change or reconnect brings it back if it matters.
  } finally {
    list.fetching.delete(id);
  }
}

function onChanges(events) {
  const started = performance.now();
  const changes = [];
  for (const event of events) {
    if (event.type === "run") changes.push(event.data);
    else if (event.type === "counts") {
      counts = event.data;
      renderCounts();
      renderSummary();
    }
    else if (event.type === "reset") loadList();
    else if (event.type === "shutdown") setConnection("down", "server stopping; reconnecting…");
  }
  if (list.loading) list.buffered.push(...changes);
  else applyChanges(changes);
  if (run.id) workflow.onChanges(changes); // timeline.js
  if (changes.length) activity.changed(); // charts.js
  window.taskcastMetrics.changes.add(started, changes.length);
}

function refreshTimes() {
  const now = nowSeconds();
  if (!$("list-view").hidden) {
    const started = performance.now();
    for (const [id, row] of list.rows) fillTimes(row.cells, list.runs.get(id), now);
    window.taskcastMetrics.clock.add(started, list.rows.size);
  }
  if (run.id && run.data) {
    $("run-duration").textContent = duration(run.data, now);
    workflow.tick(now); // timeline.js: bars of runs still going grow
  }
}

/** Go to a page of the list: the hash holds the filter and the cursor, so a page can be linked. */
function goToPage(before, newer) {
  const query = filterQuery();
  if (list.limit !== 100) query.set("limit", String(list.limit));
  if (before) query.set("before", before);
  list.newer = newer;
  const text = query.toString();
  location.hash = text ? `#/?${text}` : "#/";
}

function setUpPages() {
  $("page-older").addEventListener("click", () => {
    if (list.nextBefore !== null) goToPage(list.nextBefore, [...list.newer, list.before]);
  });
  $("page-newer").addEventListener("click", () => {
    const newer = list.newer.slice();
    const cursor = newer.length ? newer.pop() : null; // from a link: back to the newest page
    goToPage(cursor, newer);
  });
  $("page-newest").addEventListener("click", () => goToPage(null, []));
}

// -- a run's page -------------------------------------------------------------------------------

const run = {
  id: null,
  data: null, // the run as last known
  reader: null,
  lastSeq: 0,
  shown: 0, // log lines on the page
  follow: true, // keep the log scrolled to its end
  scrollPending: false,
};

function closeRun() {
  if (run.reader) run.reader.stop();
  Object.assign(run, { id: null, data: null, reader: null, lastSeq: 0, shown: 0, follow: true });
  workflow.close(); // timeline.js
  stepTimeline.close(); // steps.js
}

async function openRun(id) {
  closeRun();
  run.id = id;
  $("run-id").textContent = id;
  for (const section of ["run-progress", "run-outcome", "run-parent", "run-workflow"]) {
    $(section).hidden = true;
  }
  for (const item of ["cancel-button", "retry-button", "run-retry-of-term", "run-retry-of-value"]) $(item).hidden = true;
  $("cancel-status").textContent = "";
  $("log").replaceChildren();
  $("log-note").textContent = "";
  $("log-status").textContent = "";
  let data;
  try {
    data = await api(`/runs/${encodeURIComponent(id)}`);
  } catch (error) {
    if (run.id !== id || error instanceof AuthRequired) return;
    showMissing(error.status === 404 ? `There is no run ${id}.` : `Could not load run ${id}: ${error.message}`);
    return;
  }
  if (run.id !== id) return; // left meanwhile
  run.data = data;
  renderRun();
  renderRelations(data);
  stepTimeline.open(data); // steps.js
  run.reader = new EventReader(`/runs/${encodeURIComponent(id)}/events`, {
    resume: true,
    isLast: (event) => TERMINAL.has(event.type),
    onEvents: onRunEvents,
    onStatus: showLogStatus,
  }).start();
}

function showLogStatus(status) {
  const text = { live: "live", down: "stream interrupted; reconnecting…", ended: "complete" };
  $("log-status").textContent = text[status] || status;
  $("log-status").dataset.status = status;
}

function renderRun() {
  const data = run.data;
  $("run-task").textContent = data.task;
  setBadge($("run-state"), data.state);
  $("run-attempt").textContent = `${data.attempt} of ${data.max_attempts}`;
  $("run-created").textContent = new Date(data.created_at * 1000).toLocaleString();
  const hasStart = data.run_at !== null && data.run_at !== undefined;
  $("run-at-label").hidden = $("run-at").hidden = !hasStart;
  if (hasStart) $("run-at").textContent = new Date(data.run_at * 1000).toLocaleString();
  $("run-priority").textContent = String(data.priority || 0);
  $("run-waiting").textContent = data.waiting_for ? ` (waiting for its ${data.waiting_for.replace("_", " ")})` : "";
  $("run-duration").textContent = duration(data, nowSeconds());
  if (data.args !== null) $("run-args").textContent = JSON.stringify(data.args);
  $("cancel-button").hidden = !CANCELLABLE.has(data.state);
  $("retry-button").hidden = !RETRYABLE.has(data.state);
  if (data.retry_of) {
    const link = $("run-retry-of");
    link.href = `#/runs/${encodeURIComponent(data.retry_of)}`;
    link.textContent = data.retry_of;
  }
  $("run-retry-of-term").hidden = $("run-retry-of-value").hidden = !data.retry_of;
  renderOutcome(data);
  workflow.runChanged(data); // timeline.js: this run's own bar
  stepTimeline.runChanged(data); // steps.js: a new attempt replays the steps before it
}

function renderOutcome(data) {
  const section = $("run-outcome");
  if (data.state === "completed") {
    $("outcome-title").textContent = "Result";
    $("run-outcome-body").textContent = JSON.stringify(data.result, null, 2);
    section.hidden = false;
  } else if (data.error && data.state !== "queued" && data.state !== "running") {
    $("outcome-title").textContent = "Error";
    $("run-outcome-body").textContent = `${data.error.type}: ${data.error.message}`;
    section.hidden = false;
  } else {
    section.hidden = true;
  }
}

function renderRelations(data) {
  if (data.parent_id) {
    const link = $("run-parent-link");
    link.href = `#/runs/${encodeURIComponent(data.parent_id)}`;
    link.textContent = data.parent_id;
    $("run-parent").hidden = false;
  }
  workflow.open(data); // timeline.js: its dependencies and children
}

function logLine(event) {
  const item = document.createElement("li");
  item.dataset.seq = String(event.seq);
  item.dataset.type = event.type;
  const seq = document.createElement("span");
  seq.className = "seq";
  seq.textContent = String(event.seq);
  const type = document.createElement("span");
  type.className = "type";
  type.textContent = event.type;
  const data = document.createElement("span");
  data.className = "data";
  const text = JSON.stringify(event.data);
  data.textContent = text.length > 2000 ? `${text.slice(0, 2000)}…` : text;
  item.append(seq, type, data);
  return item;
}

function onRunEvents(events) {
  const started = performance.now();
  const fragment = document.createDocumentFragment();
  const data = run.data;
  let progress = null;
  let changedState = false;
  let count = 0;
  for (const event of events) {
    if (event.seq <= run.lastSeq) continue;
    run.lastSeq = event.seq;
    count += 1;
    fragment.append(logLine(event));
    const state = stateAfter(event.type, event.data);
    // The run as fetched already reflects the events up to its last_seq (a replay).
    if (state && event.seq > data.last_seq) {
      changedState = true;
      data.state = state;
      data.last_seq = event.seq;
      if (event.type === "started") {
        data.attempt = event.data.attempt ?? data.attempt + 1;
        data.started_at = nowSeconds(); // until the stored time is read back, below
        data.finished_at = null;
      }
    }
    if (event.type === "progress") progress = event.data;
    if (event.type === "child" && event.data && event.data.run_id) workflow.addChild(event.data.run_id, event.data.task, event.at);
    if (event.type === "step") stepTimeline.add(event); // steps.js
  }
  if (!count) return;
  const log = $("log");
  log.append(fragment);
  run.shown += count;
  const hidden = run.shown - LOG_LIMIT;
  if (hidden > 0) {
    for (let i = 0; i < hidden; i++) log.firstElementChild.remove();
    run.shown = LOG_LIMIT;
    $("log-note").textContent = `Earlier events are not shown; the last ${LOG_LIMIT} are.`;
  }
  if (progress) showProgress(progress);
  if (changedState) renderRun();
  if (run.follow && !run.scrollPending) {
    // Scrolling reads the layout: once per frame, after the DOM changes of that frame.
    run.scrollPending = true;
    requestAnimationFrame(() => {
      run.scrollPending = false;
      log.scrollTop = log.scrollHeight;
    });
  }
  window.taskcastMetrics.log.add(started, count);
  if (changedState) refreshRun(run.id); // the stored times, result and error
}

function showProgress(progress) {
  const bar = $("progress-bar");
  const total = Number(progress.total) || 0;
  const current = Number(progress.current) || 0;
  bar.max = total > 0 ? total : 1;
  bar.value = Math.min(current, bar.max);
  let text = total > 0 ? `${current} of ${total}` : String(current);
  if (progress.message) text += ` — ${progress.message}`;
  $("progress-text").textContent = text;
  $("run-progress").hidden = false;
}

/** Read the run again once its log says it ended: the result, error and times as stored. */
async function refreshRun(id) {
  try {
    const data = await api(`/runs/${encodeURIComponent(id)}`);
    if (run.id !== id || data.last_seq < run.data.last_seq) return;
    run.data = data;
    renderRun();
  } catch (error) {
    // The server may be stopping; its restart brings the stream, and this, back.
  }
}

function setUpCancel() {
  const dialog = $("cancel-dialog");
  $("cancel-button").addEventListener("click", () => {
    dialog.returnValue = "";
    dialog.showModal();
  });
  dialog.addEventListener("close", async () => {
    if (dialog.returnValue !== "cancel" || !run.id) return;
    const id = run.id;
    $("cancel-status").textContent = "Cancelling…";
    try {
      await api(`/runs/${encodeURIComponent(id)}/cancel`, {
        method: "POST",
        body: JSON.stringify({ reason: "cancelled from the dashboard" }),
      });
      if (run.id === id) $("cancel-status").textContent = "Cancel requested.";
    } catch (error) {
      if (run.id === id) $("cancel-status").textContent = `Not cancelled: ${error.message}`;
    }
  });
}

function setUpRetry() {
  $("retry-button").addEventListener("click", async () => {
    if (!run.id) return;
    const id = run.id;
    const status = $("cancel-status");
    status.textContent = "Retrying…";
    try {
      const created = await api(`/runs/${encodeURIComponent(id)}/retry`, { method: "POST" });
      if (run.id === id) status.replaceChildren("Retried as ", runLink(created.id), ".");
    } catch (error) {
      if (run.id === id && !(error instanceof AuthRequired)) status.textContent = `Not retried: ${error.message}`;
    }
  });
}

// -- submitting a run ----------------------------------------------------------------------------

let tasks = [];

function fieldType(schema) {
  if (schema.anyOf) {
    const kinds = schema.anyOf.filter((option) => option.type !== "null");
    if (kinds.length === 1) return { ...kinds[0], ...schema, anyOf: undefined, nullable: true };
  }
  return schema;
}

function buildFields(task) {
  const container = $("submit-fields");
  container.replaceChildren();
  $("submit-description").textContent = task ? task.description : "";
  if (!task) return;
  const schema = task.parameters || {};
  const properties = schema.properties || {};
  const required = new Set(schema.required || []);
  const names = Object.keys(properties);
  $("submit-params").hidden = names.length === 0;
  for (const name of names) {
    const spec = fieldType(properties[name]);
    const id = `arg-${name}`;
    const wrapper = document.createElement("div");
    wrapper.className = "field";
    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = spec.title ? `${spec.title} (${name})` : name;
    let input;
    if (spec.type === "boolean") {
      input = document.createElement("input");
      input.type = "checkbox";
      input.checked = spec.default === true;
      wrapper.className = "field checkbox";
    } else if (Array.isArray(spec.enum)) {
      input = document.createElement("select");
      for (const value of spec.enum) {
        const option = document.createElement("option");
        option.value = JSON.stringify(value);
        option.textContent = String(value);
        option.selected = value === spec.default;
        input.append(option);
      }
      input.dataset.kind = "json";
    } else if (spec.type === "integer" || spec.type === "number") {
      input = document.createElement("input");
      input.type = "number";
      input.step = spec.type === "integer" ? "1" : "any";
      if (spec.minimum !== undefined) input.min = String(spec.minimum);
      if (spec.maximum !== undefined) input.max = String(spec.maximum);
      if (spec.default !== undefined && spec.default !== null) input.value = String(spec.default);
      input.dataset.kind = "number";
    } else if (spec.type === "string") {
      input = document.createElement("input");
      input.type = "text";
      if (spec.default !== undefined && spec.default !== null) input.value = spec.default;
      input.dataset.kind = "string";
    } else {
      input = document.createElement("textarea");
      input.rows = 3;
      if (spec.default !== undefined) input.value = JSON.stringify(spec.default);
      input.dataset.kind = "json";
      input.placeholder = "JSON";
    }
    input.id = id;
    input.name = name;
    input.required = required.has(name) && spec.type !== "boolean";
    wrapper.append(label, input);
    if (spec.description) {
      const hint = document.createElement("span");
      hint.className = "hint";
      hint.id = `${id}-hint`;
      hint.textContent = spec.description;
      input.setAttribute("aria-describedby", hint.id);
      wrapper.append(hint);
    }
    if (spec.type === "boolean") wrapper.append(label); // label after the box reads better
    container.append(wrapper);
  }
}

function readArguments() {
  const args = {};
  for (const input of $("submit-fields").querySelectorAll("input, select, textarea")) {
    const name = input.name;
    if (input.type === "checkbox") {
      args[name] = input.checked;
      continue;
    }
    const text = input.value.trim();
    if (text === "") continue; // left to the task's default
    if (input.dataset.kind === "number") args[name] = Number(text);
    else if (input.dataset.kind === "string") args[name] = input.value;
    else {
      try {
        args[name] = JSON.parse(text);
      } catch (error) {
        throw new Error(`${name}: not valid JSON (${error.message})`);
      }
    }
  }
  return args;
}

async function loadTasks() {
  const body = await api("/tasks");
  tasks = body.tasks;
  const options = tasks.map((task) => new Option(task.name, task.name));
  $("submit-task").replaceChildren(...options);
  buildFields(tasks[0]);
  const filterTask = $("filter-task");
  filterTask.replaceChildren(new Option("all", ""), ...tasks.map((task) => new Option(task.name, task.name)));
  filterTask.value = list.filter.task;
}

function setUpSubmit() {
  $("submit-task").addEventListener("change", (event) => {
    buildFields(tasks.find((task) => task.name === event.target.value));
  });
  $("submit-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const message = $("submit-error");
    message.textContent = "";
    message.className = "error";
    let args;
    try {
      args = readArguments();
    } catch (error) {
      message.textContent = error.message;
      return;
    }
    try {
      const created = await api("/runs", {
        method: "POST",
        body: JSON.stringify({ task: $("submit-task").value, args }),
      });
      message.className = "hint";
      message.replaceChildren("Submitted ", runLink(created.id), ".");
    } catch (error) {
      if (error instanceof AuthRequired) return;
      const problems = error.body && error.body.problems;
      message.textContent = problems && problems.length
        ? problems.map((problem) => `${problem.param}: ${problem.problem}`).join("; ")
        : error.message;
    }
  });
}

// -- signing in -----------------------------------------------------------------------------------

let booted = false;

function requireLogin() {
  sessionStorage.removeItem(TOKEN_KEY);
  stopChanges();
  closeRun();
  booted = false;
  showView("login-view");
  setConnection("down", "sign in to connect");
  $("token").focus();
}

function setUpLogin() {
  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    let response;
    try {
      response = await fetch(apiUrl("/tasks"), { headers: { Authorization: `Bearer ${token}` } });
    } catch (error) {
      $("login-error").textContent = `Cannot reach the server: ${error.message}`;
      return;
    }
    if (response.status === 401) {
      $("login-error").textContent = "That token is wrong.";
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    $("token").value = "";
    $("login-error").textContent = "";
    boot();
  });
}

// -- connection, views and routing ------------------------------------------------------------------

let changes = null;

function setConnection(status, text) {
  const line = $("connection");
  line.dataset.status = status;
  line.textContent = text || (status === "live" ? "live" : "reconnecting…");
}

function startChanges() {
  stopChanges();
  changes = new EventReader("/changes", {
    onOpen: loadList, // every (re)connect lists the runs again, then applies changes on top
    onEvents: onChanges,
    onStatus: (status) => setConnection(status),
  }).start();
}

function stopChanges() {
  if (changes) changes.stop();
  changes = null;
}

function showView(id) {
  for (const view of ["login-view", "list-view", "run-view", "schedules-view", "missing-view"]) {
    $(view).hidden = view !== id;
  }
}

// -- schedules ----------------------------------------------------------------------------------

function when(schedule) {
  return schedule.every ? `every ${shortDuration(schedule.every)}` : `${schedule.cron} (${schedule.timezone})`;
}

function instant(seconds) {
  return seconds === null || seconds === undefined ? "—" : new Date(seconds * 1000).toLocaleString();
}

async function loadSchedules() {
  const body = $("schedules-body");
  try {
    const { schedules } = await api("/schedules");
    $("schedules-summary").textContent = schedules.length ? "" : "No schedules are registered.";
    body.replaceChildren(...schedules.map(scheduleRow));
  } catch (error) {
    if (!(error instanceof AuthRequired)) $("schedules-summary").textContent = error.message;
  }
}

function scheduleRow(schedule) {
  const row = document.createElement("tr");
  row.dataset.name = schedule.name;
  const cells = [schedule.name, schedule.task, when(schedule), null, instant(schedule.next_tick),
    instant(schedule.last_tick), null, null].map((text) => {
    const cell = document.createElement("td");
    if (text !== null) cell.textContent = text;
    return cell;
  });
  cells[3].append(stateBadge(schedule.paused ? "paused" : "active"));
  cells[6].append(schedule.last_run ? runLink(schedule.last_run) : "—");
  const toggle = document.createElement("button");
  toggle.type = "button";
  toggle.textContent = schedule.paused ? "Resume" : "Pause";
  toggle.setAttribute("aria-label", `${toggle.textContent} ${schedule.name}`);
  toggle.addEventListener("click", () => scheduleAction(schedule.name, schedule.paused ? "resume" : "pause"));
  const trigger = document.createElement("button");
  trigger.type = "button";
  trigger.textContent = "Run now";
  trigger.setAttribute("aria-label", `Run ${schedule.name} now`);
  trigger.addEventListener("click", () => scheduleAction(schedule.name, "trigger"));
  cells[7].append(toggle, " ", trigger);
  row.append(...cells);
  return row;
}

async function scheduleAction(name, action) {
  try {
    const answer = await api(`/schedules/${encodeURIComponent(name)}/${action}`, { method: "POST" });
    $("schedules-summary").textContent = action === "trigger" ? `Started run ${answer.id}.` : `${name} ${action}d.`;
  } catch (error) {
    if (!(error instanceof AuthRequired)) $("schedules-summary").textContent = error.message;
  }
  await loadSchedules();
}

function showMissing(text) {
  $("missing-text").textContent = text;
  showView("missing-view");
}

function parseRoute() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, queryText] = hash.split("?");
  const runMatch = path.match(/^\/runs\/([^/]+)$/);
  return {
    path,
    runId: runMatch ? decodeURIComponent(runMatch[1]) : null,
    query: new URLSearchParams(queryText || ""),
  };
}

const PAGE_SIZES = [50, 100, 500, 1000];

/** The list's filter, page size and cursor, as the hash says (unknown values fall back). */
function listState(query) {
  const limit = Number(query.get("limit"));
  return {
    filter: { state: query.get("state") || "", task: query.get("task") || "", prefix: (query.get("prefix") || "").trim() },
    limit: PAGE_SIZES.includes(limit) ? limit : 100,
    before: query.get("before") || null,
  };
}

function route() {
  if (!booted) return;
  const { runId, query, path } = parseRoute();
  if (path === "/schedules") {
    closeRun();
    showView("schedules-view");
    document.title = "Schedules — taskcast";
    loadSchedules();
    return;
  }
  if (runId) {
    activity.hide(); // charts.js
    showView("run-view");
    if (run.id !== runId) openRun(runId);
    document.title = `Run ${runId} — taskcast`;
    return;
  }
  closeRun();
  showView("list-view");
  activity.show();
  document.title = "Runs — taskcast";
  const wanted = listState(query);
  $("filter-state").value = wanted.filter.state;
  $("filter-task").value = wanted.filter.task;
  if (document.activeElement !== $("filter-prefix")) $("filter-prefix").value = wanted.filter.prefix;
  $("page-size").value = String(wanted.limit);
  const same = JSON.stringify([wanted.filter, wanted.limit, wanted.before]) ===
    JSON.stringify([list.filter, list.limit, list.before]);
  if (!same) {
    const filterChanged = JSON.stringify(wanted.filter) !== JSON.stringify(list.filter);
    if (filterChanged) {
      list.newer = [];
      list.selected = new Set(); // a selection is of the runs of one filter
    }
    Object.assign(list, wanted, { nextBefore: null });
    list.runs = new Map();
    renderAllRows();
    if (changes) loadList();
  }
}

function setUpFilters() {
  const apply = () => {
    const query = new URLSearchParams();
    const state = $("filter-state").value;
    const task = $("filter-task").value;
    const prefix = $("filter-prefix").value.trim();
    if (prefix) query.set("prefix", prefix);
    if (state) query.set("state", state);
    if (task) query.set("task", task);
    const limit = $("page-size").value;
    if (limit !== "100") query.set("limit", limit);
    const text = query.toString();
    location.hash = text ? `#/?${text}` : "#/";
  };
  let typing = null;
  $("filter-prefix").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(apply, 300); // once the typing pauses
  });
  $("filter-state").addEventListener("change", apply);
  $("filter-task").addEventListener("change", apply);
  $("page-size").addEventListener("change", apply);
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(typing);
    apply();
  });
}

async function boot() {
  try {
    await loadTasks();
  } catch (error) {
    if (!(error instanceof AuthRequired)) {
      setConnection("down", `cannot reach the server: ${error.message}`);
      setTimeout(boot, 2000);
    }
    return;
  }
  booted = true;
  const { query } = parseRoute();
  Object.assign(list, listState(query));
  route();
  startChanges();
}

document.addEventListener("DOMContentLoaded", () => {
  setUpLogin();
  setUpSubmit();
  setUpCancel();
  setUpRetry();
  setUpFilters();
  setUpPages();
  setUpBulk(); // bulk.js
  setUpActivity(); // charts.js
  setUpWorkflow(); // timeline.js
  $("log").addEventListener("scroll", (event) => {
    const log = event.target;
    run.follow = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
  });
  window.addEventListener("hashchange", route);
  setInterval(refreshTimes, 1000);
  boot();
});
