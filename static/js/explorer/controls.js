/* The controls beside the map: colouring (and the overlays it fetches), label and confidence
   filters, text and semantic search, cluster labels, the zoom reset and the map choice. */
import { ctx, el } from "./context.js";
import { overlayUrl } from "./colors.js";
import { computeVisible, refreshMatches } from "./filters.js";
import { failure } from "./http.js";
import { placeOverlays, render } from "./map.js";
import { add } from "./panel.js";
import { writeState } from "./url-state.js";

export function loadOverlay() {
  const url = overlayUrl();
  if (!url || ctx.overlays[url]) return Promise.resolve();
  ctx.message.textContent = "Loading colours…";
  return fetch(url)
    .then(function (response) {
      if (!response.ok) throw failure(response);
      return response.arrayBuffer();
    })
    .then(function (buffer) {
      ctx.overlays[url] = new Float32Array(buffer);
      ctx.message.textContent = "";
    })
    .catch(function (error) {
      ctx.message.textContent = "Could not load those colours (" + error.message + ").";
    });
}

export function updateModelChoice() {
  const state = ctx.state;
  const choice = el("model-choice");
  choice.hidden = state.color !== "pmatch";
  if (state.color !== "pmatch") return;
  const models = ctx.config.models;
  let index = models.findIndex(function (m) { return m.spec === state.model && m.format === state.format; });
  if (index < 0 && models.length) {
    index = 0;
    state.model = models[0].spec;
    state.format = models[0].format;
  }
  el("model-select").value = String(index);
}

export function buildLabelFilter() {
  const data = ctx.data;
  const box = el("label-filter");
  box.textContent = "";
  const names = data.header.labels.slice();
  let hasNone = false;
  for (let i = 0; i < data.n; i++) {
    if (data.label[i] === 255) {
      hasNone = true;
      break;
    }
  }
  if (hasNone) names.push("(none)");
  names.forEach(function (name) {
    const label = add(box, "label", null, "inline");
    const input = document.createElement("input");
    input.type = "checkbox";
    input.value = name;
    input.checked = !ctx.state.labels || ctx.state.labels.indexOf(name) !== -1;
    input.addEventListener("change", function () {
      const checked = Array.prototype.filter
        .call(box.querySelectorAll("input"), function (x) { return x.checked; })
        .map(function (x) { return x.value; });
      ctx.state.labels = checked.length === names.length ? null : checked;
      changed(true);
    });
    label.appendChild(input);
    label.appendChild(document.createTextNode(" " + name));
  });
}

export function changed(filtersChanged) {
  writeState();
  if (filtersChanged) {
    refreshMatches();
    computeVisible();
    performance.mark("explorer:filtered");
  }
  return render();
}

let timer = null;

function debounce(fn) {
  return function () {
    window.clearTimeout(timer);
    timer = window.setTimeout(fn, 200);
  };
}

export function semanticSearch() {
  const state = ctx.state, message = ctx.message;
  const query = el("semantic-search").value.trim().slice(0, 300);
  const k = el("semantic-k").value;
  state.sem = query;
  state.k = k;
  if (!query) {
    ctx.semanticResult = null;
    return changed(true);
  }
  message.textContent = "Searching by meaning…";
  return fetch(ctx.config.search + "?" + new URLSearchParams({ q: query, k: k }).toString())
    .then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) throw response.status === 429 ? failure(response) : new Error(body.error || body.detail || "HTTP " + response.status);
        return body;
      });
    })
    .then(function (body) {
      ctx.semanticResult = { query: query, k: k, indices: body.indices };
      message.textContent = "";
      return changed(true);
    })
    .catch(function (error) {
      ctx.semanticResult = null;
      message.textContent = "Semantic search failed: " + error.message;
      return changed(true);
    });
}

export function bindControls() {
  const state = ctx.state;
  el("explorer-controls").addEventListener("submit", function (event) { event.preventDefault(); });
  const colorBy = el("color-by");
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
    const model = ctx.config.models[parseInt(el("model-select").value, 10)];
    state.model = model.spec;
    state.format = model.format;
    loadOverlay().then(function () { changed(false); });
  });
  const cmin = el("conf-min"), cmax = el("conf-max");
  cmin.value = String(state.cmin);
  cmax.value = String(state.cmax);
  const range = debounce(function () {
    const low = parseFloat(cmin.value), high = parseFloat(cmax.value);
    state.cmin = isFinite(low) ? Math.min(1, Math.max(0, low)) : 0;
    state.cmax = isFinite(high) ? Math.min(1, Math.max(0, high)) : 1;
    changed(true);
  });
  cmin.addEventListener("input", range);
  cmax.addEventListener("input", range);
  const text = el("text-search");
  text.value = state.q;
  text.addEventListener(
    "input",
    debounce(function () {
      state.q = text.value.slice(0, 200);
      changed(true);
    })
  );
  const semantic = el("semantic-search");
  semantic.value = state.sem;
  el("semantic-k").value = state.k;
  el("semantic-go").addEventListener("click", semanticSearch);
  semantic.addEventListener("keydown", function (event) {
    if (event.key === "Enter") {
      event.preventDefault();
      semanticSearch();
    }
  });
  const clusters = el("show-clusters");
  clusters.checked = state.clusters;
  clusters.addEventListener("change", function () {
    state.clusters = clusters.checked;
    writeState();
    placeOverlays();
  });
  el("reset-view").addEventListener("click", function () {
    state.view = null;
    Plotly.relayout(ctx.mapDiv, {
      "xaxis.range": [ctx.data.bounds[0], ctx.data.bounds[1]],
      "yaxis.range": [ctx.data.bounds[2], ctx.data.bounds[3]],
    });
  });
  const mapSelect = el("map-select");
  mapSelect.addEventListener("change", function () {
    // Another map has other points: keep the colouring and filters, not the selection or zoom.
    const q = new URLSearchParams(window.location.search);
    ["dataset", "point", "view"].forEach(function (name) { q.delete(name); });
    if (mapSelect.value) q.set("dataset", mapSelect.value);
    window.location.assign(window.location.pathname + "?" + q.toString());
  });
}
