// Keyboard shortcuts for the worker page (the form works without this file):
// 1-5 relevance, y/n label, a ambiguous, Enter submit, s skip. Also records time on task.
(function () {
  "use strict";
  var form = document.getElementById("rating-form");
  if (!form) { return; }
  var shown = Date.now();
  var timeField = form.querySelector("input[name=time_on_task_ms]");
  form.addEventListener("submit", function () {
    if (timeField) { timeField.value = String(Date.now() - shown); }
  });
  function check(selector) {
    var input = form.querySelector(selector);
    if (input) { input.checked = !input.checked || input.type === "radio"; }
  }
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    var tag = (event.target && event.target.tagName) || "";
    if (tag === "TEXTAREA" || (tag === "INPUT" && event.target.type === "text")) { return; }
    var key = event.key;
    if (key >= "1" && key <= "5") { check("input[name=relevance][value='" + key + "']"); }
    else if (key === "y") { check("input[name=label_correct][value=yes]"); }
    else if (key === "n") { check("input[name=label_correct][value=no]"); }
    else if (key === "a") { check("input[name=ambiguous]"); }
    else if (key === "s") { document.getElementById("skip-form").submit(); }
    else if (key === "Enter") { event.preventDefault(); form.requestSubmit(); }
    else { return; }
  });
})();
