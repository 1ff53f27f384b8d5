// taskcast dashboard: the activity charts of the list page, from `GET /stats`, drawn with uPlot
// (uPlot.iife.min.js, shipped beside this file; MIT, see uPlot.LICENSE.txt).
//
// The figures are the store's, for the whole store (not the runs listed): runs started and
// ended per bucket by end state, runs queued and running at the end of each bucket, and per
// task how long the runs that ended took. They are read again every few seconds while the list
// is shown and the tab is visible. Each chart has a key that says its totals in words, which
// is also the chart's accessible name: the canvas itself says nothing to a screen reader.
"use strict";

const CHART_COLORS = {
  started: "#0b57d0",
  completed: "#146c2e",
  failed: "#b3261e",
  cancelled: "#7a4a00",
  timed_out: "#a3186b",
  interrupted: "#6b2fa0",
  queued: "#4a4a4a",
  running: "#0b57d0",
  ended: "#146c2e",
};
const CHART_HEIGHT = 170;
const PERIODS = {
  "1h": { step: "1m", every: 5000, bucket: "minute" },
  "24h": { step: "15m", every: 30000, bucket: "15 minutes" },
};
const ENDS = ["completed", "failed", "cancelled", "timed_out"];
const SOONEST_AFTER_CHANGE = 1500; // ms between two reads prompted by runs changing

/** A uPlot chart of time series in `element`, sized to it (and resized with it). */
class TimeChart {
  constructor(element, names) {
    this.element = element;
    this.names = names;
    this.plot = null;
    new ResizeObserver(() => this.resize()).observe(element);
  }

  draw(times, columns) {
    const data = [times, ...columns];
    if (this.plot) {
      this.plot.setData(data);
      return;
    }
    const axis = { stroke: "#4a4a4a", grid: { stroke: "#e4e4e4", width: 1 }, ticks: { stroke: "#c8c8c8", width: 1 } };
    this.plot = new uPlot({
      width: Math.max(this.element.clientWidth, 200),
      height: CHART_HEIGHT,
      legend: { show: false },
      cursor: { drag: { x: false, y: false }, points: { show: false } },
      scales: { x: { time: true }, y: { range: (plot, min, max) => [0, Math.max(max, 1)] } },
      axes: [axis, { ...axis, size: 44, values: (plot, ticks) => ticks.map((tick) => number.format(tick)) }],
      series: [
        {},
        ...this.names.map((name) => ({ label: name, stroke: CHART_COLORS[name], width: 2, points: { show: false } })),
      ],
    }, data, this.element);
  }

  resize() {
    const width = this.element.clientWidth;
    if (this.plot && width > 0 && width !== this.plot.width) this.plot.setSize({ width, height: CHART_HEIGHT });
  }
}

/** Fill a chart's key: a swatch, a name and a figure per series; returns it as one sentence. */
function renderKey(list, items) {
  list.replaceChildren(...items.map(([name, text]) => {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.backgroundColor = CHART_COLORS[name]; // CSSOM: allowed by the page's CSP
    item.append(swatch, text);
    return item;
  }));
  return items.map(([, text]) => text).join(", ");
}

const sum = (values) => values.reduce((total, value) => total + value, 0);

