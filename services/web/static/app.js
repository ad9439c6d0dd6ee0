// polyloop dashboard. The services come from GET /api/stack; the map, the charts and the
// experiments follow /ws/live (one message a second) and /api/experiments. Charts by uPlot
// (static/vendor/, `make vendor`). No inline code: the page's CSP allows only what this
// front serves.

import { Chart, HISTORY_S, chartsAvailable, refreshTheme } from "./charts.js";
import { Experiments } from "./experiments.js";
import { FaultPanel } from "./faults.js";
import {
  buildMap, isBlocked, markExperiment, markFocus, nodeFor, setBadge, updateHealth, updateNode,
} from "./map.js";
import { setupEcho, setupFanout, setupResolve } from "./tryit.js";
import { $, $$, api, epochSeconds, fmtMs, fmtNum, fmtRate, isNum, steadyWorst } from "./util.js";

// ---- what the page knows --------------------------------------------------------------

const page = {
  services: [], // GET /api/stack's services, in the catalogue's order
  frontLoop: null,
  focus: null, // the service whose charts are on the first screen
  clockOffset: 0, // the front's clock minus ours, from each feed message
  current: null, // the experiment running, if any
  last: null, // the last one that ended
};

const serverNow = () => Date.now() / 1000 + page.clockOffset;

class History {
  constructor(keys) {
    this.t = [];
    this.columns = Object.fromEntries(keys.map((k) => [k, []]));
  }

  push(ts, values) {
    this.t.push(ts);
    for (const [key, column] of Object.entries(this.columns)) column.push(values[key] ?? null);
    while (this.t.length && this.t[0] < ts - HISTORY_S - 2) {
      this.t.shift();
      for (const column of Object.values(this.columns)) column.shift();
    }
  }
}

const SERVICE_KEYS = ["lag", "blocked", "p50", "max", "rate", "errors"];
const histories = new Map(); // service -> History

function historyOf(name) {
  if (!histories.has(name)) histories.set(name, new History(SERVICE_KEYS));
  return histories.get(name);
}

// ---- chart sets ------------------------------------------------------------------------

const MS_SERIES = [
  { key: "blocked", label: "blocked now", color: "--c-blocked", bars: true, fill: true, width: 0 },
  { key: "lag", label: "loop lag p99", color: "--c-lag", width: 2.5 },
  { key: "p50", label: "round trip p50", color: "--c-rtt", width: 1.5 },
  { key: "max", label: "round trip max", color: "--c-max", width: 1.5, dash: [5, 3] },
];
const RATE_SERIES = [
  { key: "rate", label: "served req/s", color: "--c-rps", fill: true, width: 1.5 },
  { key: "errors", label: "steady client errors/s", color: "--c-err", width: 2 },
];

// the span of the experiment on `name`'s charts (running, or the last one)
function bandFor(nameOf) {
  return () => {
    const name = nameOf();
    const experiment = page.current?.service === name ? page.current
      : page.last?.service === name ? page.last : null;
    if (!experiment) return null;
    // the fault's own span: after the run's baseline, until its end
    const started = epochSeconds(experiment.started_at);
    const planned = epochSeconds(experiment.ends_at);
    if (started === null) return null;
    const from = started + (isNum(experiment.baseline_s) ? experiment.baseline_s : 0);
    if (experiment.state === "running" && serverNow() < from) return null;
    const to = experiment.state === "running" ? Math.min(serverNow(), planned ?? Infinity)
      : isNum(experiment.figures?.during?.seconds) ? from + experiment.figures.during.seconds
        : planned ?? from + (experiment.duration_s || 0);
    return { from, to, label: experiment.title || experiment.experiment };
  };
}

class ServiceCharts {
  constructor(root, nameOf, { msHeight, rateHeight, sync, window = HISTORY_S }) {
    this.nameOf = nameOf;
    const band = bandFor(nameOf);
    this.ms = new Chart($(".c-ms", root), { kind: "ms", series: MS_SERIES, height: msHeight, sync, band, window });
    this.rate = new Chart($(".c-rate", root), { kind: "rate", series: RATE_SERIES, height: rateHeight, sync, band, window });
  }

