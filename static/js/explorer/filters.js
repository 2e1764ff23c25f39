/* Which points are drawn (the label and confidence filters) and which are highlighted (the text
   search, done here over the payload's texts, and the semantic search's result). */
import { ctx, el } from "./context.js";
import { labelName, lowerTexts } from "./data.js";
import { buildGrid } from "./hover.js";

function passes(i) {
  const data = ctx.data, state = ctx.state;
  const label = labelName(data, data.label[i]);
  if (state.labels && state.labels.indexOf(label) === -1) return false;
  if (state.cmin > 0 || state.cmax < 1) {
    const c = data.confidence[i];
    if (!(c >= state.cmin && c <= state.cmax)) return false;
  }
  return true;
}

export function computeVisible() {
  const first = [], last = [];
  for (let i = 0; i < ctx.data.n; i++) {
    if (!passes(i)) continue;
    // Matches are drawn last, so they sit on top of the dimmed points.
    if (ctx.searching && ctx.matched[i]) last.push(i);
    else first.push(i);
  }
  ctx.visible = new Uint32Array(first.length + last.length);
  ctx.visible.set(first, 0);
  ctx.visible.set(last, first.length);
  el("match-count").textContent = ctx.searching
    ? "; " + last.length.toLocaleString() + " of them highlighted (of all points: " + ctx.matchParts.join("; ") + ")"
    : "";
  el("match-count").setAttribute("data-count", String(ctx.searching ? last.length : 0));
  buildGrid();
}

function textMatches() {
  const needle = ctx.state.q.trim().toLowerCase();
  if (!needle) return 0;
  const texts = lowerTexts(ctx.data);
  let count = 0;
  for (let i = 0; i < ctx.data.n; i++) {
    if (texts[i].indexOf(needle) !== -1) {
      ctx.matched[i] = 1;
      count++;
    }
  }
  return count;
}

function semanticCurrent() {
  const result = ctx.semanticResult, state = ctx.state;
  return Boolean(state.sem && result && result.query === state.sem && result.k === state.k);
}

export function refreshMatches() {
  const state = ctx.state;
  ctx.matched = new Uint8Array(ctx.data.n);
  const textCount = textMatches();
  let semanticCount = 0;
  if (semanticCurrent()) {
    ctx.semanticResult.indices.forEach(function (i) {
      if (i < ctx.data.n) ctx.matched[i] = 1;
    });
    semanticCount = ctx.semanticResult.indices.length;
  }
  ctx.searching = Boolean(state.q.trim()) || semanticCurrent();
  ctx.matchParts = [];
  if (state.q.trim()) ctx.matchParts.push(textCount + " containing “" + state.q.trim() + "”");
  if (semanticCount) ctx.matchParts.push("the " + semanticCount + " nearest in meaning to “" + state.sem + "”");
}