const activity = {
  period: "1h",
  counts: null, // every run in the store by task, then state (the last answer's)
  ends: null,
  load: null,
  timer: null,
  due: 0, // when the next read is planned (performance.now()); 0 while one is under way
  again: false, // runs changed while a read was under way
  lastRead: -Infinity,
  generation: 0,
  shown: false,

  show() {
    if (this.shown) return;
    this.shown = true;
    this.poll();
  },

  hide() {
    this.shown = false;
    this.generation += 1;
    clearTimeout(this.timer);
  },

  setPeriod(period) {
    this.period = period;
    if (this.shown) {
      this.hide();
      this.show();
    }
  },

  /** Runs changed (the changes stream said so): read the figures again soon, not at once
   * for every change. */
  changed() {
    if (!this.shown || document.hidden) return;
    if (this.due === 0) {
      this.again = true; // a read is under way: one more once it is done
      return;
    }
    const soonest = Math.max(this.lastRead + SOONEST_AFTER_CHANGE, performance.now());
    if (this.due <= soonest) return; // a read is planned before that
    clearTimeout(this.timer);
    this.due = soonest;
    this.timer = setTimeout(() => this.poll(), soonest - performance.now());
  },

  async poll() {
    const generation = ++this.generation;
    clearTimeout(this.timer);
    this.due = 0; // under way
    this.again = false;
    if (document.hidden) return; // visibilitychange brings it back
    const { step, every } = PERIODS[this.period];
    this.lastRead = performance.now();
    try {
      const stats = await api(`/stats?window=${this.period}&step=${step}`);
      if (generation !== this.generation) return;
      this.render(stats);
      $("activity-status").textContent = "";
    } catch (error) {
      if (generation !== this.generation || error instanceof AuthRequired) return;
      $("activity-status").textContent = `Could not read the figures: ${error.message}`;
    }
    this.due = performance.now() + every;
    this.timer = setTimeout(() => this.poll(), every);
    if (this.again) {
      this.again = false;
      this.changed();
    }
  },

  render(stats) {
    this.counts = stats.counts;
    if (!this.ends) {
      this.ends = new TimeChart($("chart-ends"), ["started", ...ENDS]);
      this.load = new TimeChart($("chart-load"), ["queued", "running"]);
    }
    const bucket = PERIODS[this.period].bucket;
    const period = this.period === "1h" ? "the last hour" : "the last 24 hours";
    this.ends.draw(stats.times, [stats.started, ...ENDS.map((state) => stats.finished[state])]);
    const ended = renderKey($("chart-ends-key"), [
      ["started", `${number.format(sum(stats.started))} started`],
      ...ENDS.map((state) => [state, `${number.format(sum(stats.finished[state]))} ${state.replace("_", " ")}`]),
    ]);
    $("chart-ends").setAttribute("aria-label", `Runs per ${bucket} over ${period}: ${ended}.`);
    this.load.draw(stats.times, [stats.queued, stats.running]);
    const last = stats.queued.length - 1;
    const now = renderKey($("chart-load-key"), [
      ["queued", `${number.format(stats.queued[last] || 0)} queued now (at most ${number.format(Math.max(0, ...stats.queued))})`],
      ["running", `${number.format(stats.running[last] || 0)} running now (at most ${number.format(Math.max(0, ...stats.running))})`],
    ]);
    $("chart-load").setAttribute("aria-label", `Runs queued and running at the end of each ${bucket} over ${period}: ${now}.`);
    this.renderDurations(stats.durations);
    renderSummary(); // dashboard.js: the total of runs matching the list's filter
  },

  renderDurations(durations) {
    const tasks = Object.entries(durations).sort((a, b) => b[1].runs - a[1].runs || a[0].localeCompare(b[0]));
    const longest = Math.max(0, ...tasks.map(([, figures]) => figures.p95));
    $("durations-empty").hidden = tasks.length > 0;
    $("durations").hidden = tasks.length === 0;
    $("durations-body").replaceChildren(...tasks.map(([task, figures]) => {
      const row = document.createElement("tr");
      const cells = [task, number.format(figures.runs), shortDuration(figures.p50), shortDuration(figures.p95), shortDuration(figures.max)];
      cells.forEach((text, index) => {
        const cell = document.createElement(index === 0 ? "th" : "td");
        if (index === 0) cell.scope = "row";
        else cell.className = "num";
        cell.textContent = text;
        row.append(cell);
      });
      const bars = document.createElement("td");
      bars.className = "col-bars";
      for (const [name, value] of [["p50", figures.p50], ["p95", figures.p95]]) {
        const bar = document.createElement("span");
        bar.className = `bar bar-${name}`;
        bar.style.width = `${longest > 0 ? Math.max((value / longest) * 100, 0.5) : 0}%`;
        bars.append(bar);
      }
      row.append(bars);
      return row;
    }));
  },
};

function setUpActivity() {
  $("activity-window").addEventListener("change", (event) => activity.setPeriod(event.target.value));
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && activity.shown) activity.poll();
  });
}
