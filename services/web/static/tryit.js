// The "try it" panels: echo over TCP and UDP, resolve names sequentially vs concurrently
// with per-name timing bars, and the fan-out — each a call to the front's JSON API.

import { $, $$, busy, el, fmtMs, isProblem, post, problemText } from "./util.js";

export function setupEcho(form) {
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

export function readNames(form) {
  return form.elements.names.value.split(/[\s,]+/).map((n) => n.trim()).filter(Boolean);
}

const MODES = ["sequential", "concurrent"];

function clearTimeline(section, text) {
  $(".bars", section).replaceChildren();
  $(".total", section).textContent = text;
  delete section.dataset.totalMs;
  delete section.dataset.count;
}

// the answers of ONE run, on one scale so that the two totals compare by length
function renderTimelines(form, answers) {
  const scale = Math.max(1, ...[...answers.values()].map((a) => a.elapsed_ms || 0));
  for (const [mode, answer] of answers) {
    const section = $(`.timeline[data-mode="${mode}"]`, form);
    let start = 0;
    $(".bars", section).replaceChildren(...answer.results.map((result) => {
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
    $(".total", section).replaceChildren("Total ", el("span", "ms", fmtMs(answer.elapsed_ms)),
      ` for ${answer.results.length} names`);
    section.dataset.totalMs = String(answer.elapsed_ms);
    section.dataset.count = String(answer.results.length);
  }
}

export function setupResolve(form) {
  const error = $(".error", form);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const choice = event.submitter?.value || "both";
    const modes = choice === "both" ? MODES : [choice];
    const names = readNames(form);
    const timeout = Number(form.elements.timeout.value) || 5;
    busy(form, async () => {
      error.textContent = "";
      // a new run starts from empty columns: never a previous run's bars beside this
      // run's total (nor a column this run does not fill)
      const answers = new Map();
      for (const mode of MODES) {
        const section = $(`.timeline[data-mode="${mode}"]`, form);
        clearTimeline(section, modes.includes(mode) ? "waiting…" : "not run this time");
      }
      for (const mode of modes) {
        const section = $(`.timeline[data-mode="${mode}"]`, form);
        $(".total", section).textContent = "resolving…";
        try {
          answers.set(mode, await post("/api/resolve", { names, timeout, mode }));
        } catch (e) {
          clearTimeline(section, "—");
          error.textContent = `${mode}: ${e.message}`;
        }
        renderTimelines(form, answers);
      }
    });
  });
}

function describePart(part, value) {
  if (part === "resolve") {
    const results = value.results || [];
    const found = results.filter((r) => !r.error).length;
    return `${found}/${results.length} names resolved in ${fmtMs(value.elapsed_ms)}`;
  }
  return `“${value.echo}” — ${value.bytes} bytes in ${fmtMs(value.latency_ms)}`;
}

export function setupFanout(form, resolveForm) {
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
        for (const slot of $$(".slot", form)) {
          const value = body[slot.dataset.part];
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
