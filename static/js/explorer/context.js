/* What the explorer's modules share: the page's elements, its configuration, the decoded map and
   the view's state. One object, so each module reads the current value instead of a copy. */

export const el = (id) => document.getElementById(id);

export const ctx = {
  root: el("explorer"),
  config: null,
  mapDiv: el("explorer-map"),
  wrap: el("explorer-map-wrap"),
  tooltip: el("explorer-tooltip"),
  marker: el("explorer-marker"),
  selectedMarker: el("explorer-selected"),
  message: el("explorer-message"),

  data: null, // the decoded payload (data.js)
  visible: null, // Uint32Array: point indices drawn, in drawing order
  matched: null, // Uint8Array per point: 1 where a search matched
  searching: false,
  matchParts: [], // what the searches matched, in words
  semanticResult: null, // {query, k, indices}
  grid: null, // hover.js's index of the visible points
  overlays: {}, // url -> Float32Array
  state: null, // the view, as kept in the URL (url-state.js)
  stats: { hoverMs: [], lookupMs: [], handlerMs: [] },
};
