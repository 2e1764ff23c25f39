/* The embedding explorer: one Plotly Scattergl trace of every example of a map.

   Data: one binary payload per map (see analysis/explorer/services.py payload_encode), gzip on the wire and
   unpacked by the browser: typed arrays for coordinates, datasets, labels, confidences and clusters,
   and the texts as one UTF-8 block with offsets, decoded only when a text is shown or searched.

   Safety: texts, labels, dataset names, keywords and summaries are written by language models and
   people. None of them is ever handed to Plotly (which renders HTML in hover labels, legends and
   annotations): hover is off in Plotly (hovermode false) and the tooltip, legend, cluster labels
   and panel are our own elements, filled with textContent only.

   Speed: Plotly's own hover searches every point on each mouse move and slows down past ~100k
   points. Here a uniform grid over the visible points answers "nearest point to the cursor" by
   looking at a few cells, whatever the number of points.

   State: the colouring, filters, searches, selected point and zoom live in the URL's query string
   (history.replaceState), so a view can be shared or reloaded. */
(function () {
  "use strict";

  var root = document.getElementById("explorer");
  var configElement = document.getElementById("explorer-config");
  if (!root || !configElement) {
    return;
  }
  var config = JSON.parse(configElement.textContent);
  var el = function (id) {
    return document.getElementById(id);
  };
  var mapDiv = el("explorer-map");
  var wrap = el("explorer-map-wrap");
  var tooltip = el("explorer-tooltip");
  var marker = el("explorer-marker");
  var selectedMarker = el("explorer-selected");
  var message = el("explorer-message");

  var HOVER_RADIUS_PX = 12;
  var MISSING_COLOR = "#b8bec4";
  var DIM_COLOR = "#e3e6e9";
  var RAMP_STEPS = 24;
  var CATEGORY_COLORS = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
  ];
  // Viridis at 9 stops; colours in between are interpolated.
  var VIRIDIS = [
    [68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141], [39, 173, 129],
    [92, 200, 99], [170, 220, 50], [253, 231, 37],
  ];
  var COLOR_NAMES = {
    dataset: "Dataset",
    label: "Label",
    confidence: "Label confidence",
    agreement: "Share of raters who judged the label correct",
    pmatch: "P(answer matching the behavior)",
  };

  var data = null; // the decoded payload
  var visible = null; // Uint32Array: point indices drawn, in drawing order
  var matched = null; // Uint8Array per point: 1 where a search matched
  var searching = false;
  var grid = null;
  var overlays = {}; // url -> Float32Array
  var state = readState();
  var stats = { hoverMs: [], lookupMs: [], handlerMs: [] };
  var textCache = null;
  var lowerCache = null;
  var decoder = new TextDecoder("utf-8");

  // ------------------------------------------------------------------ URL state

  function readState() {
    var q = new URLSearchParams(window.location.search);
    var number = function (name, fallback) {
      var value = parseFloat(q.get(name));
      return isFinite(value) ? Math.min(1, Math.max(0, value)) : fallback;
    };
    var view = (q.get("view") || "").split(",").map(parseFloat);
    return {
      color: q.get("color") || "dataset",
      model: q.get("model") || "",
      format: q.get("format") || "",
      labels: q.has("labels") ? q.get("labels").split("|").filter(Boolean) : null,
      cmin: number("cmin", 0),
      cmax: number("cmax", 1),
      q: (q.get("q") || "").slice(0, 200),
      sem: (q.get("sem") || "").slice(0, 300),
      k: ["10", "50", "100", "500"].indexOf(q.get("k")) !== -1 ? q.get("k") : "100",
      point: q.has("point") ? parseInt(q.get("point"), 10) : null,
      view: view.length === 4 && view.every(isFinite) ? view : null,
      clusters: q.get("clusters") !== "0",
    };
  }

  function writeState() {
    var q = new URLSearchParams();
    if (config.dataset) q.set("dataset", config.dataset);
    if (state.color !== "dataset") q.set("color", state.color);
    if (state.color === "pmatch" && state.model) {
      q.set("model", state.model);
      q.set("format", state.format);
    }
    if (state.labels) q.set("labels", state.labels.join("|"));
    if (state.cmin > 0) q.set("cmin", String(state.cmin));
    if (state.cmax < 1) q.set("cmax", String(state.cmax));
    if (state.q) q.set("q", state.q);
    if (state.sem) q.set("sem", state.sem);
    if (state.sem && state.k !== "100") q.set("k", state.k);
    if (state.point !== null) q.set("point", String(state.point));
    if (state.view) q.set("view", state.view.map(function (v) { return v.toPrecision(6); }).join(","));
    if (!state.clusters) q.set("clusters", "0");
    var search = q.toString();
    window.history.replaceState(null, "", window.location.pathname + (search ? "?" + search : ""));
  }

  // ------------------------------------------------------------------ payload

  var ARRAY_TYPES = {
    "<f4": Float32Array,
    "<u4": Uint32Array,
    "<u2": Uint16Array,
    "<i2": Int16Array,
    "|u1": Uint8Array,
  };

  function decode(buffer) {
    var view = new DataView(buffer);
    var magic = String.fromCharCode(view.getUint8(0), view.getUint8(1), view.getUint8(2), view.getUint8(3));
    if (magic !== "MWEX" || view.getUint32(4, true) !== 1) {
      throw new Error("this map's data is in a format this page does not read; reload the page");
    }
    var headerLength = view.getUint32(8, true);
    var header = JSON.parse(decoder.decode(new Uint8Array(buffer, 12, headerLength)));
    var start = 12 + headerLength;
    var arrays = {};
    header.arrays.forEach(function (entry) {
      var Type = ARRAY_TYPES[entry.dtype];
      if (!Type) throw new Error("unknown array type " + entry.dtype);
      arrays[entry.name] = new Type(buffer, start + entry.offset, entry.length);
    });
    var n = header.count;
    var xmin = Infinity, xmax = -Infinity, ymin = Infinity, ymax = -Infinity;
    for (var i = 0; i < n; i++) {
      var x = arrays.x[i], y = arrays.y[i];
      if (x < xmin) xmin = x;
      if (x > xmax) xmax = x;
      if (y < ymin) ymin = y;
      if (y > ymax) ymax = y;
    }
    if (!n) {
      xmin = ymin = -1;
      xmax = ymax = 1;
    }
    var padX = (xmax - xmin) * 0.03 || 1, padY = (ymax - ymin) * 0.03 || 1;
    return {
      header: header,
      n: n,
      x: arrays.x,
      y: arrays.y,
      dataset: arrays.dataset,
      label: arrays.label,
      confidence: arrays.confidence,
      cluster: arrays.cluster,
      offsets: arrays.text_offsets,
      text: arrays.text,
      bounds: [xmin - padX, xmax + padX, ymin - padY, ymax + padY],
    };
  }

  function textOf(i) {
    if (textCache && textCache[i] !== undefined) return textCache[i];
    return decoder.decode(data.text.subarray(data.offsets[i], data.offsets[i + 1]));
  }

  function lowerTexts() {
    if (!lowerCache) {
      textCache = new Array(data.n);
      lowerCache = new Array(data.n);
      for (var i = 0; i < data.n; i++) {
        textCache[i] = decoder.decode(data.text.subarray(data.offsets[i], data.offsets[i + 1]));
        lowerCache[i] = textCache[i].toLowerCase();
      }
    }
    return lowerCache;
  }

  function labelName(index) {
    return index === 255 ? "(none)" : data.header.labels[index];
  }

  // ------------------------------------------------------------------ filters and search

  function passes(i) {
    var label = labelName(data.label[i]);
    if (state.labels && state.labels.indexOf(label) === -1) return false;
    if (state.cmin > 0 || state.cmax < 1) {
      var c = data.confidence[i];
      if (!(c >= state.cmin && c <= state.cmax)) return false;
    }
    return true;
  }

  function computeVisible() {
    var first = [], last = [];
    for (var i = 0; i < data.n; i++) {
      if (!passes(i)) continue;
      // Matches are drawn last, so they sit on top of the dimmed points.
      if (searching && matched[i]) last.push(i);
      else first.push(i);
    }
    visible = new Uint32Array(first.length + last.length);
    visible.set(first, 0);
    visible.set(last, first.length);
    el("match-count").textContent = searching
      ? "; " + last.length.toLocaleString() + " of them highlighted (of all points: " + matchParts.join("; ") + ")"
      : "";
    el("match-count").setAttribute("data-count", String(searching ? last.length : 0));
    buildGrid();
  }

  function textMatches() {
    var needle = state.q.trim().toLowerCase();
    if (!needle) return 0;
    var texts = lowerTexts();
    var count = 0;
    for (var i = 0; i < data.n; i++) {
      if (texts[i].indexOf(needle) !== -1) {
        matched[i] = 1;
        count++;
      }
    }
    return count;
  }

  var semanticResult = null; // {query, k, indices}

  function semanticCurrent() {
    return Boolean(state.sem && semanticResult && semanticResult.query === state.sem && semanticResult.k === state.k);
  }

  function refreshMatches() {
    matched = new Uint8Array(data.n);
    var textCount = textMatches();
    var semanticCount = 0;
    if (semanticCurrent()) {
      semanticResult.indices.forEach(function (i) {
        if (i < data.n) matched[i] = 1;
      });
      semanticCount = semanticResult.indices.length;
    }
    searching = Boolean(state.q.trim()) || semanticCurrent();
    matchParts = [];
    if (state.q.trim()) matchParts.push(textCount + " containing “" + state.q.trim() + "”");
    if (semanticCount) matchParts.push("the " + semanticCount + " nearest in meaning to “" + state.sem + "”");
  }

  var matchParts = [];

  // ------------------------------------------------------------------ colours

  function hex(rgb) {
    return "#" + rgb.map(function (v) { return ("0" + Math.round(v).toString(16)).slice(-2); }).join("");
  }

  function viridis(t) {
    var position = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
    var low = Math.floor(position), high = Math.min(VIRIDIS.length - 1, low + 1), f = position - low;
    return hex([0, 1, 2].map(function (k) { return VIRIDIS[low][k] * (1 - f) + VIRIDIS[high][k] * f; }));
  }

  function categoryColor(i) {
    if (i < CATEGORY_COLORS.length) return CATEGORY_COLORS[i];
    // Beyond ten categories (the global map has one per dataset): hues spread by the golden angle.
    return hex(hslToRgb((i * 137.508) % 360, 0.62, i % 2 ? 0.42 : 0.58));
  }

  function hslToRgb(hue, saturation, lightness) {
    var a = saturation * Math.min(lightness, 1 - lightness);
    var f = function (n) {
      var k = (n + hue / 30) % 12;
      return 255 * (lightness - a * Math.max(-1, Math.min(k - 3, 9 - k, 1)));
    };
    return [f(0), f(8), f(4)];
  }

  function rgbOf(hexColor) {
    var value = parseInt(hexColor.slice(1), 16);
    return [(value >> 16) & 255, (value >> 8) & 255, value & 255, 1];
  }

  function continuousValues() {
    if (state.color === "confidence") return data.confidence;
    return overlays[overlayUrl()] || null;
  }

  function overlayUrl() {
    if (state.color === "agreement") return config.agreement;
    if (state.color === "pmatch" && state.model) {
      return config.pMatch + "?" + new URLSearchParams({ model: state.model, format: state.format }).toString();
    }
    return null;
  }

  /* Every colouring becomes a palette (a list of colours) and a palette index per point; continuous
     values are binned into RAMP_STEPS shades, so the legend and the map always agree. */
  function palette() {
    var colors, names, indexOf;
    if (state.color === "dataset") {
      colors = data.header.datasets.map(function (_, i) { return categoryColor(i); });
      names = data.header.datasets.map(function (d) { return d.slug; });
      indexOf = function (i) { return data.dataset[i]; };
    } else if (state.color === "label") {
      colors = data.header.labels.map(function (_, i) { return categoryColor(i); });
      names = data.header.labels.slice();
      indexOf = function (i) { return data.label[i] === 255 ? -1 : data.label[i]; };
    } else {
      var values = continuousValues();
      colors = [];
      names = [];
      for (var s = 0; s < RAMP_STEPS; s++) colors.push(viridis((s + 0.5) / RAMP_STEPS));
      indexOf = function (i) {
        var v = values ? values[i] : NaN;
        return v >= 0 && v <= 1 ? Math.min(RAMP_STEPS - 1, Math.floor(v * RAMP_STEPS)) : -1;
      };
    }
    return { colors: colors, names: names, indexOf: indexOf, continuous: !names.length };
  }

  /* Per-point colours go to Plotly as [r, g, b, a] arrays (0-255), one shared array per palette
     entry: Plotly normalises every point's colour, and arrays are its cheapest input (a numeric
     array with a colorscale costs about three times as much at 133k points). */
  function traceArrays(p) {
    var all = p.colors.concat([MISSING_COLOR, DIM_COLOR]).map(rgbOf);
    var missing = all[p.colors.length], dim = all[p.colors.length + 1], count = visible.length;
    var xs = new Float32Array(count), ys = new Float32Array(count), colors = new Array(count);
    var sizes = searching ? new Float32Array(count) : null;
    var base = data.n > 50000 ? 2.5 : data.n > 10000 ? 3.5 : data.n > 1000 ? 5 : 7;
    for (var k = 0; k < count; k++) {
      var i = visible[k];
      xs[k] = data.x[i];
      ys[k] = data.y[i];
      if (searching && !matched[i]) colors[k] = dim;
      else {
        var c = p.indexOf(i);
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

  function drawLegend(p) {
    var legend = el("legend");
    legend.textContent = "";
    var caption = document.createElement("li");
    caption.className = "legend-caption";
    caption.textContent = COLOR_NAMES[state.color];
    legend.appendChild(caption);
    var add = function (color, name, count) {
      var item = document.createElement("li");
      var swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = color;
      item.appendChild(swatch);
      var text = document.createElement("span");
      text.textContent = name + (count === undefined ? "" : " (" + count.toLocaleString() + ")");
      item.appendChild(text);
      legend.appendChild(item);
    };
    var counts = new Array(p.colors.length + 1).fill(0);
    for (var k = 0; k < visible.length; k++) {
      var c = p.indexOf(visible[k]);
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
    if (searching) add(DIM_COLOR, "not matching the search");
  }

  // ------------------------------------------------------------------ drawing

  function currentRange() {
    var full = mapDiv._fullLayout;
    if (full && full.xaxis && full.yaxis) {
      return [full.xaxis.range[0], full.xaxis.range[1], full.yaxis.range[0], full.yaxis.range[1]];
    }
    return state.view || data.bounds;
  }

  function layout() {
    var range = state.view || data.bounds;
    var axis = function (low, high) {
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

  function render() {
    var p = palette();
    var arrays = traceArrays(p);
    var trace = {
      type: "scattergl",
      mode: "markers",
      x: arrays.x,
      y: arrays.y,
      marker: arrays.marker,
      hoverinfo: "none",
      showlegend: false,
    };
    el("point-count").textContent = visible.length.toLocaleString();
    el("point-count").setAttribute("data-count", String(visible.length));
    drawLegend(p);
    var started = performance.now();
    performance.mark("explorer:arrays");
    var layoutNow = layout();
    if (mapDiv._fullLayout) {
      var r = currentRange();
      layoutNow.xaxis.range = [r[0], r[1]];
      layoutNow.yaxis.range = [r[2], r[3]];
    }
    return Plotly.react(mapDiv, [trace], layoutNow, {
      responsive: true,
      displaylogo: false,
      scrollZoom: true,
      doubleClick: false,
      modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d", "toImage"],
    }).then(function () {
      stats.lastRenderMs = performance.now() - started;
      placeOverlays();
    });
  }

  function toPixel(x, y) {
    var full = mapDiv._fullLayout;
    var size = full._size, xr = full.xaxis.range, yr = full.yaxis.range;
    return [
      size.l + ((x - xr[0]) / (xr[1] - xr[0])) * size.w,
      size.t + (1 - (y - yr[0]) / (yr[1] - yr[0])) * size.h,
    ];
  }

  function toData(px, py) {
    var full = mapDiv._fullLayout;
    var size = full._size, xr = full.xaxis.range, yr = full.yaxis.range;
    return [
      xr[0] + ((px - size.l) / size.w) * (xr[1] - xr[0]),
      yr[0] + (1 - (py - size.t) / size.h) * (yr[1] - yr[0]),
    ];
  }

  function inPlot(px, py) {
    var size = mapDiv._fullLayout._size;
    return px >= size.l && px <= size.l + size.w && py >= size.t && py <= size.t + size.h;
  }

  function placeMarker(element, index) {
    if (index === null || index === undefined || !mapDiv._fullLayout) {
      element.hidden = true;
      return;
    }
    var p = toPixel(data.x[index], data.y[index]);
    element.hidden = !inPlot(p[0], p[1]);
    element.style.transform = "translate(" + p[0].toFixed(1) + "px," + p[1].toFixed(1) + "px)";
  }

  function placeOverlays() {
    placeMarker(selectedMarker, state.point);
    var box = el("explorer-cluster-labels");
    box.textContent = "";
    if (!state.clusters || !mapDiv._fullLayout) return;
    // Largest clusters first (the payload's order); a label that would cover one already placed
    // is left out, so zooming in reveals the smaller clusters' labels.
    var placed = [];
    data.header.clusters.forEach(function (cluster) {
      if (placed.length >= 60 || !cluster.keywords.length) return;
      var p = toPixel(cluster.x, cluster.y);
      if (!inPlot(p[0], p[1])) return;
      var label = document.createElement("span");
      label.className = "cluster-label";
      label.textContent = cluster.keywords.slice(0, 3).join(", ");
      if (cluster.summary) label.title = cluster.summary;
      label.style.transform = "translate(" + p[0].toFixed(1) + "px," + p[1].toFixed(1) + "px)";
      box.appendChild(label);
      var w = label.offsetWidth / 2 + 2, h = label.offsetHeight / 2 + 1;
      // Kept inside the map: a label near an edge moves in rather than being cut off.
      var size = mapDiv._fullLayout._size;
      var x = Math.min(Math.max(p[0], size.l + w), size.l + size.w - w);
      var y = Math.min(Math.max(p[1], size.t + h), size.t + size.h - h);
      label.style.transform = "translate(" + x.toFixed(1) + "px," + y.toFixed(1) + "px)";
      var box_ = [x - w, x + w, y - h, y + h];
      var overlaps = placed.some(function (o) {
        return box_[0] < o[1] && o[0] < box_[1] && box_[2] < o[3] && o[2] < box_[3];
      });
      if (overlaps) box.removeChild(label);
      else placed.push(box_);
    });
  }

  // ------------------------------------------------------------------ nearest point

  /* A uniform grid over the map's bounds holding the visible points (CSR layout: cell start
     offsets and point lists). The nearest point to the cursor is found among the cells within the
     hover radius, so a lookup costs the same with 1k or 1M points on the map. */
  function buildGrid() {
    var side = Math.max(16, Math.min(512, Math.round(Math.sqrt(visible.length / 2))));
    var b = data.bounds;
    var sx = side / (b[1] - b[0]), sy = side / (b[3] - b[2]);
    var counts = new Uint32Array(side * side + 1);
    var cells = new Uint32Array(visible.length);
    for (var k = 0; k < visible.length; k++) {
      var i = visible[k];
      var cx = Math.min(side - 1, Math.max(0, Math.floor((data.x[i] - b[0]) * sx)));
      var cy = Math.min(side - 1, Math.max(0, Math.floor((data.y[i] - b[2]) * sy)));
      cells[k] = cy * side + cx;
      counts[cells[k] + 1]++;
    }
    for (var c = 1; c < counts.length; c++) counts[c] += counts[c - 1];
    var fill = counts.slice(0, side * side);
    var items = new Uint32Array(visible.length);
    for (k = 0; k < visible.length; k++) items[fill[cells[k]]++] = visible[k];
    grid = { side: side, sx: sx, sy: sy, start: counts, items: items };
  }

  function nearest(px, py) {
    if (!grid || !mapDiv._fullLayout || !inPlot(px, py)) return null;
    var b = data.bounds;
    var corner = toData(px - HOVER_RADIUS_PX, py + HOVER_RADIUS_PX);
    var other = toData(px + HOVER_RADIUS_PX, py - HOVER_RADIUS_PX);
    var clamp = function (v) { return Math.min(grid.side - 1, Math.max(0, v)); };
    var x0 = clamp(Math.floor((corner[0] - b[0]) * grid.sx)), x1 = clamp(Math.floor((other[0] - b[0]) * grid.sx));
    var y0 = clamp(Math.floor((corner[1] - b[2]) * grid.sy)), y1 = clamp(Math.floor((other[1] - b[2]) * grid.sy));
    var full = mapDiv._fullLayout;
    var kx = full._size.w / (full.xaxis.range[1] - full.xaxis.range[0]);
    var ky = full._size.h / (full.yaxis.range[1] - full.yaxis.range[0]);
    var target = toData(px, py);
    var best = null, bestDistance = HOVER_RADIUS_PX * HOVER_RADIUS_PX;
    for (var cy = y0; cy <= y1; cy++) {
      for (var cx = x0; cx <= x1; cx++) {
        var cell = cy * grid.side + cx;
        for (var j = grid.start[cell]; j < grid.start[cell + 1]; j++) {
          var i = grid.items[j];
          var dx = (data.x[i] - target[0]) * kx, dy = (data.y[i] - target[1]) * ky;
          var d = dx * dx + dy * dy;
          // Ties go to a search match, which is drawn on top.
          if (d < bestDistance || (d === bestDistance && searching && matched[i])) {
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
    var text = textOf(index);
    el("tip-text").textContent = text.length > 280 ? text.slice(0, 279) + "…" : text;
    var meta = [
      data.header.datasets[data.dataset[index]].slug,
      "label " + labelName(data.label[index]),
      "confidence " + formatShare(data.confidence[index]),
    ];
    var values = state.color === "agreement" || state.color === "pmatch" ? continuousValues() : null;
    if (values) meta.push((state.color === "agreement" ? "agreement " : "P(match) ") + formatShare(values[index]));
    el("tip-meta").textContent = meta.join(" · ");
    tooltip.hidden = false;
    var width = wrap.clientWidth, tipWidth = tooltip.offsetWidth, tipHeight = tooltip.offsetHeight;
    var left = px + 14 + tipWidth > width ? px - 14 - tipWidth : px + 14;
    var top = Math.max(0, py - tipHeight - 10);
    tooltip.style.left = Math.max(0, left) + "px";
    tooltip.style.top = top + "px";
    tooltip.setAttribute("data-index", String(index));
  }

  function hideTooltip() {
    tooltip.hidden = true;
    marker.hidden = true;
    tooltip.removeAttribute("data-index");
  }

  /* Handled at once: the lookup takes well under a millisecond whatever the size of the map, and
     browsers already deliver at most one mousemove per frame. */
  function onMove(event) {
    if (!data || !mapDiv._fullLayout) return;
    var handlerStarted = performance.now();
    var rect = wrap.getBoundingClientRect();
    var px = event.clientX - rect.left, py = event.clientY - rect.top;
    var started = performance.now();
    var index = dragging ? null : nearest(px, py);
    stats.lookupMs.push(performance.now() - started);
    if (index === null) hideTooltip();
    else {
      showTooltip(index, px, py);
      placeMarker(marker, index);
    }
    // This handler's own time, and the time from the browser's event (which includes the browser
    // holding mouse moves until the next frame) to the tooltip being updated.
    stats.handlerMs.push(performance.now() - handlerStarted);
    stats.hoverMs.push(performance.now() - event.timeStamp);
    if (stats.hoverMs.length > 2000) {
      ["hoverMs", "lookupMs", "handlerMs"].forEach(function (name) { stats[name].splice(0, 1000); });
    }
  }

  // ------------------------------------------------------------------ the panel

  function link(href, text) {
    var a = document.createElement("a");
    // Only paths on this site, which the server built with reverse().
    if (typeof href === "string" && href.charAt(0) === "/" && href.charAt(1) !== "/") a.href = href;
    a.textContent = text;
    return a;
  }

  function add(parent, tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (className) node.className = className;
    parent.appendChild(node);
    return node;
  }

  function select(index) {
    state.point = index;
    writeState();
    placeMarker(selectedMarker, index);
    var panel = el("point-panel"), body = el("point-body");
    if (index === null) {
      panel.hidden = true;
      return;
    }
    panel.hidden = false;
    body.textContent = "";
    add(body, "blockquote", textOf(index), "text");
    add(body, "p", "Loading…", "muted");
    fetch(config.point + index + "/", { headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw failure(response, "this example is gone");
        return response.json();
      })
      .then(function (detail) {
        if (state.point !== index) return;
        fillPanel(body, detail);
      })
      .catch(function (error) {
        body.lastChild.textContent = "Could not load the details: " + error.message;
      });
  }

  function fillPanel(body, detail) {
    var ex = detail.example;
    body.textContent = "";
    add(body, "blockquote", ex.text, "text");
    var facts = add(body, "dl", null, "facts compact");
    var fact = function (name, value) {
      var row = add(facts, "div");
      add(row, "dt", name);
      var dd = add(row, "dd");
      if (value instanceof Node) dd.appendChild(value);
      else dd.textContent = value;
    };
    fact("Dataset", link(ex.dataset_url, ex.dataset));
    fact("Example", link(ex.url, "#" + ex.position));
    fact("Label (matching)", ex.label || "(none)");
    fact("Label confidence", ex.label_confidence === null ? "–" : ex.label_confidence.toFixed(3));
    if (detail.cluster) {
      fact("Cluster", "#" + detail.cluster.number + ": " + detail.cluster.keywords.join(", "));
      if (detail.cluster.summary) fact("Cluster summary (model-written)", detail.cluster.summary);
    }
    if (detail.ratings) {
      var r = detail.ratings;
      var ratings = r.count + " ratings: " + Math.round(r.label_correct_share * 100) + "% label correct, relevance " +
        r.relevance_mean.toFixed(1) + "/5, " + Math.round(r.ambiguous_share * 100) + "% ambiguous";
      if (r.projects && r.projects.length) {
        var span = document.createElement("span");
        span.appendChild(document.createTextNode(ratings + " ("));
        r.projects.forEach(function (project, i) {
          if (i) span.appendChild(document.createTextNode(", "));
          span.appendChild(link(project.url, project.name));
        });
        span.appendChild(document.createTextNode(")"));
        fact("Human ratings", span);
      } else {
        fact("Human ratings", ratings);
      }
    } else {
      fact("Human ratings", "none yet");
    }
    if (detail.evaluations.length) {
      add(body, "h3", "Evaluations");
      var list = add(body, "ul", null, "plain");
      detail.evaluations.forEach(function (item) {
        var li = add(list, "li");
        li.appendChild(link(item.url, item.model + " · " + item.format));
        li.appendChild(document.createTextNode(": P(match) " + item.p_match.toFixed(3) + (item.matches ? ", matches" : ", does not match")));
      });
    }
    add(body, "h3", "Nearest in meaning");
    if (!detail.neighbours.length) add(body, "p", "No neighbours (this text's vector is not cached).", "muted");
    var neighbours = add(body, "ol", null, "neighbours");
    detail.neighbours.forEach(function (n) {
      var li = add(neighbours, "li");
      var button = add(li, "button", n.text, "link-like");
      button.type = "button";
      button.addEventListener("click", function () { select(n.index); });
      add(li, "span", " " + n.dataset + ", cosine " + n.similarity.toFixed(3), "muted");
    });
  }

  // ------------------------------------------------------------------ controls

  function loadOverlay() {
    var url = overlayUrl();
    if (!url || overlays[url]) return Promise.resolve();
    message.textContent = "Loading colours…";
    return fetch(url)
      .then(function (response) {
        if (!response.ok) throw failure(response);
        return response.arrayBuffer();
      })
      .then(function (buffer) {
        overlays[url] = new Float32Array(buffer);
        message.textContent = "";
      })
      .catch(function (error) {
        message.textContent = "Could not load those colours (" + error.message + ").";
      });
  }

  function updateModelChoice() {
    var choice = el("model-choice");
    choice.hidden = state.color !== "pmatch";
    if (state.color !== "pmatch") return;
    var models = config.models;
    var index = models.findIndex(function (m) { return m.spec === state.model && m.format === state.format; });
    if (index < 0 && models.length) {
      index = 0;
      state.model = models[0].spec;
      state.format = models[0].format;
    }
    el("model-select").value = String(index);
  }

  function buildLabelFilter() {
    var box = el("label-filter");
    box.textContent = "";
    var names = data.header.labels.slice();
    var hasNone = false;
    for (var i = 0; i < data.n; i++) {
      if (data.label[i] === 255) {
        hasNone = true;
        break;
      }
    }
    if (hasNone) names.push("(none)");
    names.forEach(function (name) {
      var label = add(box, "label", null, "inline");
      var input = document.createElement("input");
      input.type = "checkbox";
      input.value = name;
      input.checked = !state.labels || state.labels.indexOf(name) !== -1;
      input.addEventListener("change", function () {
        var checked = Array.prototype.filter
          .call(box.querySelectorAll("input"), function (x) { return x.checked; })
          .map(function (x) { return x.value; });
        state.labels = checked.length === names.length ? null : checked;
        changed(true);
      });
      label.appendChild(input);
      label.appendChild(document.createTextNode(" " + name));
    });
  }

  var timer = null;

  function changed(filtersChanged) {
    writeState();
    if (filtersChanged) {
      refreshMatches();
      computeVisible();
      performance.mark("explorer:filtered");
    }
    return render();
  }

  function debounce(fn) {
    return function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(fn, 200);
    };
  }

  function semanticSearch() {
    var query = el("semantic-search").value.trim().slice(0, 300);
    var k = el("semantic-k").value;
    state.sem = query;
    state.k = k;
    if (!query) {
      semanticResult = null;
      return changed(true);
    }
    message.textContent = "Searching by meaning…";
    return fetch(config.search + "?" + new URLSearchParams({ q: query, k: k }).toString())
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) throw response.status === 429 ? failure(response) : new Error(body.error || body.detail || "HTTP " + response.status);
          return body;
        });
      })
      .then(function (body) {
        semanticResult = { query: query, k: k, indices: body.indices };
        message.textContent = "";
        return changed(true);
      })
      .catch(function (error) {
        semanticResult = null;
        message.textContent = "Semantic search failed: " + error.message;
        return changed(true);
      });
  }

  function bindControls() {
    el("explorer-controls").addEventListener("submit", function (event) { event.preventDefault(); });
    var colorBy = el("color-by");
    colorBy.value = state.color;
    if (colorBy.value !== state.color || colorBy.selectedOptions[0].disabled) {
      state.color = "dataset";
      colorBy.value = "dataset";
    }
    colorBy.addEventListener("change", function () {
      state.color = colorBy.value;
      updateModelChoice();
      loadOverlay().then(function () { changed(false); });
    });
    el("model-select").addEventListener("change", function () {
      var model = config.models[parseInt(el("model-select").value, 10)];
      state.model = model.spec;
      state.format = model.format;
      loadOverlay().then(function () { changed(false); });
    });
    var cmin = el("conf-min"), cmax = el("conf-max");
    cmin.value = String(state.cmin);
    cmax.value = String(state.cmax);
    var range = debounce(function () {
      var low = parseFloat(cmin.value), high = parseFloat(cmax.value);
      state.cmin = isFinite(low) ? Math.min(1, Math.max(0, low)) : 0;
      state.cmax = isFinite(high) ? Math.min(1, Math.max(0, high)) : 1;
      changed(true);
    });
    cmin.addEventListener("input", range);
    cmax.addEventListener("input", range);
    var text = el("text-search");
    text.value = state.q;
    text.addEventListener(
      "input",
      debounce(function () {
        state.q = text.value.slice(0, 200);
        changed(true);
      })
    );
    var semantic = el("semantic-search");
    semantic.value = state.sem;
    el("semantic-k").value = state.k;
    el("semantic-go").addEventListener("click", semanticSearch);
    semantic.addEventListener("keydown", function (event) {
      if (event.key === "Enter") {
        event.preventDefault();
        semanticSearch();
      }
    });
    var clusters = el("show-clusters");
    clusters.checked = state.clusters;
    clusters.addEventListener("change", function () {
      state.clusters = clusters.checked;
      writeState();
      placeOverlays();
    });
    el("reset-view").addEventListener("click", function () {
      state.view = null;
      Plotly.relayout(mapDiv, {
        "xaxis.range": [data.bounds[0], data.bounds[1]],
        "yaxis.range": [data.bounds[2], data.bounds[3]],
      });
    });
    var select_ = el("map-select");
    select_.addEventListener("change", function () {
      // Another map has other points: keep the colouring and filters, not the selection or zoom.
      var q = new URLSearchParams(window.location.search);
      ["dataset", "point", "view"].forEach(function (name) { q.delete(name); });
      if (select_.value) q.set("dataset", select_.value);
      window.location.assign(window.location.pathname + "?" + q.toString());
    });
  }

  var dragging = false;
  var downAt = null;

  function bindMap() {
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
      var wasDrag = dragging, wasDown = downAt !== null;
      downAt = null;
      dragging = false;
      if (!wasDown || wasDrag || event.button !== 0) return;
      var rect = wrap.getBoundingClientRect();
      var index = nearest(event.clientX - rect.left, event.clientY - rect.top);
      if (index !== null) select(index);
    }, true);
    mapDiv.on("plotly_relayout", function () {
      state.view = currentRange();
      writeState();
      placeOverlays();
      hideTooltip();
    });
  }

  // ------------------------------------------------------------------ start

  function start(decoded) {
    data = decoded;
    matched = new Uint8Array(data.n);
    buildLabelFilter();
    bindControls();
    updateModelChoice();
    var ready = state.sem ? semanticSearch : function () { return changed(true); };
    return loadOverlay()
      .then(ready)
      .then(function () {
        // plotly.js resolves even when it could not start WebGL: it only puts its own notice over
        // the map. Say so plainly instead of reporting a ready map with nothing drawn.
        if (mapDiv.querySelector(".no-webgl")) {
          throw new Error("this browser could not start WebGL, which the map needs (check that hardware acceleration or WebGL is enabled)");
        }
        performance.mark("explorer:plotted");
        bindMap();
        message.textContent = "";
        if (state.point !== null && state.point >= 0 && state.point < data.n) select(state.point);
        else state.point = null;
        window.requestAnimationFrame(function () {
          stats.firstRenderMs = performance.now();
          root.setAttribute("data-state", "ready");
        });
      });
  }

  /* What a refused request tells the visitor: the site limits how often one client may ask for
     maps, points and searches (429, with Retry-After). */
  function failure(response, gone) {
    if (response.status === 429) {
      var wait = parseInt(response.headers.get("Retry-After"), 10);
      return new Error("too many requests from this address; try again " + (wait > 0 ? "in " + wait + " s" : "shortly"));
    }
    if (response.status === 404 && gone) return new Error(gone);
    return new Error("HTTP " + response.status);
  }

  // A small API for the tests and the benchmark: read-only views of what is drawn.
  window.mweExplorer = {
    stats: stats,
    visibleCount: function () { return visible ? visible.length : 0; },
    traceLength: function () { return mapDiv.data ? mapDiv.data[0].x.length : 0; },
    pixelOf: function (index) {
      var p = toPixel(data.x[index], data.y[index]);
      var rect = wrap.getBoundingClientRect();
      return { x: rect.left + p[0], y: rect.top + p[1] };
    },
    isVisible: function (index) { return visible ? visible.indexOf(index) !== -1 : false; },
    isMatched: function (index) { return Boolean(searching && matched && matched[index]); },
  };

  /* The download starts at once and is decoded while plotly.js (loaded after this script, both
     deferred) is still being parsed; drawing waits for both. */
  var decoded = fetch(config.payload)
    .then(function (response) {
      if (!response.ok) {
        throw failure(response, "this map was replaced by a newer one; reload the page");
      }
      return response.arrayBuffer();
    })
    .then(function (buffer) {
      performance.mark("explorer:fetched");
      var result = decode(buffer);
      performance.mark("explorer:decoded");
      return result;
    });
  var plotlyReady = new Promise(function (resolve, reject) {
    var check = function () {
      if (typeof Plotly !== "undefined") resolve();
      else reject(new Error("the plotting library did not load; reload the page"));
    };
    // This script is deferred, so it runs before DOMContentLoaded, which fires once the deferred
    // plotly.js has run too.
    if (typeof Plotly !== "undefined" || document.readyState === "complete") check();
    else document.addEventListener("DOMContentLoaded", check);
  });
  Promise.all([decoded, plotlyReady])
    .then(function (results) {
      return start(results[0]);
    })
    .catch(function (error) {
      message.textContent = "Could not draw the map: " + error.message;
      root.setAttribute("data-state", "error");
    });
})();
