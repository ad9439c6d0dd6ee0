// The map: one node per service of GET /api/stack, the front above its backends. Each node
// shows what the service says of itself (served to others, loop lag), what the front's
// steady client measures of it (its round trip), "blocked now", and where it blocked: the
// innermost frames of our own code on the loop's thread while it stalled, the whole stack
// on click, and its last stalls with their duration.

import { Chart } from "./charts.js";
import {
  $, api, clock, el, epochSeconds, fmtDuration, fmtMs, fmtNum, fmtRate, isNum, steadyWorst,
} from "./util.js";

const DEGRADED_LATENCY_MS = 500;
// the watchdog's own threshold when the service reports it; else two missed 50 ms ticks
const DEFAULT_STALL_MS = 100;
// a stall this recent still names its culprit on the map (a block every second ends and
// starts again between two reads)
const CULPRIT_KEEP_S = 3;

const nodes = new Map(); // name -> {node, spark}

export function nodeFor(name) {
  return nodes.get(name)?.node ?? null;
}

// a frame as the contract gives it ({file, line, function, own}), or as a watchdog writes
// it ("services/common/faults.py:300 in Faults._block_step": this repo's paths are
// relative to it, a library's to its sys.path entry)
const OWN_ROOTS = /^(services|loadtest|bench|devstack|tests)\//;

function frameOf(frame) {
  if (frame && typeof frame === "object") return frame;
  const match = /^(.*):(\d+) in (.*)$/.exec(String(frame));
  if (!match) return { file: String(frame), line: 0, function: "?", own: false };
  return { file: match[1], line: Number(match[2]), function: match[3], own: OWN_ROOTS.test(match[1]) };
}

function stackOf(stack) {
  return Array.isArray(stack) ? stack.map(frameOf) : [];
}

// the last stalls, newest first, at most five ("recent", or a watchdog's "events")
export function recentStalls(stalls) {
  const list = Array.isArray(stalls?.recent) ? stalls.recent
    : Array.isArray(stalls?.events) ? stalls.events : [];
  return list
    .map((s) => ({ ...s, stack: stackOf(s.stack) }))
    .sort((a, b) => (epochSeconds(b.at) ?? 0) - (epochSeconds(a.at) ?? 0))
    .slice(0, 5);
}

function frameText(frame) {
  return `${frame.file}:${frame.line} in ${frame.function}`;
}

function shortFile(file) {
  return String(file || "").split("/").pop();
}

// "services/common/faults.py:222 in _block_step ← time.sleep": the innermost frame of our
// own code, and what it was in when the loop stalled (the innermost frame, when not ours)
export function culpritOf(stack) {
  if (!Array.isArray(stack) || stack.length === 0) return null;
  let own = -1;
  for (let i = stack.length - 1; i >= 0; i -= 1) {
    if (stack[i].own) { own = i; break; }
  }
  const inner = stack[stack.length - 1];
  if (own < 0) return { main: frameText(inner), callee: null, caller: null };
  const callee = own < stack.length - 1 ? `${shortFile(inner.file)} ${inner.function}` : null;
  let caller = null;
  for (let i = own - 1; i >= 0; i -= 1) {
    if (stack[i].own) { caller = `${shortFile(stack[i].file)}:${stack[i].line} in ${stack[i].function}`; break; }
  }
  return { main: frameText(stack[own]), callee, caller };
}

function renderFrames(dialog, stack, note) {
  $(".frames", dialog).replaceChildren(...stack.map((frame) => {
    const item = el("li", frame.own ? "own" : "lib");
    item.append(el("code", "where", `${frame.file}:${frame.line}`), " in ",
      el("code", "fn", frame.function));
    if (!frame.own) item.title = "not this repo's code";
    return item;
  }));
  $(".frames-empty", dialog).hidden = stack.length > 0;
  $(".frames-note", dialog).textContent = note;
}

// the whole stack, innermost last (as a Python traceback reads), in the page's dialog. The
// feed carries each stack's innermost frames only ("frames": how many it had): the whole
// one comes from GET /api/stalls (the event of the same time, or the stall in progress).
export async function showStack(service, title, stall) {
  const dialog = $("#stack-dialog");
  $("#stack-title", dialog).textContent = `${service}: ${title}`;
  const stack = stall.stack || [];
  const cut = isNum(stall.frames) && stall.frames > stack.length;
  renderFrames(dialog, stack, cut ? `the innermost ${stack.length} of ${stall.frames} frames; the rest is on its way…` : "");
  dialog.dataset.whole = String(!cut);
  if (!dialog.open) dialog.showModal();
  if (!cut) return;
  try {
    const all = (await api("GET", "/api/stalls")).services?.[service] || {};
    const found = stall.now ? all.stalled_now
      : (all.events || []).find((e) => e.at === stall.at);
    if (!found) {
      $(".frames-note", dialog).textContent = `the innermost ${stack.length} of ${stall.frames} frames (the service no longer holds this stall)`;
      return;
    }
    renderFrames(dialog, stackOf(found.stack), "");
    dialog.dataset.whole = "true";
  } catch (error) {
    $(".frames-note", dialog).textContent = `the innermost ${stack.length} of ${stall.frames} frames (GET /api/stalls: ${error.message})`;
  }
}