  update() {
    const history = historyOf(this.nameOf());
    this.ms.update(history);
    this.rate.update(history);
  }
}

// ---- the first screen: the focus charts -------------------------------------------------

let focusCharts = null;

function setFocus(name) {
  if (!name || page.focus === name) return;
  page.focus = name;
  const service = page.services.find((s) => s.name === name);
  $("#focus-name").textContent = name;
  $("#focus-loop").textContent = service?.loop || "";
  $("#focus").dataset.service = name;
  markFocus(name);
  renderFocusNote();
  focusCharts?.update();
}

function renderFocusNote() {
  const running = page.current?.state === "running" && page.current.service === page.focus;
  $("#focus").dataset.experiment = running ? "running" : "";
  $("#focus-note").textContent = running ? "under experiment" : "";
}

// ---- Inside each loop: one card per service -----------------------------------------------

const cards = new Map();

function buildCards(notes) {
  const root = $("#service-charts");
  root.replaceChildren();
  for (const service of page.services) {
    const card = $("#service-chart-template").content.firstElementChild.cloneNode(true);
    card.dataset.service = service.name;
    $("h3", card).textContent = service.name;
    $(".svc-loop", card).textContent = service.loop || "";
    const note = notes.get(service.name);
    if (note) $(".svc-why", card).replaceChildren(...note.cloneNode(true).childNodes);
    root.append(card);
    const charts = new ServiceCharts(card, () => service.name,
      { msHeight: 150, rateHeight: 90, sync: `svc:${service.name}` });
    cards.set(service.name, { card, charts, points: 0 });
  }
}

function updateCard(name, service) {
  const entry = cards.get(name);
  if (!entry) return;
  const { card } = entry;
  const up = service.state === "up";
  const blocked = isBlocked(service);
  entry.points += 1;
  card.dataset.points = String(entry.points);
  card.dataset.state = service.state;
  card.dataset.blocked = String(blocked);
  const metrics = service.metrics || {};
  card.dataset.last = JSON.stringify({
    rate: up ? service.rate ?? 0 : 0,
    lag_p99_ms: service.lag_p99_ms ?? null,
    blocked_ms: up ? service.blocked_ms ?? 0 : 0,
    steady_max_ms: steadyWorst(service.steady),
    state: service.state,
    requests_total: metrics.polyloop_requests_total ?? null,
  });
  $(".f-rate", card).textContent = up ? fmtRate(service.rate) : "—";
  $(".f-lag", card).textContent = up ? fmtMs(service.lag_p99_ms) : "—";
  $(".f-rtt", card).textContent = fmtMs(steadyWorst(service.steady));
  $(".f-cpu", card).textContent = up && isNum(metrics.cpu_percent) ? `${Math.round(metrics.cpu_percent)} %` : "—";
  const state = $(".f-state", card);
  state.textContent = !up ? "down" : blocked ? "blocked" : "up";
  state.title = up ? "" : service.error || "";
  $(".c-ms", card).setAttribute("aria-label", `${name}: loop lag p99 ${fmtMs(service.lag_p99_ms)}, `
    + `steady round trip max ${fmtMs(steadyWorst(service.steady))}${blocked ? ", blocked now" : ""}; last two minutes, log scale`);
  $(".c-rate", card).setAttribute("aria-label", `${name}: ${fmtRate(service.rate)} served to others; last two minutes`);
  entry.charts.update();
}

// ---- The front's view: its own calls to each backend ---------------------------------------

const FRONT_KEYS = ["rps", "err", "p50", "p95", "p99"];
const frontCharts = new Map();

