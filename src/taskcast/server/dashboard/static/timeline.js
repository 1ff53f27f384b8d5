// taskcast dashboard: a workflow's shape on its run's page.
//
// The runs this run waited for (`after`), the run itself and its child runs are drawn on one
// time axis, one bar per run coloured by its state (lighter while it waited, full while it ran).
// Children are read from `GET /runs?parent=` a page of 1,000 at a time (up to CHILDREN_KEPT),
// kept current by the changes stream and the parent's `child` events, and shown a page of
// TIMELINE_PAGE at a time (filterable by state): a parent with 10,000 children costs the page
// 100 rows, while the counts by state and the chart of queued, running and ended children cover
// them all.
"use strict";

const TIMELINE_PAGE = 100;
const CHILDREN_KEPT = 20000;
const DEPENDENCIES_SHOWN = 50;
const WORKFLOW_BUCKETS = 120;

/** A run as the timeline keeps it. */
function timelineRun(source) {
  return {
    id: source.id,
    task: source.task,
    state: source.state,
    created_at: source.created_at,
    started_at: source.started_at ?? null,
    finished_at: source.finished_at ?? null,
    last_seq: source.last_seq ?? 0,
  };
}

/** Apply a change from `/changes` to a run the timeline keeps; true if it changed. */
function patchTimelineRun(item, change) {
  if (change.seq <= item.last_seq) return false;
  item.state = change.state;
  item.last_seq = change.seq;
  if (change.type === "started") {
    item.started_at = change.at;
    item.finished_at = null;
  } else if (TERMINAL.has(change.type)) {
    item.finished_at = change.at;
  }
  return true;
}

