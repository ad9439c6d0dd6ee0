// polyloop dashboard: the "try it" panels call the front's JSON API; the map and the charts
// follow /ws/live (one message a second). No dependency, no inline code: the page's CSP
// allows only what this front serves.

const HISTORY = 60; // points kept per chart: one a second, the last minute
const DEGRADED_LATENCY_MS = 500;
const WEB_PROBE_EVERY_MS = 5000;
// "blocked now" from this long on: two ticks of the 50 ms lag timer missed, not jitter
const BLOCKED_SHOW_MS = 100;
// the services as /api/live names them, with the loop each one runs
const LOOPS = {
  "tcp-echo": "Twisted reactor",
  "udp-echo": "asyncio event loop",
  resolver: "gevent hub",
  dns: "Twisted reactor (Names)",
  web: "aiohttp on asyncio",
};

const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function fmtMs(ms) {
  if (typeof ms !== "number" || !Number.isFinite(ms)) return "—";
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 100) return `${ms.toFixed(1)} ms`;
  return `${Math.round(ms)} ms`;
}

function fmtDuration(ms) {
  if (typeof ms !== "number" || !Number.isFinite(ms)) return "—";
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function fmtRate(x) {
  if (typeof x !== "number" || !Number.isFinite(x)) return "—";
  if (x >= 10000) return `${(x / 1000).toFixed(1)}k/s`;
  return `${x < 10 ? x.toFixed(1) : Math.round(x)}/s`;
}

function fmtNum(x) {
  if (typeof x !== "number" || !Number.isFinite(x)) return "0";
  return x < 10 ? x.toFixed(1) : String(Math.round(x));
}

// ---- the API ----------------------------------------------------------------------------

class ApiError extends Error {}

function isProblem(body) {
  return body !== null && typeof body === "object" && typeof body.status === "number"
    && typeof body.title === "string";
}

function problemText(problem) {
  return problem.detail || problem.title || `HTTP ${problem.status}`;
}

async function post(path, payload) {
  let response;
  try {
    response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(payload),
    });
  } catch {
    throw new ApiError("the front did not answer (is the stack up?)");
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`HTTP ${response.status}: the answer was not JSON`);
  }
  if (!response.ok) {
    throw new ApiError(isProblem(body) ? problemText(body) : `HTTP ${response.status}`);
  }
  return body;
}

async function busy(form, work) {
  const buttons = $$("button", form);
  buttons.forEach((b) => { b.disabled = true; });
  form.setAttribute("aria-busy", "true");
  try {
    await work();
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
    form.removeAttribute("aria-busy");
  }
}

// ---- echo panels --------------------------------------------------------------------------

function setupEcho(form) {
  const proto = form.dataset.proto;
  const output = $(".result", form);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const message = form.elements.message.value;
    busy(form, async () => {
      output.replaceChildren(el("span", "meta", "sending…"));
      try {
        const body = await post(`/api/echo/${proto}`, { message });
        const echo = el("div", "echo", body.echo);
        const meta = el("div", "meta", `${body.bytes} bytes back in ${fmtMs(body.latency_ms)}`);
        output.replaceChildren(echo, meta);
        form.dataset.state = "ok";
      } catch (error) {
        output.replaceChildren(el("span", "problem", error.message));
        form.dataset.state = "failed";
      }
    });
  });
}

// ---- resolve: sequential vs concurrent timelines ------------------------------------------

const timelines = new Map(); // mode -> last answer

function readNames(form) {
  return form.elements.names.value.split(/[\s,]+/).map((n) => n.trim()).filter(Boolean);
}

