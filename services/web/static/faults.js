// The manual fault panel (PUT/DELETE /api/faults/{service}, GET /api/faults): any block,
// latency or failure share on any service, for as long as asked. The experiments above
// are the one-click way; this is for trying your own figures. Fault states are read while
// the panel is on screen (each read is a request the front serves).

import { $, $$, api, busy, el } from "./util.js";

const FAULTS_EVERY_MS = 2000;
const FIELDS = [
  ["block_ms", "block the loop (ms)", 2000, "everyone stalls; loop lag jumps"],
  ["latency_ms", "latency (ms)", 5000, "each answer late; loop lag flat"],
  ["fail_percent", "fail (%)", 100, "errors at once, never a hang"],
  ["duration_s", "for (s)", 600, "then it ends by itself"],
];

function describe(state) {
  if (!state || state.state === "down") return "not reachable";
  if (!state.active) return "no fault";
  const parts = [];
  const f = state.faults || {};
  if (f.block) {
    const kind = f.block.kind && f.block.kind !== "sleep" ? ` (${f.block.kind})` : "";
    parts.push(`block ${f.block.ms} ms${kind}${f.block.every_second ? " every s" : " once"}`);
  }
  if (f.latency) parts.push(`latency ${f.latency.ms} ms`);
  if (f.fail) parts.push(`fail ${f.fail.percent} %`);
  return `${parts.join(" · ")} · ${Math.ceil(state.remaining_s)} s left`;
}

function faultForm(service, kinds) {
  const form = el("form", "fault");
  form.dataset.service = service;
  form.append(el("h3", null, service));
  for (const [name, label, max, hint] of FIELDS) {
    const field = el("label", null, label);
    const input = el("input");
    Object.assign(input, { type: "number", name, min: name === "duration_s" ? 1 : 0, max,
      step: name === "fail_percent" ? "any" : 1, value: name === "duration_s" ? 60 : 0 });
    field.append(input, el("small", null, hint));
    form.append(field);
    if (name === "block_ms") {
      const kind = el("label", null, "kind");
      const select = el("select");
      select.name = "block_kind";
      for (const k of kinds) select.append(new Option(k, k));
      kind.append(select, el("small", null, "what blocks it"));
      const every = el("label", null, "every second");
      const box = el("input");
      Object.assign(box, { type: "checkbox", name: "block_every_second" });
      every.append(box);
      form.append(kind, every);
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
    for (const [name] of FIELDS) payload[name] = Number(data.get(name));
    // only a kind other than the default is sent: a front without kinds still accepts it
    if (data.get("block_kind") && data.get("block_kind") !== "sleep") {
      payload.block_kind = data.get("block_kind");
    }
    busy(form, async () => {
      try {
        show(service, await api("PUT", `/api/faults/${service}`, payload));
      } catch (err) {
        status.textContent = err.message;
      }
    });
  });
  clear.addEventListener("click", () => busy(form, async () => {
    try {
      show(service, await api("DELETE", `/api/faults/${service}`));
    } catch (err) {
      status.textContent = err.message;
    }
  }));
  return form;
}

function show(service, state) {
  const form = $(`form.fault[data-service="${service}"]`);
  if (form) $(".fault-status", form).textContent = describe(state);
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
  if (badge) badge.title = describe(state);
}

export class FaultPanel {
  constructor(services, kindsFor) {
    this.services = services;
    this.timer = null;
    this.visible = false;
    const rows = $("#fault-rows");
    rows.replaceChildren(...services.map((s) => faultForm(s.name, kindsFor(s.name))));
    $("#faults-clear-all").addEventListener("click", async () => {
      await Promise.allSettled(services.map((s) => api("DELETE", `/api/faults/${s.name}`)));
      this.refresh();
    });
    new IntersectionObserver((entries) => {
      this.visible = entries.some((e) => e.isIntersecting);
      if (this.visible) this.refresh();
    }).observe($("#faults"));
    this.refresh();
  }

  async refresh() {
    clearTimeout(this.timer);
    let listed;
    try {
      listed = await api("GET", "/api/faults");
    } catch {
      $("#faults-state").textContent = "the front did not answer";
      return;
    } finally {
      if (this.visible) this.timer = setTimeout(() => this.refresh(), FAULTS_EVERY_MS);
    }
    $("#faults-state").textContent = listed.enabled
      ? "Fault injection is on (the front is published on loopback, or WEB_FAULTS=1)."
      : "Fault injection is off: the front is published beyond loopback (WEB_FAULTS=1 allows it).";
    $$("#faults button, #faults input, #faults select").forEach((b) => { b.disabled = !listed.enabled; });
    for (const service of this.services) show(service.name, listed.services?.[service.name]);
  }
}
