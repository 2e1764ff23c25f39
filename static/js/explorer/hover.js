/* Hover and click on the map. Plotly's own hover searches every point on each mouse move and slows
   down past ~100k points; here a uniform grid over the visible points answers "nearest point to
   the cursor" by looking at a few cells, whatever the number of points. The tooltip is filled with
   textContent only: texts and labels are written by language models and people. */
import { ctx, el } from "./context.js";
import { continuousValues } from "./colors.js";
import { labelName, textOf } from "./data.js";
import { currentRange, inPlot, placeMarker, placeOverlays, toData } from "./map.js";
import { select } from "./panel.js";
import { writeState } from "./url-state.js";

const HOVER_RADIUS_PX = 12;

/* The visible points by grid cell (CSR layout: cell start offsets and point lists). The nearest
   point to the cursor is found among the cells within the hover radius, so a lookup costs the same
   with 1k or 1M points on the map. */
export function buildGrid() {
  const data = ctx.data, visible = ctx.visible;
  const side = Math.max(16, Math.min(512, Math.round(Math.sqrt(visible.length / 2))));
  const b = data.bounds;
  const sx = side / (b[1] - b[0]), sy = side / (b[3] - b[2]);
  const counts = new Uint32Array(side * side + 1);
  const cells = new Uint32Array(visible.length);
  for (let k = 0; k < visible.length; k++) {
    const i = visible[k];
    const cx = Math.min(side - 1, Math.max(0, Math.floor((data.x[i] - b[0]) * sx)));
    const cy = Math.min(side - 1, Math.max(0, Math.floor((data.y[i] - b[2]) * sy)));
    cells[k] = cy * side + cx;
    counts[cells[k] + 1]++;
  }
  for (let c = 1; c < counts.length; c++) counts[c] += counts[c - 1];
  const fill = counts.slice(0, side * side);
  const items = new Uint32Array(visible.length);
  for (let k = 0; k < visible.length; k++) items[fill[cells[k]]++] = visible[k];
  ctx.grid = { side: side, sx: sx, sy: sy, start: counts, items: items };
}

function nearest(px, py) {
  const grid = ctx.grid, data = ctx.data, mapDiv = ctx.mapDiv;
  if (!grid || !mapDiv._fullLayout || !inPlot(px, py)) return null;
  const b = data.bounds;
  const corner = toData(px - HOVER_RADIUS_PX, py + HOVER_RADIUS_PX);
  const other = toData(px + HOVER_RADIUS_PX, py - HOVER_RADIUS_PX);
  const clamp = function (v) { return Math.min(grid.side - 1, Math.max(0, v)); };
  const x0 = clamp(Math.floor((corner[0] - b[0]) * grid.sx)), x1 = clamp(Math.floor((other[0] - b[0]) * grid.sx));
  const y0 = clamp(Math.floor((corner[1] - b[2]) * grid.sy)), y1 = clamp(Math.floor((other[1] - b[2]) * grid.sy));
  const full = mapDiv._fullLayout;
  const kx = full._size.w / (full.xaxis.range[1] - full.xaxis.range[0]);
  const ky = full._size.h / (full.yaxis.range[1] - full.yaxis.range[0]);
  const target = toData(px, py);
  let best = null, bestDistance = HOVER_RADIUS_PX * HOVER_RADIUS_PX;
  for (let cy = y0; cy <= y1; cy++) {
    for (let cx = x0; cx <= x1; cx++) {
      const cell = cy * grid.side + cx;
      for (let j = grid.start[cell]; j < grid.start[cell + 1]; j++) {
        const i = grid.items[j];
        const dx = (data.x[i] - target[0]) * kx, dy = (data.y[i] - target[1]) * ky;
        const d = dx * dx + dy * dy;
        // Ties go to a search match, which is drawn on top.
        if (d < bestDistance || (d === bestDistance && ctx.searching && ctx.matched[i])) {
          bestDistance = d;
          best = i;
        }
      }
    }
  }
  return best;
}