function renderTimelines(form) {
  // one scale for both columns, so the two totals compare by length
  const scale = Math.max(1, ...[...timelines.values()].map((a) => a.elapsed_ms || 0));
  for (const [mode, answer] of timelines) {
    const section = $(`.timeline[data-mode="${mode}"]`, form);
    const bars = $(".bars", section);
    let start = 0;
    bars.replaceChildren(...answer.results.map((result) => {
      const item = el("li", result.error ? "failed" : "ok");
      const track = el("span", "track");
      const bar = el("span", "bar");
      // sequential names run one after another; concurrent ones all start at zero
      const offset = mode === "sequential" ? start : 0;
      start += result.elapsed_ms || 0;
      bar.style.left = `${Math.min(100, (offset / scale) * 100)}%`;
      bar.style.width = `${Math.min(100, ((result.elapsed_ms || 0) / scale) * 100)}%`;
      track.append(bar);
      const detail = result.error
        ? `error: ${result.error}`
        : (result.addresses || []).join(", ") || "no address";
      item.append(el("span", "name", result.name), track, el("span", "ms", fmtMs(result.elapsed_ms)),
        el("span", "detail", detail));
      item.title = `${result.name}: ${detail}`;
      return item;
    }));
    const total = $(".total", section);
    total.replaceChildren("Total ", el("span", "ms", fmtMs(answer.elapsed_ms)),
      ` for ${answer.results.length} names`);
    section.dataset.totalMs = String(answer.elapsed_ms);
    section.dataset.count = String(answer.results.length);
  }
}

function setupResolve(form) {
  const error = $(".error", form);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const choice = event.submitter?.value || "both";
    const modes = choice === "both" ? ["sequential", "concurrent"] : [choice];
    const names = readNames(form);
    const timeout = Number(form.elements.timeout.value) || 5;
    busy(form, async () => {
      error.textContent = "";
      if (choice === "both") timelines.clear();
      for (const mode of modes) {
        const section = $(`.timeline[data-mode="${mode}"]`, form);
        $(".total", section).textContent = "resolving…";
        try {
          timelines.set(mode, await post("/api/resolve", { names, timeout, mode }));
        } catch (e) {
          timelines.delete(mode);
          $(".bars", section).replaceChildren();
          $(".total", section).textContent = "—";
          delete section.dataset.totalMs;
          error.textContent = `${mode}: ${e.message}`;
        }
        renderTimelines(form);
      }
    });
  });
}

// ---- fan-out ----------------------------------------------------------------------------------

function describePart(part, value) {
  if (part === "resolve") {
    const results = value.results || [];
    const found = results.filter((r) => !r.error).length;
    return `${found}/${results.length} names resolved in ${fmtMs(value.elapsed_ms)}`;
  }
  return `“${value.echo}” — ${value.bytes} bytes in ${fmtMs(value.latency_ms)}`;
}

function setupFanout(form, resolveForm) {
  const total = $(".fanout-total", form);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const payload = { message: form.elements.message.value, names: readNames(resolveForm) };
    busy(form, async () => {
      $$(".slot", form).forEach((slot) => {
        slot.dataset.state = "pending";
        $(".slot-body", slot).textContent = "…";
      });
      total.textContent = "";
      const started = performance.now();
      try {
        const body = await post("/api/fanout", payload);
        const parts = body.parts || body;
        for (const slot of $$(".slot", form)) {
          const value = parts[slot.dataset.part];
          const text = $(".slot-body", slot);
          if (value === undefined || value === null) {
            slot.dataset.state = "failed";
            text.textContent = "no answer for this part";
          } else if (isProblem(value)) {
            slot.dataset.state = "failed";
            text.replaceChildren(el("span", "problem", problemText(value)));
          } else {
            slot.dataset.state = "ok";
            text.textContent = describePart(slot.dataset.part, value);
          }
        }
        const server = typeof body.elapsed_ms === "number" ? ` (front: ${fmtMs(body.elapsed_ms)})` : "";
        total.textContent = `All three answered together in ${fmtMs(performance.now() - started)}${server}`;
      } catch (e) {
        $$(".slot", form).forEach((slot) => {
          slot.dataset.state = "failed";
          $(".slot-body", slot).textContent = "—";
        });
        total.replaceChildren(el("span", "problem", e.message));
      }
    });
  });
}

// ---- charts: hand-drawn on canvas ---------------------------------------------------------------

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function niceCeiling(x) {
  if (x <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(x));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (x <= step * power) return step * power;
  }
  return 10 * power;
}

