/* The embedding explorer: one Plotly Scattergl trace of every example of a map, as ES modules
   loaded by templates/analysis/explorer.html (script-src 'self': no inline script, no eval).

   data.js decodes the map's binary payload; filters.js decides what is drawn and highlighted;
   colors.js and map.js draw it; hover.js answers the cursor; panel.js shows a selected point;
   controls.js binds the form; url-state.js keeps the view in the URL; context.js holds what they
   share. */
import { ctx, el } from "./context.js";
import { bindControls, buildLabelFilter, changed, loadOverlay, semanticSearch, updateModelChoice } from "./controls.js";
import { decode } from "./data.js";
import { failure } from "./http.js";
import { bindMap } from "./hover.js";
import { toPixel } from "./map.js";
import { select } from "./panel.js";
import { readState } from "./url-state.js";

function start(decoded) {
  const state = ctx.state;
  ctx.data = decoded;
  ctx.matched = new Uint8Array(decoded.n);
  buildLabelFilter();
  bindControls();
  updateModelChoice();
  const ready = state.sem ? semanticSearch : function () { return changed(true); };
  return loadOverlay()
    .then(ready)
    .then(function () {
      // plotly.js resolves even when it could not start WebGL: it only puts its own notice over
      // the map. Say so plainly instead of reporting a ready map with nothing drawn.
      if (ctx.mapDiv.querySelector(".no-webgl")) {
        throw new Error("this browser could not start WebGL, which the map needs (check that hardware acceleration or WebGL is enabled)");
      }
      performance.mark("explorer:plotted");
      bindMap();
      ctx.message.textContent = "";
      if (state.point !== null && state.point >= 0 && state.point < ctx.data.n) select(state.point);
      else state.point = null;
      window.requestAnimationFrame(function () {
        ctx.stats.firstRenderMs = performance.now();
        ctx.root.setAttribute("data-state", "ready");
      });
    });
}

// A small API for the tests and the benchmark: read-only views of what is drawn.
function exposeForTests() {
  window.mweExplorer = {
    stats: ctx.stats,
    visibleCount: function () { return ctx.visible ? ctx.visible.length : 0; },
    traceLength: function () { return ctx.mapDiv.data ? ctx.mapDiv.data[0].x.length : 0; },
    pixelOf: function (index) {
      const p = toPixel(ctx.data.x[index], ctx.data.y[index]);
      const rect = ctx.wrap.getBoundingClientRect();
      return { x: rect.left + p[0], y: rect.top + p[1] };
    },
    isVisible: function (index) { return ctx.visible ? ctx.visible.indexOf(index) !== -1 : false; },
    isMatched: function (index) { return Boolean(ctx.searching && ctx.matched && ctx.matched[index]); },
  };
}

function run(configElement) {
  ctx.config = JSON.parse(configElement.textContent);
  ctx.state = readState();
  exposeForTests();
  /* The download starts at once and is decoded while plotly.js (loaded after this module, both
     deferred) is still being parsed; drawing waits for both. */
  const decoded = fetch(ctx.config.payload)
    .then(function (response) {
      if (!response.ok) {
        throw failure(response, "this map was replaced by a newer one; reload the page");
      }
      return response.arrayBuffer();
    })
    .then(function (buffer) {
      performance.mark("explorer:fetched");
      const result = decode(buffer);
      performance.mark("explorer:decoded");
      return result;
    });
  const plotlyReady = new Promise(function (resolve, reject) {
    const check = function () {
      if (typeof Plotly !== "undefined") resolve();
      else reject(new Error("the plotting library did not load; reload the page"));
    };
    // Module scripts run like deferred ones, in document order, before DOMContentLoaded, which
    // fires once the deferred plotly.js has run too.
    if (typeof Plotly !== "undefined" || document.readyState === "complete") check();
    else document.addEventListener("DOMContentLoaded", check);
  });
  Promise.all([decoded, plotlyReady])
    .then(function (results) {
      return start(results[0]);
    })
    .catch(function (error) {
      ctx.message.textContent = "Could not draw the map: " + error.message;
      ctx.root.setAttribute("data-state", "error");
    });
}

const configElement = el("explorer-config");
if (ctx.root && configElement) run(configElement);
