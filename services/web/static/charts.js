// The dashboard's charts, drawn by uPlot (static/vendor/, `make vendor`): every quantity on
// ONE fixed scale whatever the service, so idle looks idle and a 500 ms stall looks like
// one — milliseconds on a log scale, requests/s on an arcsinh scale (0 stays 0, then
// log-like). Hovering shows the values; the charts of one service share a cursor.

import { fmtMs, fmtRate, isNum } from "./util.js";

export const MS_RANGE = [0.1, 2000];
export const RATE_RANGE = [0, 100000];
export const HISTORY_S = 120;

const uPlot = window.uPlot; // the IIFE build of the vendored file; undefined when missing
export const chartsAvailable = typeof uPlot === "function";

// colours come from the page's CSS variables, read again when the colour scheme changes
const palette = new Map();
export function cssColor(name) {
  if (!palette.has(name)) {
    palette.set(name, getComputedStyle(document.documentElement).getPropertyValue(name).trim());
  }
  return palette.get(name);
}

const live = new Set(); // every chart on the page, to redraw on a theme change

export function refreshTheme() {
  palette.clear();
  for (const chart of live) chart.plot?.redraw(false, false);
}

// values the log scale cannot draw (0, null) stay where the eye reads "nothing": the
// bottom; the hover shows the real value
const clampMs = (v) => (isNum(v) ? Math.min(MS_RANGE[1], Math.max(MS_RANGE[0], v)) : null);
const clampRate = (v) => (isNum(v) ? Math.min(RATE_RANGE[1], Math.max(0, v)) : null);

// uPlot passes null for a tick whose label it leaves out (no room)
function msTick(v) {
  if (v == null) return "";
  if (v >= 1000) return `${v / 1000} s`;
  return `${v} ms`;
}

function rateTick(v) {
  if (v == null) return "";
  if (v >= 1000) return `${v / 1000}k`;
  return String(v);
}

// a grid line every 30 s (15 s on a short window), counted back from the newest point
function ageSplits(min, max, window) {
  const step = window > 60 ? 30 : 15;
  const splits = [];
  for (let v = max; v >= min - 0.001; v -= step) splits.unshift(v);
  return splits;
}

// seconds before the newest point: "-60 s" … "now"
function ageTicks(u, splits) {
  const newest = u.scales.x.max;
  return splits.map((v) => {
    if (v == null) return "";
    const age = Math.round(v - newest);
    return age === 0 ? "now" : `${age} s`;
  });
}

// the shaded span of an experiment on a chart of its service
function experimentBand(chart) {
  return (u) => {
    const span = chart.band?.();
    if (!span) return;
    const { ctx } = u;
    const { left, top, width, height } = u.bbox;
    const from = Math.max(left, u.valToPos(span.from, "x", true));
    const to = Math.min(left + width, u.valToPos(span.to, "x", true));
    if (!(to > from)) return;
    ctx.save();
    ctx.fillStyle = cssColor("--c-band");
    ctx.fillRect(from, top, to - from, height);
    ctx.fillStyle = cssColor("--muted");
    ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
    ctx.textBaseline = "top";
    // inside the band when it fits, else just before it, ending at its edge
    const pad = 4 * devicePixelRatio;
    const fits = ctx.measureText(span.label).width + 2 * pad <= to - from;
    ctx.textAlign = fits ? "left" : "right";
    ctx.fillText(span.label, fits ? from + pad : from - pad, top + 3 * devicePixelRatio);
    ctx.restore();
  };
}