function drawLines(canvas, series, unit) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
  const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
  if (canvas.width !== width) canvas.width = width;
  if (canvas.height !== height) canvas.height = height;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, width, height);
  const pad = { top: 14 * ratio, bottom: 4 * ratio, left: 2 * ratio, right: 2 * ratio };
  const plotH = height - pad.top - pad.bottom;
  const plotW = width - pad.left - pad.right;
  const max = niceCeiling(Math.max(0, ...series.flatMap((s) => s.values)));
  const muted = cssVar("--muted");

  ctx.strokeStyle = cssVar("--grid");
  ctx.lineWidth = 1 * ratio;
  for (const f of [0, 0.5, 1]) {
    const y = Math.round(pad.top + plotH * (1 - f)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(pad.left, y);
    ctx.lineTo(width - pad.right, y);
    ctx.stroke();
  }
  ctx.fillStyle = muted;
  ctx.font = `${11 * ratio}px system-ui, sans-serif`;
  ctx.textBaseline = "bottom";
  ctx.textAlign = "left"; // the context keeps its state between frames
  ctx.fillText(`${max} ${unit}`, pad.left, pad.top - 2 * ratio);
  ctx.textAlign = "right";
  ctx.fillText("last 60 s", width - pad.right, pad.top - 2 * ratio);

  const step = plotW / (HISTORY - 1);
  const bottom = pad.top + plotH;
  for (const s of series) {
    const n = s.values.length;
    if (n === 0) continue;
    const color = cssVar(s.color);
    const points = s.values.map((v, i) => [
      width - pad.right - (n - 1 - i) * step,
      pad.top + plotH * (1 - v / max),
    ]);
    const trace = () => {
      ctx.beginPath();
      points.forEach(([x, y], i) => (i === 0 ? ctx.moveTo(x, y) : ctx.lineTo(x, y)));
    };
    if (s.fill) {
      trace();
      ctx.lineTo(points[n - 1][0], bottom);
      ctx.lineTo(points[0][0], bottom);
      ctx.closePath();
      ctx.globalAlpha = 0.14;
      ctx.fillStyle = color;
      ctx.fill();
      ctx.globalAlpha = 1;
    }
    trace();
    ctx.strokeStyle = color;
    ctx.lineWidth = 2 * ratio;
    ctx.lineJoin = "round";
    ctx.stroke();
    // the newest value as a dot, so a lone first point is visible too
    const [lastX, lastY] = points[n - 1];
    ctx.fillStyle = color;
    ctx.beginPath();
    ctx.arc(lastX - 1.5 * ratio, lastY, 2.5 * ratio, 0, 2 * Math.PI);
    ctx.fill();
  }
}

class BackendChart {
  constructor(name) {
    this.name = name;
    this.history = { rps: [], err: [], p50: [], p95: [], p99: [] };
    this.node = $("#chart-template").content.firstElementChild.cloneNode(true);
    this.node.dataset.backend = name;
    $("h3", this.node).textContent = name;
    this.rate = $(".c-rate", this.node);
    this.latency = $(".c-latency", this.node);
    this.points = 0;
  }

  push(stats) {
    const values = {
      rps: stats.rps ?? 0,
      err: stats.errors_per_s ?? 0,
      p50: stats.p50_ms ?? 0,
      p95: stats.p95_ms ?? 0,
      p99: stats.p99_ms ?? 0,
    };
    for (const [key, value] of Object.entries(values)) {
      const list = this.history[key];
      list.push(value);
      if (list.length > HISTORY) list.shift();
    }
    this.points += 1;
    // read by the browser tests (and handy in devtools)
    this.node.dataset.points = String(this.points);
    this.node.dataset.last = JSON.stringify({ ...values, total: stats.total ?? 0 });
    $(".f-rps", this.node).textContent = fmtNum(values.rps);
    $(".f-p50", this.node).textContent = fmtMs(values.p50);
    $(".f-p95", this.node).textContent = fmtMs(values.p95);
    $(".f-p99", this.node).textContent = fmtMs(values.p99);
    const err = $(".f-err", this.node);
    err.textContent = fmtNum(values.err);
    err.classList.toggle("bad", values.err > 0);
    this.rate.setAttribute("aria-label",
      `${this.name}: ${fmtNum(values.rps)} requests/s, ${fmtNum(values.err)} errors/s over the last minute`);
    this.latency.setAttribute("aria-label",
      `${this.name} latency: p50 ${fmtMs(values.p50)}, p95 ${fmtMs(values.p95)}, p99 ${fmtMs(values.p99)}`);
    this.draw();
  }