export function buildMap(stack, notes, onFocus) {
  const front = $("#map-front");
  const backends = $("#map-backends");
  front.replaceChildren();
  backends.replaceChildren();
  nodes.clear();
  for (const service of stack.services) {
    const item = $("#node-template").content.firstElementChild.cloneNode(true);
    const node = $(".node", item);
    node.dataset.node = service.name;
    const name = $(".n-name", node);
    name.textContent = service.name;
    name.setAttribute("aria-label", `${service.name}: show its charts`);
    name.addEventListener("click", () => onFocus(service.name));
    let loop = service.loop || service.framework || "";
    if (!service.backend && stack.front_loop && !loop.includes(stack.front_loop)) {
      loop = `${loop} · ${stack.front_loop}`;
    }
    $(".loop", node).textContent = loop;
    if (Array.isArray(service.depends_on) && service.depends_on.length) {
      $(".asks", node).textContent = `asks ${service.depends_on.join(", ")}`;
    }
    const note = notes.get(service.name);
    if (note) node.title = note;
    const spark = new Chart($(".spark", node), {
      kind: "ms", height: 34, axes: false, legend: false, window: 60,
      series: [
        { key: "lag", label: "loop lag p99", color: "--c-lag", width: 1.5 },
        { key: "max", label: "round trip max", color: "--c-max", width: 1.5 },
      ],
      label: `${service.name}: loop lag and the steady client's round trip, last minute`,
    });
    $(".culprit", node).addEventListener("click", () => {
      const shown = nodes.get(service.name)?.culprit;
      if (shown) showStack(service.name, shown.title, shown);
    });
    (service.backend ? backends : front).append(item);
    nodes.set(service.name, { node, spark, culprit: null });
  }
}

// the front's health check of each backend: the node's badge
export function updateHealth(backends, stats) {
  for (const [name, health] of Object.entries(backends || {})) {
    const entry = nodes.get(name);
    if (!entry) continue;
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
    setBadge(entry.node, state, text);
    setReplicas(entry.node, health.replicas);
  }
}

export function setBadge(node, state, text) {
  if (!node) return;
  node.dataset.state = state;
  const badge = $(".badge", node);
  if (badge.textContent !== state) badge.textContent = state;
  if (text !== undefined) $(".latency", node).textContent = text;
}

// every replica the front found for a backend (compose --scale, swarm): one dot each
function setReplicas(node, replicas) {
  if (!replicas) return;
  const line = $(".replicas", node);
  line.hidden = false;
  const count = replicas.count === 1 ? "1 replica" : `${replicas.count} replicas`;
  const dots = (replicas.replicas || []).map((r) => {
    const dot = el("span", "dot");
    dot.dataset.state = r.state;
    dot.title = `${r.address}: ${r.state}, ${r.calls} calls${r.error ? ` (${r.error})` : ""}`;
    return dot;
  });
  line.replaceChildren(el("span", null, `${count} · ${replicas.up} up`), ...dots);
}

export function stallThreshold(service) {
  const t = service?.stalls?.threshold_ms;
  return isNum(t) && t > 0 ? t : DEFAULT_STALL_MS;
}

export function isBlocked(service) {
  if (!service || service.state !== "up") return false;
  return (service.blocked_ms || 0) >= stallThreshold(service) || Boolean(service.stalls?.stalled_now);
}

