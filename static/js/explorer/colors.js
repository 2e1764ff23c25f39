/* Colourings: every colouring becomes a palette (a list of colours) and a palette index per point;
   continuous values are binned into RAMP_STEPS shades, so the legend and the map always agree. */
import { ctx, el } from "./context.js";

export const MISSING_COLOR = "#b8bec4";
export const DIM_COLOR = "#e3e6e9";
const RAMP_STEPS = 24;
const CATEGORY_COLORS = [
  "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#17becf",
];
// Viridis at 9 stops; colours in between are interpolated.
const VIRIDIS = [
  [68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141], [39, 173, 129],
  [92, 200, 99], [170, 220, 50], [253, 231, 37],
];
const COLOR_NAMES = {
  dataset: "Dataset",
  label: "Label",
  confidence: "Label confidence",
  agreement: "Share of raters who judged the label correct",
  pmatch: "P(answer matching the behavior)",
};

function hex(rgb) {
  return "#" + rgb.map(function (v) { return ("0" + Math.round(v).toString(16)).slice(-2); }).join("");
}

function viridis(t) {
  const position = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const low = Math.floor(position), high = Math.min(VIRIDIS.length - 1, low + 1), f = position - low;
  return hex([0, 1, 2].map(function (k) { return VIRIDIS[low][k] * (1 - f) + VIRIDIS[high][k] * f; }));
}

function categoryColor(i) {
  if (i < CATEGORY_COLORS.length) return CATEGORY_COLORS[i];
  // Beyond ten categories (the global map has one per dataset): hues spread by the golden angle.
  return hex(hslToRgb((i * 137.508) % 360, 0.62, i % 2 ? 0.42 : 0.58));
}

function hslToRgb(hue, saturation, lightness) {
  const a = saturation * Math.min(lightness, 1 - lightness);
  const f = function (n) {
    const k = (n + hue / 30) % 12;
    return 255 * (lightness - a * Math.max(-1, Math.min(k - 3, 9 - k, 1)));
  };
  return [f(0), f(8), f(4)];
}

export function rgbOf(hexColor) {
  const value = parseInt(hexColor.slice(1), 16);
  return [(value >> 16) & 255, (value >> 8) & 255, value & 255, 1];
}

export function continuousValues() {
  if (ctx.state.color === "confidence") return ctx.data.confidence;
  return ctx.overlays[overlayUrl()] || null;
}

/* Where the colours of an overlay computed by the server (human agreement, a model's P(match))
   are fetched from; null for colourings the payload carries. */
export function overlayUrl() {
  const state = ctx.state, config = ctx.config;
  if (state.color === "agreement") return config.agreement;
  if (state.color === "pmatch" && state.model) {
    return config.pMatch + "?" + new URLSearchParams({ model: state.model, format: state.format }).toString();
  }
  return null;
}

export function palette() {
  const data = ctx.data, state = ctx.state;
  let colors, names, indexOf;
  if (state.color === "dataset") {
    colors = data.header.datasets.map(function (_, i) { return categoryColor(i); });
    names = data.header.datasets.map(function (d) { return d.slug; });
    indexOf = function (i) { return data.dataset[i]; };
  } else if (state.color === "label") {
    colors = data.header.labels.map(function (_, i) { return categoryColor(i); });
    names = data.header.labels.slice();
    indexOf = function (i) { return data.label[i] === 255 ? -1 : data.label[i]; };
  } else {
    const values = continuousValues();
    colors = [];
    names = [];
    for (let s = 0; s < RAMP_STEPS; s++) colors.push(viridis((s + 0.5) / RAMP_STEPS));
    indexOf = function (i) {
      const v = values ? values[i] : NaN;
      return v >= 0 && v <= 1 ? Math.min(RAMP_STEPS - 1, Math.floor(v * RAMP_STEPS)) : -1;
    };
  }
  return { colors: colors, names: names, indexOf: indexOf, continuous: !names.length };
}

export function drawLegend(p) {
  const legend = el("legend");
  legend.textContent = "";
  const caption = document.createElement("li");
  caption.className = "legend-caption";
  caption.textContent = COLOR_NAMES[ctx.state.color];
  legend.appendChild(caption);
  const add = function (color, name, count) {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = color;
    item.appendChild(swatch);
    const text = document.createElement("span");
    text.textContent = name + (count === undefined ? "" : " (" + count.toLocaleString() + ")");
    item.appendChild(text);
    legend.appendChild(item);
  };
  const counts = new Array(p.colors.length + 1).fill(0);
  for (let k = 0; k < ctx.visible.length; k++) {
    const c = p.indexOf(ctx.visible[k]);
    counts[c < 0 ? p.colors.length : c]++;
  }
  if (p.continuous) {
    [0, 0.25, 0.5, 0.75, 1].forEach(function (v) {
      add(viridis(v), v.toFixed(2));
    });
    add(MISSING_COLOR, "no value", counts[p.colors.length]);
  } else {
    p.names.forEach(function (name, j) {
      add(p.colors[j], name, counts[j]);
    });
    if (counts[p.colors.length]) add(MISSING_COLOR, "(none)", counts[p.colors.length]);
  }
  if (ctx.searching) add(DIM_COLOR, "not matching the search");
}