  draw() {
    const h = this.history;
    drawLines(this.rate, [
      { values: h.rps, color: "--c-rps", fill: true },
      { values: h.err, color: "--c-err" },
    ], "req/s");
    drawLines(this.latency, [
      { values: h.p50, color: "--c-p50" },
      { values: h.p95, color: "--c-p95" },
      { values: h.p99, color: "--c-p99" },
    ], "ms");
  }
}

function drawSpark(canvas, values, color) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
  const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
  if (canvas.width !== width) canvas.width = width;
  if (canvas.height !== height) canvas.height = height;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, width, height);
  const n = values.length;
  if (n === 0) return;
  const max = niceCeiling(Math.max(0, ...values));
  const step = width / (HISTORY - 1);
  const pad = 2 * ratio;
  const points = values.map((v, i) => [width - (n - 1 - i) * step, pad + (height - 2 * pad) * (1 - v / max)]);
  ctx.beginPath();
  points.forEach(([x, y], i) => (i === 0 ? ctx.moveTo(x, y) : ctx.lineTo(x, y)));
  ctx.lineTo(points[n - 1][0], height);
  ctx.lineTo(points[0][0], height);
  ctx.closePath();
  ctx.globalAlpha = 0.18;
  ctx.fillStyle = cssVar(color);
  ctx.fill();
  ctx.globalAlpha = 1;
  ctx.beginPath();
  points.forEach(([x, y], i) => (i === 0 ? ctx.moveTo(x, y) : ctx.lineTo(x, y)));
  ctx.strokeStyle = cssVar(color);
  ctx.lineWidth = 1.5 * ratio;
  ctx.stroke();
}

// One service's own figures, as it reports them on its metrics port (all clients).
class ServiceChart {
  constructor(name) {
    this.name = name;
    this.history = { rate: [], lag: [], blocked: [] };
    this.node = $("#service-chart-template").content.firstElementChild.cloneNode(true);
    this.node.dataset.service = name;
    $("h3", this.node).textContent = name;
    $(".svc-loop", this.node).textContent = LOOPS[name] || "";
    this.rate = $(".c-rate", this.node);
    this.lag = $(".c-lag", this.node);
    this.points = 0;
  }

  push(service) {
    const up = service.state === "up";
    const values = {
      rate: up ? service.rate ?? 0 : 0,
      lag: up ? service.lag_p99_ms ?? 0 : 0,
      blocked: up ? service.blocked_ms ?? 0 : 0,
    };
    const blocked = values.blocked >= BLOCKED_SHOW_MS;
    for (const [key, value] of Object.entries(values)) {
      const list = this.history[key];
      list.push(value);
      if (list.length > HISTORY) list.shift();
    }
    this.points += 1;
    const metrics = service.metrics || {};
    this.node.dataset.points = String(this.points);
    this.node.dataset.state = service.state;
    this.node.dataset.blocked = String(blocked);
    this.node.dataset.last = JSON.stringify({
      rate: values.rate,
      lag_p99_ms: service.lag_p99_ms ?? null,
      blocked_ms: values.blocked,
      state: service.state,
      requests_total: metrics.polyloop_requests_total ?? null,
    });
    $(".f-rate", this.node).textContent = up ? fmtNum(values.rate) : "—";
    $(".f-lag", this.node).textContent = up ? fmtMs(service.lag_p99_ms) : "—";
    $(".f-cpu", this.node).textContent = up && typeof metrics.cpu_percent === "number"
      ? `${Math.round(metrics.cpu_percent)} %` : "—";
    const state = $(".f-state", this.node);
    state.textContent = !up ? "down" : blocked ? `blocked ${fmtDuration(values.blocked)}` : "up";
    state.title = up ? "" : service.error || "";
    this.rate.setAttribute("aria-label",
      `${this.name}: ${fmtNum(values.rate)} requests/s served to every client, last minute`);
    this.lag.setAttribute("aria-label",
      `${this.name} event-loop lag p99 ${fmtMs(service.lag_p99_ms)}${blocked ? `, blocked for ${fmtDuration(values.blocked)}` : ""}`);
    this.draw();
  }

