/* Drawing: one Plotly Scattergl trace of every visible point, and the page's own elements over it
   (the selected point's marker, the cluster labels), placed by converting map coordinates to
   pixels. Nothing from a dataset, model or person is ever handed to Plotly (which renders HTML in
   hover labels, legends and annotations): hover is off in Plotly and those elements are ours. */
import { ctx, el } from "./context.js";
import { DIM_COLOR, MISSING_COLOR, drawLegend, palette, rgbOf } from "./colors.js";

/* Per-point colours go to Plotly as [r, g, b, a] arrays (0-255), one shared array per palette
   entry: Plotly normalises every point's colour, and arrays are its cheapest input (a numeric
   array with a colorscale costs about three times as much at 133k points). */
function traceArrays(p) {
  const data = ctx.data, visible = ctx.visible, matched = ctx.matched, searching = ctx.searching;
  const all = p.colors.concat([MISSING_COLOR, DIM_COLOR]).map(rgbOf);
  const missing = all[p.colors.length], dim = all[p.colors.length + 1], count = visible.length;
  const xs = new Float32Array(count), ys = new Float32Array(count), colors = new Array(count);
  const sizes = searching ? new Float32Array(count) : null;
  const base = data.n > 50000 ? 2.5 : data.n > 10000 ? 3.5 : data.n > 1000 ? 5 : 7;
  for (let k = 0; k < count; k++) {
    const i = visible[k];
    xs[k] = data.x[i];
    ys[k] = data.y[i];
    if (searching && !matched[i]) colors[k] = dim;
    else {
      const c = p.indexOf(i);
      colors[k] = c < 0 ? missing : all[c];
    }
    if (sizes) sizes[k] = matched[i] ? base * 2.2 : base;
  }
  return {
    x: xs,
    y: ys,
    marker: { color: colors, size: sizes || base, opacity: data.n > 50000 ? 0.7 : 0.85 },
  };
}

export function currentRange() {
  const full = ctx.mapDiv._fullLayout;
  if (full && full.xaxis && full.yaxis) {
    return [full.xaxis.range[0], full.xaxis.range[1], full.yaxis.range[0], full.yaxis.range[1]];
  }
  return ctx.state.view || ctx.data.bounds;
}

function layout() {
  const range = ctx.state.view || ctx.data.bounds;
  const axis = function (low, high) {
    return { range: [low, high], visible: false, showgrid: false, zeroline: false, fixedrange: false };
  };
  return {
    margin: { l: 4, r: 4, t: 4, b: 4 },
    xaxis: axis(range[0], range[1]),
    yaxis: axis(range[2], range[3]),
    hovermode: false,
    dragmode: "pan",
    showlegend: false,
    plot_bgcolor: "#ffffff",
    paper_bgcolor: "#ffffff",
    uirevision: "explorer",
  };
}

export function render() {
  const p = palette();
  const arrays = traceArrays(p);
  const trace = {
    type: "scattergl",
    mode: "markers",
    x: arrays.x,
    y: arrays.y,
    marker: arrays.marker,
    hoverinfo: "none",
    showlegend: false,
  };
  el("point-count").textContent = ctx.visible.length.toLocaleString();
  el("point-count").setAttribute("data-count", String(ctx.visible.length));
  drawLegend(p);
  const started = performance.now();
  performance.mark("explorer:arrays");
  const layoutNow = layout();
  if (ctx.mapDiv._fullLayout) {
    const r = currentRange();
    layoutNow.xaxis.range = [r[0], r[1]];
    layoutNow.yaxis.range = [r[2], r[3]];
  }
  return Plotly.react(ctx.mapDiv, [trace], layoutNow, {
    responsive: true,
    displaylogo: false,
    scrollZoom: true,
    doubleClick: false,
    modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d", "toImage"],
  }).then(function () {
    ctx.stats.lastRenderMs = performance.now() - started;
    placeOverlays();
  });
}

export function toPixel(x, y) {
  const full = ctx.mapDiv._fullLayout;
  const size = full._size, xr = full.xaxis.range, yr = full.yaxis.range;
  return [
    size.l + ((x - xr[0]) / (xr[1] - xr[0])) * size.w,
    size.t + (1 - (y - yr[0]) / (yr[1] - yr[0])) * size.h,
  ];
}

export function toData(px, py) {
  const full = ctx.mapDiv._fullLayout;
  const size = full._size, xr = full.xaxis.range, yr = full.yaxis.range;
  return [
    xr[0] + ((px - size.l) / size.w) * (xr[1] - xr[0]),
    yr[0] + (1 - (py - size.t) / size.h) * (yr[1] - yr[0]),
  ];
}

export function inPlot(px, py) {
  const size = ctx.mapDiv._fullLayout._size;
  return px >= size.l && px <= size.l + size.w && py >= size.t && py <= size.t + size.h;
}

export function placeMarker(element, index) {
  if (index === null || index === undefined || !ctx.mapDiv._fullLayout) {
    element.hidden = true;
    return;
  }
  const p = toPixel(ctx.data.x[index], ctx.data.y[index]);
  element.hidden = !inPlot(p[0], p[1]);
  element.style.transform = "translate(" + p[0].toFixed(1) + "px," + p[1].toFixed(1) + "px)";
}

export function placeOverlays() {
  const mapDiv = ctx.mapDiv;
  placeMarker(ctx.selectedMarker, ctx.state.point);
  const box = el("explorer-cluster-labels");
  box.textContent = "";
  if (!ctx.state.clusters || !mapDiv._fullLayout) return;
  // Largest clusters first (the payload's order); a label that would cover one already placed
  // is left out, so zooming in reveals the smaller clusters' labels.
  const placed = [];
  ctx.data.header.clusters.forEach(function (cluster) {
    if (placed.length >= 60 || !cluster.keywords.length) return;
    const p = toPixel(cluster.x, cluster.y);
    if (!inPlot(p[0], p[1])) return;
    const label = document.createElement("span");
    label.className = "cluster-label";
    label.textContent = cluster.keywords.slice(0, 3).join(", ");
    if (cluster.summary) label.title = cluster.summary;
    label.style.transform = "translate(" + p[0].toFixed(1) + "px," + p[1].toFixed(1) + "px)";
    box.appendChild(label);
    const w = label.offsetWidth / 2 + 2, h = label.offsetHeight / 2 + 1;
    // Kept inside the map: a label near an edge moves in rather than being cut off.
    const size = mapDiv._fullLayout._size;
    const x = Math.min(Math.max(p[0], size.l + w), size.l + size.w - w);
    const y = Math.min(Math.max(p[1], size.t + h), size.t + size.h - h);
    label.style.transform = "translate(" + x.toFixed(1) + "px," + y.toFixed(1) + "px)";
    const area = [x - w, x + w, y - h, y + h];
    const overlaps = placed.some(function (o) {
      return area[0] < o[1] && o[0] < area[1] && area[2] < o[3] && o[2] < area[3];
    });
    if (overlaps) box.removeChild(label);
    else placed.push(area);
  });
}