// what the service says of itself, the steady client's round trip, and its stalls
export function updateNode(name, service, history, now) {
  const entry = nodes.get(name);
  if (!entry) return;
  const { node } = entry;
  const up = service.state === "up";
  const blocked = isBlocked(service);
  const steady = service.steady || null;
  node.dataset.metrics = service.state;
  node.dataset.rate = String(up ? service.rate ?? 0 : 0);
  node.dataset.blocked = String(blocked);
  const worst = steadyWorst(steady);
  node.dataset.steadyMax = String(worst ?? "");
  node.dataset.steadyP50 = String(steady?.p50_ms ?? "");
  const rate = $(".o-rate", node);
  if (up) {
    rate.textContent = fmtRate(service.rate);
    rate.removeAttribute("title");
    $(".o-lag", node).textContent = fmtMs(service.lag_p99_ms);
  } else {
    rate.textContent = "no metrics";
    rate.title = service.error || "its metrics endpoint does not answer";
    $(".o-lag", node).textContent = "—";
  }
  const rtt = $(".o-rtt", node);
  if (isNum(worst)) {
    rtt.textContent = fmtMs(worst);
    const waiting = isNum(steady.in_flight_ms) ? `, one call waiting for ${fmtMs(steady.in_flight_ms)}` : "";
    rtt.title = `the front's steady client over the last second: p50 ${fmtMs(steady.p50_ms)}, `
      + `max ${fmtMs(steady.max_ms)}, ${steady.calls ?? 0} calls, ${steady.errors ?? 0} errors${waiting}`;
    rtt.classList.toggle("slow", worst >= 400);
  } else {
    rtt.textContent = steady?.errors ? `${steady.errors} err` : "—";
    rtt.title = steady?.last_error || "no call of the steady client completed in the last second";
    rtt.classList.remove("slow");
  }
  rtt.classList.toggle("bad", Boolean(steady?.errors));
  const flag = $(".blocked", node);
  flag.hidden = !blocked;
  const stalledFor = service.stalls?.stalled_now?.since_ms;
  flag.textContent = `blocked now · ${fmtDuration(Math.max(service.blocked_ms || 0, stalledFor || 0))}`;
  updateCulprit(entry, name, service, now);
  updateStalls(node, name, service);
  entry.spark.update(history);
}

function updateCulprit(entry, name, service, now) {
  const { node } = entry;
  const stalls = service.stalls || {};
  const recent = recentStalls(stalls);
  let shown = null;
  if (stalls.stalled_now?.stack?.length) {
    shown = { title: `stalled for ${fmtDuration(stalls.stalled_now.since_ms)} (now)`,
      stack: stackOf(stalls.stalled_now.stack), frames: stalls.stalled_now.frames, now: true };
  } else if (recent.length && recent[0].stack?.length) {
    const at = epochSeconds(recent[0].at);
    if (at !== null && now - at <= CULPRIT_KEEP_S) {
      shown = { title: `stall of ${fmtDuration(recent[0].duration_ms)} at ${clock(at)}`,
        stack: recent[0].stack, frames: recent[0].frames, at: recent[0].at };
    }
  }
  entry.culprit = shown;
  const button = $(".culprit", node);
  const culprit = shown && culpritOf(shown.stack);
  button.hidden = !culprit;
  node.dataset.culprit = culprit ? culprit.main : "";
  if (!culprit) return;
  const main = el("code", "c-main", culprit.main);
  const parts = [el("span", "c-label", "where it blocked (click for the stack)"), main];
  if (culprit.callee) parts.push(el("span", "c-callee", ` ← ${culprit.callee}`));
  if (culprit.caller) parts.push(el("span", "c-caller", `called from ${culprit.caller}`));
  button.replaceChildren(...parts);
  button.setAttribute("aria-label",
    `${name} blocked in ${culprit.main}${culprit.callee ? `, in ${culprit.callee}` : ""}: show the whole stack`);
}

function updateStalls(node, name, service) {
  const recent = recentStalls(service.stalls);
  const line = $(".stalls", node);
  line.hidden = recent.length === 0;
  const key = recent.map((s) => `${s.at}:${s.duration_ms}`).join("|");
  if (line.dataset.key === key) return; // unchanged: keep the buttons (and the focus on one)
  line.dataset.key = key;
  line.dataset.count = String(recent.length);
  const buttons = recent.map((stall) => {
    const at = epochSeconds(stall.at);
    const culprit = culpritOf(stall.stack);
    const button = el("button", "stall", fmtDuration(stall.duration_ms));
    button.type = "button";
    button.title = `${clock(at)}${culprit ? ` · ${culprit.main}` : ""} — click for the stack`;
    button.setAttribute("aria-label", `stall of ${fmtDuration(stall.duration_ms)} at ${clock(at)}: show its stack`);
    button.addEventListener("click", () => showStack(name, `stall of ${fmtDuration(stall.duration_ms)} at ${clock(at)}`, stall));
    return button;
  });
  $(".stall-list", line).replaceChildren(...buttons);
}

export function markFocus(name) {
  for (const [key, { node }] of nodes) {
    const focused = key === name;
    node.classList.toggle("focused", focused);
    $(".n-name", node).setAttribute("aria-pressed", String(focused));
  }
}

export function markExperiment(name) {
  for (const [key, { node }] of nodes) {
    node.classList.toggle("under-experiment", key === name);
  }
}
