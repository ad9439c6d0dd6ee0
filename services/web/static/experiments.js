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

  renderMatrix() {
    const columns = this.available;
    const head = el("tr");
    head.append(el("th", "corner", "service"));
    for (const experiment of columns) {
      const th = el("th", null, experiment.title);
      th.scope = "col";
      th.title = experiment.watch_for || "";
      head.append(th);
    }
    const rows = this.services.map((service) => {
      const row = el("tr");
      row.dataset.service = service.name;
      const th = el("th");
      th.scope = "row";
      th.append(el("span", "m-name", service.name), el("span", "m-loop", service.loop || ""));
      row.append(th);
      for (const experiment of columns) {
        const cell = el("td");
        if ((experiment.services || []).includes(service.name)) {
          const button = el("button", "go", "Run");
          button.type = "button";
          button.dataset.experiment = experiment.id;
          button.dataset.service = service.name;
          button.setAttribute("aria-label", `${experiment.title} on ${service.name}`);
          button.title = `${experiment.title} on ${service.name}, ${experiment.duration_s} s`;
          button.addEventListener("click", () => this.launch(experiment, service.name));
          cell.append(button);
        }
        row.append(cell);
      }
      return row;
    });
    this.matrix.replaceChildren(el("thead"), el("tbody"));
    this.matrix.tHead.append(head);
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
    card.dataset.run = String(experiment.run);
    card.dataset.service = experiment.service;
    if (this.shownRun !== key) {
      this.shownRun = key;
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

  countdown(experiment) {
    const ends = epochSeconds(experiment.ends_at);
    const started = epochSeconds(experiment.started_at);
    const duration = experiment.duration_s || (ends && started ? ends - started : 0);
    const left = ends === null ? null : Math.max(0, ends - this.serverNow());
    const progress = $(".r-progress", this.run);
    const text = $(".r-left", this.run);
    if (!progress || !text) return;
    if (left === null) {
      text.textContent = "running…";
      return;
    }
    progress.value = Math.max(0, duration - left);
    const seconds = Math.ceil(left);
    text.textContent = seconds > 0 ? `${seconds} s left` : "measuring the verdict…";
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
    const figures = figuresTable(experiment.figures);
    if (figures) {
      const details = el("details", "r-figures");
      details.append(el("summary", null, "the figures of this run, before and during"), figures);
      parts.push(details);
    }
    return parts;
  }
}

function figureText(key, value) {
  if (isNum(value)) return /(_ms|ms)$/.test(key) ? fmtMs(value) : String(Math.round(value * 100) / 100);
  if (value === null || value === undefined) return "—";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

function figuresTable(figures) {
  if (!figures || typeof figures !== "object") return null;
  const before = figures.before || {};
  const during = figures.during || {};
  const keys = [...new Set([...Object.keys(before), ...Object.keys(during)])];
  if (!keys.length) return null;
  const table = el("table", "figures-table");
  const head = el("tr");
  head.append(el("th", null, ""), el("th", null, "before"), el("th", null, "during"));
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
