// One-click experiments (GET/POST/DELETE /api/experiments): a matrix of the experiments the
// front offers, one row per service; while one runs, what to watch for and a countdown,
// then the verdict the front measured from that run, where the eye already is (above the
// charts of the service under experiment).

import { $, ApiError, api, el, epochSeconds, fmtMs, isNum } from "./util.js";

const RUNNING_POLL_MS = 1000;
const IDLE_POLL_MS = 10000; // someone else (another tab, curl) may start one

export class Experiments {
  constructor({ onFocus, onChange, serverNow }) {
    this.onFocus = onFocus;
    this.onChange = onChange;
    this.serverNow = serverNow;
    this.enabled = false;
    this.available = [];
    this.current = null;
    this.last = null;
    this.services = [];
    this.panel = $("#experiments");
    this.matrix = $("#matrix");
    this.run = $("#run");
    this.timer = null;
    this.ticker = null;
    this.shownRun = null;
  }

  async start(services) {
    this.services = services;
    await this.refresh();
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) this.refresh();
    });
  }

  schedule() {
    clearTimeout(this.timer);
    const running = this.current?.state === "running";
    this.timer = setTimeout(() => this.refresh(), running ? RUNNING_POLL_MS : IDLE_POLL_MS);
  }

  async refresh() {
    try {
      const listed = await api("GET", "/api/experiments");
      this.enabled = Boolean(listed.enabled);
      const ids = JSON.stringify((listed.available || []).map((x) => [x.id, x.services]));
      if (ids !== JSON.stringify(this.available.map((x) => [x.id, x.services]))) {
        this.available = listed.available || [];
        this.renderMatrix();
      }
      this.current = listed.current || null;
      this.last = listed.last || null;
      this.panel.dataset.api = "ok";
    } catch (error) {
      this.panel.dataset.api = error.status === 404 ? "missing" : "failed";
      $("#experiments-state").textContent = error.status === 404
        ? "This front offers no experiments API (GET /api/experiments answered 404)."
        : `The experiments could not be listed: ${error.message}`;
      this.schedule();
      return;
    }
    this.renderState();
    this.schedule();
  }

  // one column per experiment; titles that share a head ("Block the loop 500 ms every
  // second (a sleeping call)", "(pure-Python work)") share a header cell over their kinds
  renderMatrix() {
    const columns = this.available.map((experiment) => {
      const match = /^(.*?)\s*\(([^()]*)\)\s*$/.exec(experiment.title || experiment.id);
      return { experiment, head: match ? match[1] : experiment.title, kind: match ? match[2] : null };
    });
    const top = el("tr");
    const sub = el("tr");
    const corner = el("th", "corner", "service");
    corner.rowSpan = 2;
    corner.scope = "col";
    top.append(corner);
    for (let i = 0; i < columns.length; i += 1) {
      const { head, kind } = columns[i];
      if (kind === null) {
        const th = el("th", "m-head", head);
        th.rowSpan = 2;
        th.scope = "col";
        top.append(th);
        continue;
      }
      let span = 1;
      while (i + span < columns.length && columns[i + span].kind !== null
        && columns[i + span].head === head) span += 1;
      const th = el("th", "m-head", head);
      th.colSpan = span;
      th.scope = "colgroup";
      top.append(th);
      for (const column of columns.slice(i, i + span)) {
        const kindCell = el("th", "m-kind", column.kind);
        kindCell.scope = "col";
        sub.append(kindCell);
      }
      i += span - 1;
    }
    const rows = this.services.map((service) => {
      const row = el("tr");
      row.dataset.service = service.name;
      const th = el("th");
      th.scope = "row";
      th.append(el("span", "m-name", service.name), el("span", "m-loop", service.loop || ""));
      row.append(th);
      for (const { experiment } of columns) {
        const cell = el("td");
        if ((experiment.services || []).includes(service.name)) {
          const button = el("button", "go", "Run");
          button.type = "button";
          button.dataset.experiment = experiment.id;
          button.dataset.service = service.name;
          button.setAttribute("aria-label", `${experiment.title} on ${service.name}`);
          button.addEventListener("click", () => this.launch(experiment, service.name));
          cell.append(button);
        }
        row.append(cell);
      }
      return row;
    });
    this.matrix.replaceChildren(el("thead"), el("tbody"));
    this.matrix.tHead.append(top, ...(sub.children.length ? [sub] : []));
    this.matrix.tBodies[0].append(...rows);
  }

  renderState() {
    const running = this.current?.state === "running";
    $("#experiments-state").textContent = !this.enabled
      ? "Experiments are off: fault injection is off on this front (published beyond loopback without WEB_FAULTS=1)."
      : "";
    for (const button of this.matrix.querySelectorAll("button.go")) {
      button.disabled = !this.enabled || running;
      button.title = running ? "one experiment at a time: stop it or wait for its verdict"
        : button.getAttribute("aria-label");
      const mine = running && button.dataset.experiment === this.current.experiment
        && button.dataset.service === this.current.service;
      button.classList.toggle("running", mine);
      button.textContent = mine ? "Running" : "Run";
    }
    this.showRun(running ? this.current : this.last);
    this.onChange(running ? this.current : null, this.last);
  }

  async launch(experiment, service) {
    this.onFocus(service);
    try {
      this.current = await api("POST", "/api/experiments", { experiment: experiment.id, service });
      this.renderState();
      this.schedule();
    } catch (error) {
      if (error instanceof ApiError && error.status === 409) {
        this.flash("Another experiment is running: its verdict comes first.");
      } else if (error instanceof ApiError && error.status === 403) {
        this.flash("Experiments are off on this front (fault injection is off).");
      } else {
        this.flash(error.message);
      }
      await this.refresh();
    }
  }

  async stop() {
    try {
      const stopped = await api("DELETE", "/api/experiments/current");
      if (stopped && typeof stopped === "object" && stopped.state) this.last = stopped;
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) this.flash(error.message);
    }
    await this.refresh();
  }

  flash(text) {
    $("#experiments-state").textContent = text;
  }

  // the run card: running (watch for + countdown + stop) or finished (its verdict)
  showRun(experiment) {
    const card = this.run;
    clearInterval(this.ticker);
    if (!experiment) {
      card.dataset.state = "idle";
      delete card.dataset.run;
      delete card.dataset.service;
      card.replaceChildren(el("p", "r-idle",
        "Click Run: the charts follow that service, a countdown runs, and the verdict measured "
        + "from the run appears here. Compare a block (everyone on that loop waits) with "
        + "latency (only that answer is late; the loop stays free)."));
      this.shownRun = null;
      return;
    }
    const key = `${experiment.run}:${experiment.state}:${experiment.verdict ?? ""}`;
    card.dataset.state = experiment.state;
    card.dataset.phase = experiment.phase || "";
    card.dataset.run = String(experiment.run);
    card.dataset.service = experiment.service;
    if (this.shownRun !== key) {
      this.shownRun = key;
      // said once per change (the countdown itself is not announced every second)
      $("#run-status").textContent = experiment.state === "running"
        ? `${experiment.title} on ${experiment.service} started. Watch for: ${experiment.watch_for}`
        : `${experiment.title} on ${experiment.service}: ${experiment.verdict || experiment.state}`;
      card.replaceChildren(...(experiment.state === "running"
        ? this.runningParts(experiment) : this.verdictParts(experiment)));
    }
    if (experiment.state === "running") {
      const tick = () => this.countdown(experiment);
      tick();
      this.ticker = setInterval(tick, 250);
    }
  }

  runningParts(experiment) {
    const title = el("h3", "r-title");
    title.append(el("span", "r-what", experiment.title), " on ", el("code", null, experiment.service));
    const watch = el("p", "r-watch");
    watch.append(el("strong", null, "Watch for: "), experiment.watch_for || "");
    const progress = el("progress", "r-progress");
    progress.max = experiment.duration_s || 1;
    progress.value = 0;
    progress.setAttribute("aria-label", "time left in the experiment");
    const left = el("span", "r-left", "");
    const stop = el("button", "secondary r-stop", "Stop now");
    stop.type = "button";
    stop.addEventListener("click", () => this.stop());
    const line = el("div", "r-line");
    line.append(progress, left, stop);
    return [title, watch, line];
  }

  // the run: a baseline first (the stack as it is), then the experiment itself
  countdown(experiment) {
    const ends = epochSeconds(experiment.ends_at);
    const started = epochSeconds(experiment.started_at);
    const baseline = isNum(experiment.baseline_s) ? experiment.baseline_s : 0;
    const total = ends !== null && started !== null ? ends - started : baseline + (experiment.duration_s || 0);
    const progress = $(".r-progress", this.run);
    const text = $(".r-left", this.run);
    if (!progress || !text) return;
    if (ends === null) {
      text.textContent = "running…";
      return;
    }
    const now = this.serverNow();
    const left = Math.max(0, ends - now);
    progress.max = total || 1;
    progress.value = Math.max(0, total - left);
    const untilFault = started === null ? 0 : started + baseline - now;
    const seconds = Math.ceil(left);
    if (untilFault > 0) {
      text.textContent = `baseline · starts in ${Math.ceil(untilFault)} s`;
    } else {
      text.textContent = seconds > 0 ? `${seconds} s left` : "measuring the verdict…";
    }
    this.run.dataset.left = String(seconds);
  }

  verdictParts(experiment) {
    const title = el("h3", "r-title");
    const word = { done: "Verdict", stopped: "Stopped early", failed: "Failed" }[experiment.state]
      || experiment.state;
    title.append(el("span", "r-state", word), " · ", el("span", "r-what", experiment.title), " on ",
      el("code", null, experiment.service));
    const verdict = el("p", "verdict", experiment.verdict || "No verdict: the run did not finish.");
    const parts = [title, verdict];
    const figures = figuresTable(experiment.figures, experiment.service);
    if (figures) {
      const details = el("details", "r-figures");
      details.append(el("summary", null, "the figures of this run, before and during"), figures);
      parts.push(details);
    }
    return parts;
  }
}

