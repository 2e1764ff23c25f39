/* Keeps the "What make run is doing" section (templates/generation/_first_run.html) up to date while
   the demo dataset is generated and its map computed: polls the JSON at data-first-run-url every 2 s
   and rewrites each step's sentence and progress bar in place, as text only (a job's message is the
   worker's). When a step begins or ends, the server's "stage" changes and the page reloads once to
   show what is new (the dataset in the catalog, the map); polling stops when nothing is running. A
   429 waits as long as Retry-After says. */
(function () {
  "use strict";

  var INTERVAL_MS = 2000;
  var BACKOFF_MAX_MS = 60000;
  var root = document.getElementById("first-run");
  if (!root) {
    return;
  }
  var url = root.getAttribute("data-first-run-url");
  var stage = root.getAttribute("data-stage");
  var failures = 0;

  function stepNode(key) {
    var items = root.querySelectorAll("[data-step]");
    for (var i = 0; i < items.length; i++) {
      if (items[i].getAttribute("data-step") === key) {
        return items[i];
      }
    }
    return null;
  }

  function update(data) {
    for (var i = 0; i < data.steps.length; i++) {
      var step = data.steps[i];
      var node = stepNode(step.key);
      if (!node) {
        continue;
      }
      var text = node.querySelector("[data-first-run-text]");
      if (text) {
        text.textContent = step.text;
      }
      var bar = node.querySelector("[data-first-run-bar]");
      if (bar) {
        var total = typeof step.total === "number" && step.total > 0 ? step.total : 0;
        bar.hidden = !(total && step.active);
        if (total) {
          bar.max = total;
          bar.value = Math.min(step.done, total);
          bar.textContent = step.done + " / " + total;
        }
      }
    }
    root.setAttribute("data-updates", String(parseInt(root.getAttribute("data-updates") || "0", 10) + 1));
  }

  function schedule(ms) {
    window.setTimeout(poll, ms);
  }

  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (response.status === 429) {
          var wait = parseInt(response.headers.get("Retry-After") || "10", 10);
          schedule(Math.min(BACKOFF_MAX_MS, Math.max(1, wait) * 1000));
          return null;
        }
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (data) {
        if (data === null) {
          return;
        }
        failures = 0;
        if (data.stage !== stage) {
          // A step began or ended: the page itself has something new to show.
          window.location.reload();
          return;
        }
        update(data);
        if (data.active) {
          schedule(INTERVAL_MS);
        }
      })
      .catch(function () {
        // The server restarting (Ctrl-C, make run again): try again, less and less often.
        failures += 1;
        schedule(Math.min(BACKOFF_MAX_MS, INTERVAL_MS * Math.pow(2, failures)));
      });
  }

  schedule(INTERVAL_MS);
})();
