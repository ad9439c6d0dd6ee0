// Small helpers every part of the dashboard shares: DOM lookups, number formats, the
// front's JSON API (problem+json errors become ApiError with the problem's detail).

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

export const isNum = (x) => typeof x === "number" && Number.isFinite(x);

export function fmtMs(ms) {
  if (!isNum(ms)) return "—";
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 100) return `${ms.toFixed(1)} ms`;
  if (ms < 10000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(1)} s`;
}

export function fmtDuration(ms) {
  if (!isNum(ms)) return "—";
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

export function fmtRate(x) {
  if (!isNum(x)) return "—";
  if (x >= 10000) return `${(x / 1000).toFixed(1)}k/s`;
  return `${x < 10 ? x.toFixed(1) : Math.round(x)}/s`;
}

export function fmtNum(x) {
  if (!isNum(x)) return "0";
  return x < 10 ? x.toFixed(1) : String(Math.round(x));
}

// a time from the API: unix seconds, or an ISO 8601 string
export function epochSeconds(value) {
  if (isNum(value)) return value;
  if (typeof value === "string") {
    const parsed = Date.parse(value);
    if (Number.isFinite(parsed)) return parsed / 1000;
  }
  return null;
}

export function clock(seconds) {
  if (!isNum(seconds)) return "—";
  return new Date(seconds * 1000).toLocaleTimeString([], { hour12: false });
}

export class ApiError extends Error {
  constructor(message, status = 0, problem = null) {
    super(message);
    this.status = status;
    this.problem = problem;
  }
}

export function isProblem(body) {
  return body !== null && typeof body === "object" && typeof body.status === "number"
    && typeof body.title === "string";
}

export function problemText(problem) {
  return problem.detail || problem.title || `HTTP ${problem.status}`;
}

// one JSON call to the front; a non-2xx answer throws ApiError (its status and problem)
export async function api(method, path, payload) {
  let response;
  try {
    response = await fetch(path, {
      method,
      cache: "no-store",
      headers: payload === undefined
        ? { Accept: "application/json" }
        : { "Content-Type": "application/json", Accept: "application/json" },
      body: payload === undefined ? undefined : JSON.stringify(payload),
    });
  } catch {
    throw new ApiError("the front did not answer (is the stack up?)");
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    if (!response.ok) throw new ApiError(`HTTP ${response.status}`, response.status);
    throw new ApiError(`HTTP ${response.status}: the answer was not JSON`, response.status);
  }
  if (!response.ok) {
    const problem = isProblem(body) ? body : null;
    throw new ApiError(problem ? problemText(problem) : `HTTP ${response.status}`,
      response.status, problem);
  }
  return body;
}

export const post = (path, payload) => api("POST", path, payload);

// disable a form's buttons while `work` runs
export async function busy(form, work) {
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

// the steady client's worst round trip over the last second: the slowest call that
// completed, or the one still waiting, whichever is longer (a blocked loop answers late)
export function steadyWorst(steady) {
  if (!steady) return null;
  const values = [steady.max_ms, steady.in_flight_ms].filter(isNum);
  return values.length ? Math.max(...values) : null;
}