// One uPlot in `container`, fed from a history of columns; `kind` is "ms" or "rate".
// series: [{key, label, color, width?, dash?, bars?, fill?}]; the data come from
// history.columns[key] (one value per history.t).
export class Chart {
  constructor(container, { kind, series, height = 150, sync = null, legend = true,
    axes = true, window = HISTORY_S, band = null, label = "" }) {
    this.container = container;
    this.kind = kind;
    this.series = series;
    this.window = window;
    this.band = band;
    this.raw = [];
    this.height = height;
    container.classList.add("uchart");
    container.setAttribute("role", "img");
    if (label) container.setAttribute("aria-label", label);
    if (!chartsAvailable) {
      container.classList.add("uchart-missing");
      container.textContent = "chart unavailable: the vendored uPlot is missing (make vendor)";
      return;
    }
    const ms = kind === "ms";
    const fmt = ms ? fmtMs : fmtRate;
    const yScale = ms
      ? { distr: 3, log: 10, range: MS_RANGE }
      : { distr: 4, asinh: 1, range: RATE_RANGE };
    const opts = {
      width: Math.max(120, container.clientWidth || 300),
      height,
      pxAlign: 0,
      scales: {
        x: { time: true, range: (u, min, max) => [max - this.window, max] },
        y: yScale,
      },
      legend: { show: legend, live: true },
      cursor: axes
        ? { sync: sync ? { key: sync, setSeries: false } : undefined, drag: { x: false, y: false },
          points: { size: 6 } }
        : { show: false },
      axes: axes
        ? [
          { stroke: () => cssColor("--muted"), grid: { stroke: () => cssColor("--grid"), width: 1 },
            ticks: { show: false }, size: 20, values: ageTicks, font: "11px system-ui, sans-serif",
            splits: (u, i, min, max) => ageSplits(min, max, this.window) },
          { stroke: () => cssColor("--muted"), grid: { stroke: () => cssColor("--grid"), width: 1 },
            ticks: { show: false }, size: 50, font: "11px system-ui, sans-serif",
            values: (u, splits) => splits.map(ms ? msTick : rateTick),
            splits: () => (ms ? [0.1, 1, 10, 100, 1000] : [0, 10, 1000, 100000]) },
        ]
        : [{ show: false }, { show: false }],
      series: [
        { label: "time", value: (u, v) => (v == null ? "—" : new Date(v * 1000).toLocaleTimeString([], { hour12: false })) },
        ...series.map((s, i) => ({
          label: s.label,
          stroke: () => cssColor(s.color),
          width: s.width ?? 2,
          dash: s.dash,
          fill: s.fill ? () => `${cssColor(s.color)}${s.bars ? "99" : "2e"}` : undefined,
          fillTo: ms ? MS_RANGE[0] : 0,
          paths: s.bars ? uPlot.paths.bars({ size: [1, 64], align: 0 }) : undefined,
          points: { show: false },
          spanGaps: false,
          value: (u, v, si, idx) => {
            const value = idx == null ? null : this.raw[i]?.[idx];
            return isNum(value) ? fmt(value) : "—";
          },
        })),
      ],
      hooks: {
        drawClear: band ? [experimentBand(this)] : [],
        // the scale in use, readable from outside (the browser tests hold it fixed)
        draw: [(u) => {
          container.dataset.yMin = String(u.scales.y.min);
          container.dataset.yMax = String(u.scales.y.max);
        }],
      },
    };
    this.plot = new uPlot(opts, [[], ...series.map(() => [])], container);
    live.add(this);
    this.observer = new ResizeObserver(() => this.resize());
    this.observer.observe(container);
  }

  resize() {
    if (!this.plot) return;
    const width = Math.floor(this.container.clientWidth);
    if (width > 0 && width !== this.plot.width) this.plot.setSize({ width, height: this.height });
  }

  // history: {t: [unix s], columns: {key: [values]}}
  update(history) {
    if (!this.plot) return;
    const clamp = this.kind === "ms" ? clampMs : clampRate;
    this.raw = this.series.map((s) => history.columns[s.key] || []);
    const data = [history.t.slice(), ...this.raw.map((column) => column.map(clamp))];
    this.plot.setData(data);
  }

  redraw() {
    this.plot?.redraw(false, false);
  }
}
