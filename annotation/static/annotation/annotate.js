// The worker page (the form works without this file). Keyboard shortcuts: 1-5 relevance, a-h the
// answer options in the order shown, y/n "is the correct answer ambiguous?", Enter submit, s skip
// (confirmed once per browser session). Also records time on task, counts down the minutes left
// on the lease and shows clock times in the worker's own time zone. It knows nothing of the
// label: the page has none.
(function () {
  "use strict";
  var SKIP_CONFIRMED = "mwe-annotate-skip-confirmed";
  var ANSWER_KEYS = "abcdefgh";

  // Clock times: the server writes them in UTC; the worker reads them in their own zone.
  var clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", timeZoneName: "short" });
  Array.prototype.forEach.call(document.querySelectorAll("time.local-time[datetime]"), function (node) {
    var when = new Date(node.getAttribute("datetime"));
    if (!isNaN(when.getTime())) { node.textContent = clock.format(when); }
  });

  // Minutes left on the lease, counted from the seconds the server gave when it rendered the
  // page (not from this computer's clock, which may be off).
  var lease = document.getElementById("lease");
  var minutes = document.getElementById("lease-minutes");
  if (lease && minutes) {
    var deadline = Date.now() + Number(lease.getAttribute("data-seconds-left")) * 1000;
    var tick = function () {
      var left = Math.max(0, deadline - Date.now());
      minutes.textContent = left > 0 ? Math.ceil(left / 60000) + " min left" : "time is up";
      if (left === 0) { clearInterval(timer); }
    };
    var timer = setInterval(tick, 15000);
    tick();
  }

  var form = document.getElementById("rating-form");
  if (!form) { return; }
  var shown = Date.now();
  var timeField = form.querySelector("input[name=time_on_task_ms]");
  var skipForm = document.getElementById("skip-form");
  var skipButton = document.getElementById("skip-button");
  var hint = document.getElementById("key-hint");
  form.addEventListener("submit", function () {
    if (timeField) { timeField.value = String(Date.now() - shown); }
  });

  function choose(input) {
    if (input) { input.checked = true; }
  }

  function skipConfirmed() {
    try { return window.sessionStorage.getItem(SKIP_CONFIRMED) === "1"; } catch (error) { return false; }
  }

  // `s` is easy to hit by accident and a skipped example never comes back: the first time in this
  // browser session it asks; once confirmed, it skips at once.
  function skip() {
    if (!skipForm) { return; }
    if (!skipConfirmed()) {
      if (!window.confirm("Skip this example? It will not come back. (Asked once: after this, s skips at once.)")) { return; }
      try { window.sessionStorage.setItem(SKIP_CONFIRMED, "1"); } catch (error) { /* private mode: ask again next time */ }
    }
    skipForm.submit();
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    var target = event.target;
    var tag = (target && target.tagName) || "";
    if (tag === "TEXTAREA" || (tag === "INPUT" && target.type === "text")) { return; }
    var key = event.key;
    if (key === "Enter") {
      // Enter on the focused Skip button neither skips nor submits the rating: a worker who tabbed
      // there and pressed Enter meant to submit, and would lose the example. Space still presses it.
      if (target === skipButton) {
        event.preventDefault();
        if (hint) { hint.hidden = false; }
        return;
      }
      // Other buttons, links and the instructions' summary do what Enter does to them.
      if (tag === "BUTTON" || tag === "A" || tag === "SUMMARY" || tag === "SELECT") { return; }
      event.preventDefault();
      form.requestSubmit();
      return;
    }
    var answer = key.length === 1 ? ANSWER_KEYS.indexOf(key) : -1;
    if (key >= "1" && key <= "5") { choose(form.querySelector("input[name=relevance][value='" + key + "']")); }
    else if (answer >= 0) { choose(form.querySelectorAll("input[name=answer]")[answer]); }
    else if (key === "y") { choose(form.querySelector("input[name=ambiguous][value=yes]")); }
    else if (key === "n") { choose(form.querySelector("input[name=ambiguous][value=no]")); }
    else if (key === "s") { event.preventDefault(); skip(); }
  });
})();