function frontChartFor(name) {
  if (frontCharts.has(name)) return frontCharts.get(name);
  const node = $("#chart-template").content.firstElementChild.cloneNode(true);
  node.dataset.backend = name;
  $("h3", node).textContent = name;
  $("#charts").append(node);
  const sync = `front:${name}`;
  const entry = {
    node,
    points: 0,
    history: new History(FRONT_KEYS),
    rate: new Chart($(".c-rate", node), { kind: "rate", height: 100, sync, series: [
      { key: "rps", label: "req/s", color: "--c-rps", fill: true, width: 1.5 },
      { key: "err", label: "errors/s", color: "--c-err", width: 2 },
    ] }),
    latency: new Chart($(".c-latency", node), { kind: "ms", height: 130, sync, series: [
      { key: "p50", label: "p50", color: "--c-p50", width: 1.5 },
      { key: "p95", label: "p95", color: "--c-p95", width: 1.5 },
      { key: "p99", label: "p99", color: "--c-p99", width: 2 },
    ] }),
  };
  frontCharts.set(name, entry);
  return entry;
}

function updateFrontChart(name, stats, ts) {
  const entry = frontChartFor(name);
  // no call in the window: no latency to draw (a 0 ms p50 would be a lie)
  const called = (stats.rps ?? 0) > 0 || (stats.errors_per_s ?? 0) > 0;
  const values = {
    rps: stats.rps ?? 0,
    err: stats.errors_per_s ?? 0,
    p50: called ? stats.p50_ms ?? null : null,
    p95: called ? stats.p95_ms ?? null : null,
    p99: called ? stats.p99_ms ?? null : null,
  };
  entry.history.push(ts, values);
  entry.points += 1;
  const { node } = entry;
  node.dataset.points = String(entry.points);
  node.dataset.last = JSON.stringify({ ...values, total: stats.total ?? 0 });
  $(".f-rps", node).textContent = fmtNum(values.rps);
  $(".f-p50", node).textContent = fmtMs(values.p50);
  $(".f-p95", node).textContent = fmtMs(values.p95);
  $(".f-p99", node).textContent = fmtMs(values.p99);
  const err = $(".f-err", node);
  err.textContent = fmtNum(values.err);
  err.classList.toggle("bad", values.err > 0);
  $(".c-rate", node).setAttribute("aria-label",
    `${name}: ${fmtNum(values.rps)} requests/s, ${fmtNum(values.err)} errors/s from the front`);
  $(".c-latency", node).setAttribute("aria-label",
    `${name} latency from the front: p50 ${fmtMs(values.p50)}, p95 ${fmtMs(values.p95)}, p99 ${fmtMs(values.p99)}`);
  entry.rate.update(entry.history);
  entry.latency.update(entry.history);
}

// ---- the live feed -----------------------------------------------------------------------

function setFeed(state, text) {
  const feed = $("#feed");
  feed.dataset.state = state;
  $("#feed-text").textContent = text;
}

function onStats(message) {
  const ts = isNum(message.ts) ? message.ts : Date.now() / 1000;
  page.clockOffset = ts - Date.now() / 1000;
  const services = message.services || {};
  if (!page.services.length) {
    // no /api/stack on this front: the feed names the services too (its catalogue's)
    setServices({ services: Object.keys(services).map((name) => ({ name, backend: name !== "web" })) });
  }
  for (const [name, service] of Object.entries(services)) {
    const up = service.state === "up";
    const steady = service.steady || {};
    const blocked = up ? service.blocked_ms ?? 0 : 0;
    historyOf(name).push(ts, {
      lag: up ? service.lag_p99_ms : null,
      // a bar only where the loop stalled (the watchdog's threshold), not below it
      blocked: isBlocked(service) ? Math.max(blocked, service.stalls?.stalled_now?.since_ms || 0) : null,
      p50: steady.p50_ms ?? null,
      max: steadyWorst(steady),
      rate: up ? service.rate ?? 0 : null,
      // drawn only where calls failed: a red line at zero would read as trouble
      errors: steady.errors ? steady.errors : null,
    });
    updateNode(name, service, historyOf(name), ts);
    updateCard(name, service);
  }
  for (const [name, stats] of Object.entries(message.stats || {})) updateFrontChart(name, stats, ts);
  updateHealth(message.backends, message.stats);
  const front = page.services.find((s) => !s.backend);
  if (front && services[front.name]) {
    const node = nodeFor(front.name);
    const self = services[front.name];
    setBadge(node, self.state === "up" ? "up" : "degraded", "serving this page");
  }
  focusCharts?.update();
  const focused = services[page.focus];
  if (focused) {
    $("#focus .c-ms").setAttribute("aria-label", `${page.focus}: loop lag p99 ${fmtMs(focused.lag_p99_ms)}, `
      + `the steady client's round trip max ${fmtMs(steadyWorst(focused.steady))}`
      + `${isBlocked(focused) ? ", blocked now" : ""}; last two minutes, log scale 0.1 ms to 2 s`);
    $("#focus .c-rate").setAttribute("aria-label",
      `${page.focus}: ${fmtRate(focused.rate)} served to others; last two minutes`);
  }
  const live = $("#live");
  live.dataset.updates = String(Number(live.dataset.updates || 0) + 1);
}