  draw() {
    const h = this.history;
    drawLines(this.rate, [{ values: h.rate, color: "--c-rps", fill: true }], "req/s");
    drawLines(this.lag, [
      { values: h.blocked, color: "--c-blocked", fill: true },
      { values: h.lag, color: "--c-lag" },
    ], "ms");
  }
}

const serviceCharts = new Map();

function serviceChartFor(name) {
  if (!serviceCharts.has(name)) {
    const chart = new ServiceChart(name);
    serviceCharts.set(name, chart);
    $("#service-charts").append(chart.node);
  }
  return serviceCharts.get(name);
}

const charts = new Map();

function chartFor(name) {
  if (!charts.has(name)) {
    const chart = new BackendChart(name);
    charts.set(name, chart);
    $("#charts").append(chart.node);
  }
  return charts.get(name);
}

// ---- the map ---------------------------------------------------------------------------------------

function setNode(name, state, text, title) {
  const node = $(`.node[data-node="${name}"]`);
  if (!node) return;
  node.dataset.state = state;
  const badge = $(".badge", node);
  if (badge.textContent !== state) badge.textContent = state;
  $(".latency", node).textContent = text;
  if (title) node.title = title;
  else node.removeAttribute("title");
}

function updateMap(backends, stats) {
  for (const [name, health] of Object.entries(backends || {})) {
    const errorsPerS = stats?.[name]?.errors_per_s ?? 0;
    let state = health.state === "up" ? "up" : health.state || "down";
    let why = health.error ? String(health.error) : "";
    if (state === "up" && errorsPerS > 0) {
      state = "degraded";
      why = `${fmtNum(errorsPerS)} failed calls/s`;
    } else if (state === "up" && health.latency_ms > DEGRADED_LATENCY_MS) {
      state = "degraded";
      why = `slow health check (${fmtMs(health.latency_ms)})`;
    }
    const text = state === "down"
      ? (why || "not answering")
      : `check ${fmtMs(health.latency_ms)}${why ? ` · ${why}` : ""}`;
    setNode(name, state, text, why);
    setReplicas(name, health.replicas);
  }
}

// every replica the front found for a backend (compose --scale, swarm): one dot each
function setReplicas(name, replicas) {
  const node = $(`.node[data-node="${name}"]`);
  if (!node || !replicas) return;
  let line = $(".replicas", node);
  if (!line) {
    line = document.createElement("p");
    line.className = "replicas";
    node.append(line);
  }
  const label = document.createElement("span");
  const count = replicas.count === 1 ? "1 replica" : `${replicas.count} replicas`;
  label.textContent = `${count} · ${replicas.up} up`;
  const dots = (replicas.replicas || []).map((r) => {
    const dot = document.createElement("span");
    dot.className = "dot";
    dot.dataset.state = r.state;
    dot.title = `${r.address}: ${r.state}, ${r.calls} calls${r.error ? ` (${r.error})` : ""}`;
    return dot;
  });
  line.replaceChildren(label, ...dots);
}

