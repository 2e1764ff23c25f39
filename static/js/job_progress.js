/* Keeps a job's or a run's page up to date in place while the work runs: the element with
   data-progress-url names a small JSON endpoint (generation.jobs.selectors.job_progress/run_progress),
   polled every few seconds; the elements marked data-progress="<field>" are rewritten from its answer,
   as text only (a job's message can quote model output). The page is never reloaded, so the reader's
   scroll position and open details stay as they are. Once the work has ended, polling stops and the
   link to the result is shown. Without JavaScript, the <noscript> refresh in the page reloads it. */
(function () {
  "use strict";

  var INTERVAL_MS = 2000;
  var BACKOFF_MAX_MS = 30000;

  function all(name) {
    return document.querySelectorAll('[data-progress="' + name + '"]');
  }

  function each(name, apply) {
    var nodes = all(name);
    for (var i = 0; i < nodes.length; i++) {
      apply(nodes[i]);
    }
  }

  function number(value) {
    return Number(value).toLocaleString("en-US");
  }

  function update(root, data) {
    each("status", function (node) {
      node.textContent = data.status_display;
      node.className = node.className.replace(/\bstatus-[a-z]+\b/g, "").trim();
      node.classList.add("status-" + data.status);
    });
    each("message", function (node) {
      node.textContent = data.message ? " — " + data.message : "";
    });
    each("message-text", function (node) {
      node.textContent = data.message || "";
      node.hidden = !data.message;
    });
    each("cancelling", function (node) {
      node.hidden = !data.cancel_requested || data.finished;
    });
    var hasTotal = typeof data.total === "number" && data.total > 0;
    each("bar-row", function (node) {
      node.hidden = !hasTotal;
    });
    if (hasTotal) {
      each("bar", function (node) {
        node.max = data.total;
        node.value = Math.min(data.done, data.total);
        node.textContent = data.done + " / " + data.total;
      });
      each("count", function (node) {
        node.textContent = number(data.done) + " / " + number(data.total);
      });
    }
    each("waiting", function (node) {
      node.textContent = data.waiting || "";
      node.hidden = !data.waiting;
    });
    if (data.finished) {
      each("note", function (node) {
        node.hidden = true;
      });
      each("cancel", function (node) {
        node.hidden = true;
      });
      each("result", function (node) {
        if (data.result && typeof data.result.url === "string" && data.result.url.charAt(0) === "/") {
          node.href = data.result.url;
          node.textContent = data.result.label;
        }
      });
      each("done", function (node) {
        node.hidden = false;
      });
      root.setAttribute("data-progress-state", "finished");
    }
    var updates = parseInt(root.getAttribute("data-progress-updates") || "0", 10) + 1;
    root.setAttribute("data-progress-updates", String(updates));
  }

  function start(root) {
    var url = root.getAttribute("data-progress-url");
    var interval = parseInt(root.getAttribute("data-progress-interval"), 10) || INTERVAL_MS;
    var failures = 0;

    function schedule(ms) {
      window.setTimeout(poll, ms);
    }

    function poll() {
      window
        .fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (response.status === 429) {
            // Over the rate limit: wait as long as the server says, then go on.
            var wait = parseInt(response.headers.get("Retry-After"), 10);
            schedule(Math.max(interval, (wait > 0 ? wait : 10) * 1000));
            return null;
          }
          if (!response.ok) {
            throw new Error("HTTP " + response.status);
          }
          return response.json().then(function (data) {
            failures = 0;
            update(root, data);
            if (!data.finished) {
              schedule(interval);
            }
          });
        })
        .catch(function () {
          // A dropped connection or a restarting server: try again, less and less often.
          failures += 1;
          schedule(Math.min(BACKOFF_MAX_MS, interval * Math.pow(2, failures)));
        });
    }

    schedule(interval);
  }

  function startAll() {
    var roots = document.querySelectorAll("[data-progress-url]");
    for (var i = 0; i < roots.length; i++) {
      if (roots[i].getAttribute("data-progress-state") !== "finished") {
        start(roots[i]);
      }
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", startAll);
  } else {
    startAll();
  }
})();