const workflow = {
  id: null,
  self: null,
  children: new Map(), // id -> run
  early: new Map(), // child id -> changes seen before the child was read (a read in flight)
  ordered: null, // children in the order the parent asked for them, rebuilt when one joins
  dependencies: new Map(), // id -> run (fetched)
  loading: false,
  capped: false,
  page: 0,
  state: "", // show only children in this state
  generation: 0,
  renderPending: false,
  chart: null,
  chartDrawnAt: 0,
  chartTimer: null,

  open(data) {
    this.close();
    this.id = data.id;
    this.self = timelineRun(data);
    const generation = this.generation;
    if (Array.isArray(data.after) && data.after.length) this.loadDependencies(data.after.slice(0, DEPENDENCIES_SHOWN), generation);
    if ("parent_id" in data) this.loadChildren(generation); // the server knows about child runs
  },

  close() {
    this.generation += 1;
    clearTimeout(this.chartTimer);
    this.chartTimer = null;
    this.chartDrawnAt = 0;
    Object.assign(this, { id: null, self: null, ordered: null, loading: false, capped: false, page: 0 });
    this.children = new Map();
    this.early = new Map();
    this.dependencies = new Map();
    this.state = "";
    $("timeline-state").value = "";
    $("run-workflow").hidden = true;
    $("timeline").replaceChildren();
    $("workflow-chart-figure").hidden = true;
  },

  async loadDependencies(ids, generation) {
    await Promise.all(ids.map(async (id) => {
      try {
        const found = await api(`/runs/${encodeURIComponent(id)}`);
        if (generation === this.generation) this.dependencies.set(id, timelineRun(found));
      } catch (error) {
        // Pruned or unreachable: it is left out of the timeline.
      }
    }));
    if (generation === this.generation) this.schedule();
  },

  async loadChildren(generation) {
    this.loading = true;
    let before = null;
    try {
      for (;;) {
        const query = new URLSearchParams({ parent: this.id, limit: "1000" });
        if (before) query.set("before", before);
        const body = await api(`/runs?${query}`);
        if (generation !== this.generation) return;
        for (const child of body.runs) this.keep(timelineRun(child));
        this.schedule();
        if (body.next_before === null) break;
        if (this.children.size >= CHILDREN_KEPT) {
          this.capped = true;
          break;
        }
        before = body.next_before;
      }
    } catch (error) {
      // The server may be stopping; the changes stream keeps what was read current.
    } finally {
      if (generation === this.generation) {
        this.loading = false;
        this.schedule();
      }
    }
  },

  /** Keep `item` (a child run), unless the one held is fresher. */
  keep(item) {
    const held = this.children.get(item.id);
    if (held) {
      // Updated in place: the sorted list holds the same objects.
      if (item.last_seq >= held.last_seq) {
        if (item.created_at !== held.created_at) this.ordered = null; // the stored time wins
        Object.assign(held, item);
      }
      return;
    }
    if (this.children.size >= CHILDREN_KEPT) {
      this.capped = true;
      return;
    }
    this.ordered = null;
    this.children.set(item.id, item);
    const early = this.early.get(item.id);
    if (early) {
      this.early.delete(item.id);
      for (const change of early) patchTimelineRun(item, change);
    }
  },

  isChild(id) {
    if (!this.id || !id.startsWith(`${this.id}.`)) return false;
    return /^\d+(~\d+)?$/.test(id.slice(this.id.length + 1)); // not a grandchild
  },

  /** A `child` event of this run's log named a child. */
  addChild(id, task, at) {
    if (!this.id || this.children.has(id)) return;
    this.keep({ id, task: task || "", state: "queued", created_at: at || nowSeconds(), started_at: null, finished_at: null, last_seq: 0 });
    this.schedule();
  },

  onChanges(changes) {
    if (!this.id) return;
    let changed = false;
    for (const change of changes) {
      const item = this.children.get(change.id) || this.dependencies.get(change.id);
      if (item) changed = patchTimelineRun(item, change) || changed;
      else if (change.type === "queued" && change.task && this.isChild(change.id)) {
        this.keep({ id: change.id, task: change.task, state: change.state, created_at: change.at, started_at: null, finished_at: null, last_seq: change.seq });
        changed = true;
      } else if (this.isChild(change.id) && this.early.size < CHILDREN_KEPT) {
        // A child not read yet (its page is on its way): its changes are applied once it is.
        const early = this.early.get(change.id) || [];
        early.push(change);
        this.early.set(change.id, early);
      }
    }
    if (changed) this.schedule();
  },

  runChanged(data) {
    if (this.id !== data.id) return;
    this.self = timelineRun(data);
    this.schedule();
  },

  tick() {
    // Bars of runs that have not ended grow with the clock.
    if (!this.id || $("run-workflow").hidden) return;
    if (!this.self.finished_at || [...this.children.values()].some((item) => !item.finished_at)) this.schedule();
  },

  schedule() {
    if (this.renderPending) return;
    this.renderPending = true;
    requestAnimationFrame(() => {
      this.renderPending = false;
      this.render();
    });
  },

  sortedChildren() {
    if (!this.ordered) {
      // In the order the parent asked for them: a child's id is the parent's, a dot and its
      // position (`.7`, or `.7~2` for the one made by a later attempt); children submitted
      // together are created in no set order. Other ids follow, by creation.
      const position = (child) => {
        const n = Number.parseInt(child.id.slice(this.id.length + 1), 10);
        return Number.isNaN(n) ? Number.POSITIVE_INFINITY : n;
      };
      this.ordered = [...this.children.values()].sort(
        (a, b) => position(a) - position(b) || a.created_at - b.created_at || (a.id < b.id ? -1 : 1),
      );
    }
    return this.ordered;
  },

  render() {
    if (!this.id) return;
    const children = this.sortedChildren();
    const dependencies = [...this.dependencies.values()];
    const section = $("run-workflow");
    section.hidden = children.length === 0 && dependencies.length === 0;
    if (section.hidden) return;
    const now = nowSeconds();
    // One axis for every run shown on any page, so bars compare across pages.
    let start = this.self.created_at;
    let end = this.self.finished_at || now;
    for (const item of [...dependencies, ...children]) {
      start = Math.min(start, item.created_at);
      end = Math.max(end, item.finished_at || now);
    }
    const span = Math.max(end - start, 0.001);
    this.renderCounts(children);
    const shown = this.state ? children.filter((item) => item.state === this.state) : children;
    const pages = Math.max(1, Math.ceil(shown.length / TIMELINE_PAGE));
    this.page = Math.min(this.page, pages - 1);
    const first = this.page * TIMELINE_PAGE;
    const page = shown.slice(first, first + TIMELINE_PAGE);
    const rows = [
      ...dependencies.map((item) => this.row(item, "dependency", start, span, now)),
      this.row(this.self, "self", start, span, now),
      ...page.map((item) => this.row(item, "child", start, span, now)),
    ];
    $("timeline").replaceChildren(...rows);
    $("timeline-axis").textContent = `from ${clockTime(start)} to ${this.self.finished_at || children.every((item) => item.finished_at) ? clockTime(end) : "now"} (${shortDuration(span)})`;
    const of = `${number.format(shown.length)}${this.capped ? "+" : ""}`;
    $("timeline-position").textContent = shown.length
      ? `child runs ${number.format(first + 1)}–${number.format(first + page.length)} of ${of}`
      : "no child runs shown";
    $("timeline-earlier").disabled = this.page === 0;
    $("timeline-later").disabled = this.page >= pages - 1;
    if (children.length >= 2) this.chartDue(children, start, end, now);
    $("workflow-chart-figure").hidden = children.length < 2;
  },

  /** Draw the chart at most once a second: a change within the second is drawn at its end. */
  chartDue(children, start, end, now) {
    const wait = this.chartDrawnAt + 1 - now;
    if (wait <= 0) {
      this.drawChart(children, start, end);
    } else if (this.chartTimer === null) {
      this.chartTimer = setTimeout(() => {
        this.chartTimer = null;
        this.schedule();
      }, wait * 1000);
    }
  },

  renderCounts(children) {
    const byState = {};
    for (const item of children) byState[item.state] = (byState[item.state] || 0) + 1;
    const parts = [];
    const badges = [];
    for (const state of STATES) {
      if (!byState[state]) continue;
      parts.push(`${number.format(byState[state])} ${state}`);
      const item = document.createElement("li");
      item.append(stateBadge(`${state} ${number.format(byState[state])}`));
      item.firstChild.className = `state state-${state}`;
      badges.push(item);
    }
    $("workflow-states").replaceChildren(...badges);
    let text = children.length
      ? `${number.format(children.length)}${this.capped ? "+" : ""} child run${children.length === 1 ? "" : "s"}: ${parts.join(", ")}`
      : "No child runs";
    if (this.dependencies.size) text += `; waited for ${this.dependencies.size} run${this.dependencies.size === 1 ? "" : "s"}`;
    if (this.loading) text += " (reading the child runs…)";
    if (this.capped) text += ` (the first ${number.format(CHILDREN_KEPT)} are kept here)`;
    $("workflow-summary").textContent = text;
  },

  row(item, kind, start, span, now) {
    const row = document.createElement("li");
    row.className = `timeline-row ${kind}`;
    row.dataset.runId = item.id;
    const name = document.createElement("span");
    name.className = "timeline-name";
    if (kind === "self") {
      name.textContent = "this run";
    } else {
      // A child's id is its parent's and a suffix: the start and the suffix tell it apart.
      const label = kind === "child" && item.id.startsWith(`${this.id}.`)
        ? `${item.id.slice(0, 12)}…${item.id.slice(this.id.length)}`
        : item.id;
      const link = runLink(item.id, label);
      link.setAttribute("aria-label", `Run ${item.id}`);
      name.append(link);
    }
    const task = document.createElement("span");
    task.className = "timeline-task";
    task.textContent = kind === "dependency" ? `${item.task} (waited for)` : item.task;
    const track = document.createElement("span");
    track.className = "timeline-track";
    track.setAttribute("aria-hidden", "true");
    const ran = item.started_at ?? null;
    const ended = item.finished_at || now;
    const waitEnd = ran ?? ended;
    const place = (bar, from, to) => {
      // CSSOM, not a style attribute: allowed by the page's CSP.
      bar.style.left = `${((from - start) / span) * 100}%`;
      bar.style.width = `${Math.max(((to - from) / span) * 100, 0.3)}%`;
    };
    const wait = document.createElement("span");
    wait.className = `timeline-bar waiting bar-${item.state}`;
    place(wait, item.created_at, waitEnd);
    track.append(wait);
    if (ran !== null) {
      const bar = document.createElement("span");
      bar.className = `timeline-bar bar-${item.state}`;
      place(bar, ran, ended);
      track.append(bar);
    }
    const time = document.createElement("span");
    time.className = "timeline-time";
    const offset = `+${shortDuration(item.created_at - start)}`;
    if (ran === null) time.textContent = item.finished_at ? `${offset}, never started` : `${offset}, waiting ${shortDuration(ended - item.created_at)}`;
    else time.textContent = `${offset}, ran ${shortDuration(ended - ran)}${item.finished_at ? "" : " so far"}`;
    row.append(name, task, stateBadge(item.state), track, time);
    return row;
  },

  drawChart(children, start, end) {
    this.chartDrawnAt = nowSeconds();
    const step = Math.max((end - start) / WORKFLOW_BUCKETS, 0.001);
    const count = Math.max(1, Math.ceil((end - start) / step));
    const changes = { queued: new Array(count + 1).fill(0), running: new Array(count + 1).fill(0), ended: new Array(count + 1).fill(0) };
    const at = (time) => Math.min(Math.max(Math.floor((time - start) / step), 0), count);
    for (const item of children) {
      const ran = item.started_at ?? null;
      changes.queued[at(item.created_at)] += 1;
      if (ran !== null) {
        changes.queued[at(ran)] -= 1;
        changes.running[at(ran)] += 1;
        if (item.finished_at) changes.running[at(item.finished_at)] -= 1;
      } else if (item.finished_at) {
        changes.queued[at(item.finished_at)] -= 1;
      }
      if (item.finished_at) changes.ended[at(item.finished_at)] += 1;
    }
    const times = [];
    const levels = { queued: [], running: [], ended: [] };
    const level = { queued: 0, running: 0, ended: 0 };
    for (let index = 0; index < count; index++) {
      times.push(start + (index + 1) * step);
      for (const name of ["queued", "running", "ended"]) {
        level[name] += changes[name][index];
        levels[name].push(level[name]);
      }
    }
    if (!this.chart) this.chart = new TimeChart($("workflow-chart"), ["queued", "running", "ended"]); // charts.js
    this.chart.draw(times, [levels.queued, levels.running, levels.ended]);
    const most = (values) => number.format(Math.max(0, ...values));
    const text = renderKey($("workflow-chart-key"), [
      ["queued", `at most ${most(levels.queued)} queued at once`],
      ["running", `at most ${most(levels.running)} running at once`],
      ["ended", `${number.format(level.ended)} ended`],
    ]);
    $("workflow-chart").setAttribute("aria-label", `Child runs over the workflow's ${shortDuration(end - start)}: ${text}.`);
  },
};

function clockTime(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString();
}

function setUpWorkflow() {
  $("timeline-state").addEventListener("change", (event) => {
    workflow.state = event.target.value;
    workflow.page = 0;
    workflow.schedule();
  });
  $("timeline-earlier").addEventListener("click", () => {
    workflow.page = Math.max(workflow.page - 1, 0);
    workflow.schedule();
  });
  $("timeline-later").addEventListener("click", () => {
    workflow.page += 1;
    workflow.schedule();
  });
}