function connect(attempt = 0) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/live`);
  let opened = false;
  socket.addEventListener("open", () => {
    opened = true;
    setFeed("live", "live · every second");
  });
  socket.addEventListener("message", (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return; // not ours: the feed only sends JSON
    }
    if (message.type === "stats") onStats(message);
  });
  socket.addEventListener("close", () => {
    const next = opened ? 0 : attempt + 1;
    const delay = Math.min(10, 2 ** next);
    setFeed("lost", `feed lost · retrying in ${delay} s`);
    for (const node of $$(".node")) setBadge(node, "unknown");
    setTimeout(() => connect(next), delay * 1000);
  });
}

// ---- start ----------------------------------------------------------------------------------

function readNotes() {
  const notes = new Map();
  for (const note of $("#notes").content.querySelectorAll("[data-service]")) {
    notes.set(note.dataset.service, note);
  }
  return notes;
}

let started = false;
let experiments = null;

function setServices(stack) {
  if (started) return;
  started = true;
  page.services = stack.services || [];
  page.frontLoop = stack.front_loop || null;
  const notes = readNotes();
  const titles = new Map([...notes].map(([k, v]) => [k, v.textContent.replace(/\s+/g, " ").trim()]));
  buildMap({ services: page.services, front_loop: page.frontLoop }, titles, setFocus);
  buildCards(notes);
  const front = page.services.find((s) => !s.backend);
  $("#front-loop").textContent = front && page.frontLoop
    ? `front: ${front.framework || front.name} on ${page.frontLoop}` : "";
  $("#front-loop").hidden = !(front && page.frontLoop);
  focusCharts = new ServiceCharts($("#focus"), () => page.focus, { msHeight: 190, rateHeight: 80, sync: "focus", window: 60 });
  setFocus(page.services.find((s) => s.backend)?.name || page.services[0]?.name);
  experiments = new Experiments({
    onFocus: setFocus,
    serverNow,
    onChange: (current, last) => {
      const before = page.current;
      page.current = current;
      page.last = last;
      if (current && current.run !== before?.run) setFocus(current.service);
      // a page opened after a run: its charts first, beside its verdict
      if (!current && last && !page.seenLast) setFocus(last.service);
      page.seenLast = true;
      markExperiment(current?.service ?? null);
      renderFocusNote();
      focusCharts?.update();
    },
  });
  experiments.start(page.services).then(() => {
    // the manual panel offers each block kind where an experiment uses it
    new FaultPanel(page.services, (name) => blockKinds(name, experiments.available));
  });
}

function blockKinds(name, available) {
  const kinds = ["sleep", "cpu"];
  if (available.some((x) => /sync_dns/.test(x.id) && (x.services || []).includes(name))) kinds.push("sync_dns");
  return kinds;
}

async function loadStack() {
  try {
    setServices(await api("GET", "/api/stack"));
  } catch (error) {
    // an older front: the first feed message names the services instead
    $("#front-loop").hidden = true;
    console.info(`GET /api/stack: ${error.message}; the services come from the live feed`);
  }
}

function main() {
  if (!chartsAvailable) {
    $("#vendor-missing").hidden = false;
    document.documentElement.dataset.charts = "missing";
  }
  $$("form.echo").forEach(setupEcho);
  setupResolve($("#resolve"));
  setupFanout($("#fanout"), $("#resolve"));
  loadStack().then(() => connect());
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", refreshTheme);
}

main();