function formatShare(v) {
  return v >= 0 && v <= 1 ? v.toFixed(2) : "–";
}

function showTooltip(index, px, py) {
  const data = ctx.data, state = ctx.state, tooltip = ctx.tooltip, wrap = ctx.wrap;
  const text = textOf(data, index);
  el("tip-text").textContent = text.length > 280 ? text.slice(0, 279) + "…" : text;
  const meta = [
    data.header.datasets[data.dataset[index]].slug,
    "label " + labelName(data, data.label[index]),
    "confidence " + formatShare(data.confidence[index]),
  ];
  const values = state.color === "agreement" || state.color === "pmatch" ? continuousValues() : null;
  if (values) meta.push((state.color === "agreement" ? "agreement " : "P(match) ") + formatShare(values[index]));
  el("tip-meta").textContent = meta.join(" · ");
  tooltip.hidden = false;
  const width = wrap.clientWidth, tipWidth = tooltip.offsetWidth, tipHeight = tooltip.offsetHeight;
  const left = px + 14 + tipWidth > width ? px - 14 - tipWidth : px + 14;
  const top = Math.max(0, py - tipHeight - 10);
  tooltip.style.left = Math.max(0, left) + "px";
  tooltip.style.top = top + "px";
  tooltip.setAttribute("data-index", String(index));
}

function hideTooltip() {
  ctx.tooltip.hidden = true;
  ctx.marker.hidden = true;
  ctx.tooltip.removeAttribute("data-index");
}

let dragging = false;
let downAt = null;

/* Handled at once: the lookup takes well under a millisecond whatever the size of the map, and
   browsers already deliver at most one mousemove per frame. */
function onMove(event) {
  const stats = ctx.stats;
  if (!ctx.data || !ctx.mapDiv._fullLayout) return;
  const handlerStarted = performance.now();
  const rect = ctx.wrap.getBoundingClientRect();
  const px = event.clientX - rect.left, py = event.clientY - rect.top;
  const started = performance.now();
  const index = dragging ? null : nearest(px, py);
  stats.lookupMs.push(performance.now() - started);
  if (index === null) hideTooltip();
  else {
    showTooltip(index, px, py);
    placeMarker(ctx.marker, index);
  }
  // This handler's own time, and the time from the browser's event (which includes the browser
  // holding mouse moves until the next frame) to the tooltip being updated.
  stats.handlerMs.push(performance.now() - handlerStarted);
  stats.hoverMs.push(performance.now() - event.timeStamp);
  if (stats.hoverMs.length > 2000) {
    ["hoverMs", "lookupMs", "handlerMs"].forEach(function (name) { stats[name].splice(0, 1000); });
  }
}

export function bindMap() {
  const wrap = ctx.wrap;
  wrap.addEventListener("mousemove", function (event) {
    if (downAt && Math.abs(event.clientX - downAt[0]) + Math.abs(event.clientY - downAt[1]) > 4) dragging = true;
    onMove(event);
  });
  wrap.addEventListener("mouseleave", hideTooltip);
  wrap.addEventListener("mousedown", function (event) {
    downAt = [event.clientX, event.clientY];
    dragging = false;
  }, true);
  // On the window: during a pan Plotly covers the page with its own element, which gets the
  // mouseup instead of the map.
  window.addEventListener("mouseup", function (event) {
    const wasDrag = dragging, wasDown = downAt !== null;
    downAt = null;
    dragging = false;
    if (!wasDown || wasDrag || event.button !== 0) return;
    const rect = wrap.getBoundingClientRect();
    const index = nearest(event.clientX - rect.left, event.clientY - rect.top);
    if (index !== null) select(index);
  }, true);
  ctx.mapDiv.on("plotly_relayout", function () {
    ctx.state.view = currentRange();
    writeState();
    placeOverlays();
    hideTooltip();
  });
}
