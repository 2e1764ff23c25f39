/* The selected point's panel: its text at once from the payload, then its details from the server
   (the whole text, cluster, ratings, evaluations, nearest neighbours). Every string is set as text;
   links only ever point at paths on this site. */
import { ctx, el } from "./context.js";
import { textOf } from "./data.js";
import { failure } from "./http.js";
import { placeMarker } from "./map.js";
import { writeState } from "./url-state.js";

function link(href, text) {
  const a = document.createElement("a");
  // Only paths on this site, which the server built with reverse().
  if (typeof href === "string" && href.charAt(0) === "/" && href.charAt(1) !== "/") a.href = href;
  a.textContent = text;
  return a;
}

export function add(parent, tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (className) node.className = className;
  parent.appendChild(node);
  return node;
}

export function select(index) {
  ctx.state.point = index;
  writeState();
  placeMarker(ctx.selectedMarker, index);
  const panel = el("point-panel"), body = el("point-body");
  if (index === null) {
    panel.hidden = true;
    return;
  }
  panel.hidden = false;
  body.textContent = "";
  add(body, "blockquote", textOf(ctx.data, index), "text");
  add(body, "p", "Loading…", "muted");
  fetch(ctx.config.point + index + "/", { headers: { Accept: "application/json" } })
    .then(function (response) {
      if (!response.ok) throw failure(response, "this example is gone");
      return response.json();
    })
    .then(function (detail) {
      if (ctx.state.point !== index) return;
      fillPanel(body, detail);
    })
    .catch(function (error) {
      body.lastChild.textContent = "Could not load the details: " + error.message;
    });
}

/* "2 of 3 chose Yes, 1 of 3 chose No": the answers the workers picked (model-written option texts,
   set as text by the caller); ratings made before workers chose answers are counted apart. */
function answersChosen(r) {
  const parts = (r.answers || []).map(function (a) { return a.count + " of " + r.count + " chose " + a.answer; });
  if (r.answers_not_recorded) parts.push(r.answers_not_recorded + " of " + r.count + " with no recorded answer");
  return parts.join(", ");
}

function fillPanel(body, detail) {
  const ex = detail.example;
  body.textContent = "";
  add(body, "blockquote", ex.text, "text");
  const facts = add(body, "dl", null, "facts compact");
  const fact = function (name, value) {
    const row = add(facts, "div");
    add(row, "dt", name);
    const dd = add(row, "dd");
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
    const r = detail.ratings;
    const ratings = r.count + " ratings: " + answersChosen(r) + "; " + Math.round(r.label_correct_share * 100) +
      "% chose the label's answer, relevance " + r.relevance_mean.toFixed(1) + "/5, " +
      Math.round(r.ambiguous_share * 100) + "% ambiguous";
    if (r.projects && r.projects.length) {
      const span = document.createElement("span");
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
    const list = add(body, "ul", null, "plain");
    detail.evaluations.forEach(function (item) {
      const li = add(list, "li");
      li.appendChild(link(item.url, item.model + " · " + item.format));
      li.appendChild(document.createTextNode(": P(match) " + item.p_match.toFixed(3) + (item.matches ? ", matches" : ", does not match")));
    });
  }
  add(body, "h3", "Nearest in meaning");
  if (!detail.neighbours.length) add(body, "p", "No neighbours (this text's vector is not cached).", "muted");
  const neighbours = add(body, "ol", null, "neighbours");
  detail.neighbours.forEach(function (n) {
    const li = add(neighbours, "li");
    const button = add(li, "button", n.text, "link-like");
    button.type = "button";
    button.addEventListener("click", function () { select(n.index); });
    add(li, "span", " " + n.dataset + ", cosine " + n.similarity.toFixed(3), "muted");
  });
}
