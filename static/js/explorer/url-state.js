/* The colouring, filters, searches, selected point and zoom live in the URL's query string
   (history.replaceState), so a view can be shared or reloaded. */
import { ctx } from "./context.js";

export function readState() {
  const q = new URLSearchParams(window.location.search);
  const number = function (name, fallback) {
    const value = parseFloat(q.get(name));
    return isFinite(value) ? Math.min(1, Math.max(0, value)) : fallback;
  };
  const view = (q.get("view") || "").split(",").map(parseFloat);
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

export function writeState() {
  const state = ctx.state;
  const q = new URLSearchParams();
  if (ctx.config.dataset) q.set("dataset", ctx.config.dataset);
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
  const search = q.toString();
  window.history.replaceState(null, "", window.location.pathname + (search ? "?" + search : ""));
}