// each node's own figures (what the service reports of itself), beside its health state
function updateOwn(name, service) {
  const node = $(`.node[data-node="${name}"]`);
  if (!node) return;
  const up = service.state === "up";
  const blocked = up ? service.blocked_ms || 0 : 0;
  const isBlocked = blocked >= BLOCKED_SHOW_MS;
  node.dataset.metrics = service.state;
  node.dataset.rate = String(up ? service.rate : 0);
  node.dataset.blocked = String(isBlocked);
  const rate = $(".o-rate", node);
  const lag = $(".o-lag", node);
  if (up) {
    rate.textContent = fmtRate(service.rate);
    lag.textContent = fmtMs(service.lag_p99_ms);
    rate.removeAttribute("title");
  } else {
    rate.textContent = "no metrics";
    lag.textContent = "—";
    rate.title = service.error || "its metrics endpoint does not answer";
  }
  const flag = $(".blocked", node);
  flag.hidden = !isBlocked;
  flag.textContent = `loop blocked now · ${fmtDuration(blocked)}`;
  const chart = serviceChartFor(name);
  drawSpark($(".spark", node), chart.history.rate, isBlocked ? "--c-blocked" : "--c-rps");
}

async function probeWeb() {
  const url = `/healthz?probe=${Date.now()}`;
  const started = performance.now();
  try {
    const response = await fetch(url, { cache: "no-store" });
    await response.text();
    // the network time, not the wait for this page's busy main thread
    const entry = performance.getEntriesByName(new URL(url, location.href).href).pop();
    const ms = entry ? entry.responseEnd - entry.requestStart : performance.now() - started;
    performance.clearResourceTimings();
    const slow = ms > DEGRADED_LATENCY_MS;
    setNode("web", response.ok && !slow ? "up" : "degraded", `healthz ${fmtMs(ms)}`,
      response.ok ? (slow ? "slow /healthz" : "") : `/healthz answered ${response.status}`);
  } catch {
    setNode("web", "down", "not answering");
  }
}

// ---- the live feed ---------------------------------------------------------------------------------

function setFeed(state, text) {
  const feed = $("#feed");
  feed.dataset.state = state;
  $("#feed-text").textContent = text;
  setNode("browser", state === "live" ? "up" : "degraded", `feed ${state}`);
}