function figureText(key, value) {
  if (isNum(value)) return /_ms$/.test(key) ? fmtMs(value) : String(Math.round(value * 100) / 100);
  if (value === null || value === undefined) return "—";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

// one phase's figures of `service`: its own ("steady_max_ms": 502), then the run's
// ("seconds", and e.g. "concurrent elapsed ms" for the resolve contrast)
function flatten(phase, service) {
  const flat = {};
  if (!phase || typeof phase !== "object") return flat;
  Object.assign(flat, phase.services?.[service] || {});
  for (const [key, value] of Object.entries(phase)) {
    if (key === "services") continue;
    if (value && typeof value === "object" && !Array.isArray(value)) {
      for (const [inner, v] of Object.entries(value)) flat[`${key} ${inner}`] = v;
    } else {
      flat[key] = value;
    }
  }
  return flat;
}

function figuresTable(figures, service) {
  if (!figures || typeof figures !== "object") return null;
  const before = flatten(figures.before, service);
  const during = flatten(figures.during, service);
  const keys = [...new Set([...Object.keys(before), ...Object.keys(during)])];
  if (!keys.length) return null;
  const table = el("table", "figures-table");
  const head = el("tr");
  head.append(el("th", null, service), el("th", null, "before"), el("th", null, "during"));
  table.append(head);
  for (const key of keys) {
    const row = el("tr");
    const th = el("th", null, key.replaceAll("_", " "));
    th.scope = "row";
    row.append(th, el("td", null, figureText(key, before[key])), el("td", null, figureText(key, during[key])));
    table.append(row);
  }
  return table;
}
