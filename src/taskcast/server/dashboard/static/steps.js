"use strict";
// The run page's steps: one bar per durable call the run recorded (ctx.step, ctx.sleep,
// ctx.signal) on one time axis, with its duration and whether it ran or was replayed (a later
// attempt got its result back from the log without running it). Read from GET /runs/{id}'s
// `steps`, then kept live from the run's `step` events.

const stepTimeline = {
  runId: null,
  entries: [], // as GET /runs/{id} lists them, in log order
  lastSeq: 0,
  attempt: 0,

  open(data) {
    this.runId = data.id;
    this.entries = (data.steps || []).slice();
    this.lastSeq = this.entries.length ? this.entries[this.entries.length - 1].seq : 0;
    this.attempt = data.attempt;
    this.render();
  },

  close() {
    this.runId = null;
    this.entries = [];
    this.lastSeq = 0;
    $("run-steps").hidden = true;
    $("steps-list").replaceChildren();
  },

  /** The run changed (a new attempt replays the steps before it); `data.steps` if read again. */
  runChanged(data) {
    if (data.id !== this.runId) return;
    this.attempt = data.attempt;
    if (data.steps) {
      const live = this.entries.filter((entry) => entry.seq > (data.steps.length ? data.steps[data.steps.length - 1].seq : 0));
      this.entries = [...data.steps, ...live];
      this.lastSeq = this.entries.length ? this.entries[this.entries.length - 1].seq : 0;
    }
    this.render();
  },

  /** A `step` event of the run's log, live. */
  add(event) {
    if (event.seq <= this.lastSeq) return;
    this.lastSeq = event.seq;
    const data = event.data || {};
    const started = typeof data.started_at === "number" ? data.started_at : event.at;
    const finished = data.kind === "sleep" && typeof data.wake_at === "number" ? data.wake_at : event.at;
    this.entries.push({
      index: data.index,
      kind: data.kind || "step",
      name: String(data.name || ""),
      state: data.error ? "failed" : "completed",
      attempt: data.attempt || this.attempt,
      tries: data.tries || 1,
      started_at: started,
      finished_at: finished,
      duration: Math.max(0, finished - started),
      seq: event.seq,
      error: data.error || null,
    });
    this.render();
  },

  render() {
    const entries = this.entries;
    $("run-steps").hidden = entries.length === 0;
    if (!entries.length) return;
    const start = Math.min(...entries.map((entry) => entry.started_at));
    const end = Math.max(...entries.map((entry) => entry.finished_at));
    const span = Math.max(end - start, 0.001);
    let replayed = 0;
    const rows = entries.map((entry) => {
      const wasReplayed = entry.state === "completed" && entry.attempt < this.attempt;
      if (wasReplayed) replayed += 1;
      return this.row(entry, wasReplayed, start, span);
    });
    $("steps-list").replaceChildren(...rows);
    const count = `${entries.length} step${entries.length === 1 ? "" : "s"} recorded`;
    $("steps-summary").textContent = replayed ? `${count}; ${replayed} replayed in attempt ${this.attempt} without running again` : count;
  },

  row(entry, wasReplayed, start, span) {
    const row = document.createElement("li");
    row.className = `timeline-row step-${entry.kind}`;
    row.dataset.index = String(entry.index);
    row.dataset.outcome = entry.state === "failed" ? "failed" : wasReplayed ? "replayed" : "ran";
    const name = document.createElement("span");
    name.className = "timeline-name";
    name.textContent = entry.kind === "step" ? entry.name : `${entry.kind} ${entry.kind === "sleep" ? "" : entry.name}`.trim();
    const how = document.createElement("span");
    how.className = "timeline-task step-how";
    if (entry.state === "failed") how.textContent = `failed in attempt ${entry.attempt}${entry.error ? `: ${entry.error.type}` : ""}`;
    else if (wasReplayed) how.textContent = `ran in attempt ${entry.attempt}, replayed`;
    else how.textContent = `ran in attempt ${entry.attempt}`;
    if (entry.tries > 1) how.textContent += ` (${entry.tries} tries)`;
    const track = document.createElement("span");
    track.className = "timeline-track";
    track.setAttribute("aria-hidden", "true");
    const bar = document.createElement("span");
    bar.className = `timeline-bar bar-${entry.state}${wasReplayed ? " replayed" : ""}`;
    // CSSOM, not a style attribute: allowed by the page's CSP.
    bar.style.left = `${((entry.started_at - start) / span) * 100}%`;
    bar.style.width = `${Math.max(((entry.finished_at - entry.started_at) / span) * 100, 0.3)}%`;
    track.append(bar);
    const time = document.createElement("span");
    time.className = "timeline-time step-duration";
    time.textContent = `+${shortDuration(entry.started_at - start)}, ${shortDuration(entry.duration ?? entry.finished_at - entry.started_at)}`;
    row.append(name, stateBadge(entry.state), track, how, time);
    return row;
  },
};