function connect(attempt = 0) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/live`);
  let opened = false;
  socket.addEventListener("open", () => {
    opened = true;
    setFeed("live", "live · updated every second");
  });
  socket.addEventListener("message", (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return; // not ours: the feed only sends JSON
    }
    if (message.type !== "stats") return;
    for (const [name, service] of Object.entries(message.services || {})) {
      serviceChartFor(name).push(service);
      updateOwn(name, service);
    }
    for (const [name, stats] of Object.entries(message.stats || {})) chartFor(name).push(stats);
    updateMap(message.backends, message.stats);
    const updates = Number($("#live").dataset.updates || 0) + 1;
    $("#live").dataset.updates = String(updates);
  });
  socket.addEventListener("close", () => {
    const next = opened ? 0 : attempt + 1;
    const delay = Math.min(10, 2 ** next);
    setFeed("lost", `feed lost · retrying in ${delay} s`);
    setNode("web", "down", "feed closed");
    setTimeout(() => connect(next), delay * 1000);
  });
}

function redrawAll() {
  for (const chart of charts.values()) chart.draw();
  for (const [name, chart] of serviceCharts) {
    chart.draw();
    const node = $(`.node[data-node="${name}"] .spark`);
    if (node) drawSpark(node, chart.history.rate, "--c-rps");
  }
}

// ---- faults panel: PUT/DELETE /api/faults/{service}, GET /api/faults ----------

const FAULT_SERVICES = ["tcp-echo", "udp-echo", "dns", "resolver", "web"];
const FAULTS_EVERY_MS = 2000;
const FAULT_FIELDS = [
  ["block_ms", "block the loop (ms)", 2000, "everyone stalls; loop lag jumps"],
  ["latency_ms", "latency (ms)", 5000, "each answer late; loop lag flat"],
  ["fail_percent", "fail (%)", 100, "errors at once, never a hang"],
  ["duration_s", "for (s)", 600, "then it ends by itself"],
];

async function sendFault(method, service, payload) {
  let response;
  try {
    response = await fetch(`/api/faults/${service}`, {
      method,
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: payload === undefined ? undefined : JSON.stringify(payload),
    });
  } catch {
    throw new ApiError("the front did not answer (is the stack up?)");
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    throw new ApiError(isProblem(body) ? problemText(body) : `HTTP ${response.status}`);
  }
  return body;
}

function describeFault(state) {
  if (!state || state.state === "down") return "not reachable";
  if (!state.active) return "no fault";
  const parts = [];
  const f = state.faults;
  if (f.block) parts.push(`block ${f.block.ms} ms${f.block.every_second ? " every s" : " once"}`);
  if (f.latency) parts.push(`latency ${f.latency.ms} ms`);
  if (f.fail) parts.push(`fail ${f.fail.percent} %`);
  return `${parts.join(" · ")} · ${Math.ceil(state.remaining_s)} s left`;
}

function faultForm(service) {
  const form = el("form", "fault");
  form.dataset.service = service;
  form.append(el("h3", null, service));
  for (const [name, label, max, hint] of FAULT_FIELDS) {
    const field = el("label", null, label);
    const input = el("input");
    Object.assign(input, { type: "number", name, min: name === "duration_s" ? 1 : 0, max,
      step: name === "fail_percent" ? "any" : 1, value: name === "duration_s" ? 60 : 0 });
    field.append(input, el("small", null, hint));
    form.append(field);
    if (name === "block_ms") {
      const every = el("label", null, "every second");
      const box = el("input");
      Object.assign(box, { type: "checkbox", name: "block_every_second" });
      every.append(box);
      form.append(every);
    }
  }
  const apply = el("button", null, "Apply");
  apply.type = "submit";
  const clear = el("button", "secondary", "Clear");
  clear.type = "button";
  const status = el("p", "fault-status", "…");
  status.setAttribute("aria-live", "polite");
  form.append(apply, clear, status);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const payload = { block_every_second: data.get("block_every_second") === "on" };
    for (const [name] of FAULT_FIELDS) payload[name] = Number(data.get(name));
    busy(form, async () => {
      try {
        showFault(service, await sendFault("PUT", service, payload));
      } catch (err) {
        status.textContent = err.message;
      }
    });
  });
  clear.addEventListener("click", () => busy(form, async () => {
    try {
      showFault(service, await sendFault("DELETE", service));
    } catch (err) {
      status.textContent = err.message;
    }
  }));
  return form;
}

function showFault(service, state) {
  const form = $(`form.fault[data-service="${service}"]`);
  if (form) $(".fault-status", form).textContent = describeFault(state);
  const header = $(`.node[data-node="${service}"] header`);
  if (!header) return;
  let badge = $(".fault-badge", header);
  const active = Boolean(state && state.active);
  if (active && !badge) {
    badge = el("span", "fault-badge", "fault");
    header.append(badge);
  } else if (!active && badge) {
    badge.remove();
  }
  if (badge) badge.title = describeFault(state);
}

async function refreshFaults() {
  let listed;
  try {
    const response = await fetch("/api/faults", { cache: "no-store" });
    listed = await response.json();
  } catch {
    $("#faults-state").textContent = "the front did not answer";
    return;
  }
  $("#faults-state").textContent = listed.enabled
    ? "Fault injection is on (the front is published on loopback, or WEB_FAULTS=1)."
    : "Fault injection is off: the front is published beyond loopback (WEB_FAULTS=1 allows it).";
  $$("#faults button, #faults input").forEach((b) => { b.disabled = !listed.enabled; });
  for (const service of FAULT_SERVICES) showFault(service, listed.services[service]);
}

function setupFaults() {
  const rows = $("#fault-rows");
  if (!rows) return;
  FAULT_SERVICES.forEach((service) => rows.append(faultForm(service)));
  $("#faults-clear-all").addEventListener("click", async () => {
    await Promise.allSettled(FAULT_SERVICES.map((service) => sendFault("DELETE", service)));
    refreshFaults();
  });
  refreshFaults();
  setInterval(refreshFaults, FAULTS_EVERY_MS);
}

function main() {
  $$("form.echo").forEach(setupEcho);
  setupFaults();
  setupResolve($("#resolve"));
  setupFanout($("#fanout"), $("#resolve"));
  connect();
  probeWeb();
  setInterval(probeWeb, WEB_PROBE_EVERY_MS);
  window.addEventListener("resize", redrawAll);
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", redrawAll);
}

main();
