// Keyboard shortcuts for the worker page (the form works without this file): 1-5 relevance,
// a-h the answer options in the order shown, y/n "is the correct answer ambiguous?", Enter
// submit, s skip. Also records time on task. It knows nothing of the label: the page has none.
(function () {
  "use strict";
  var form = document.getElementById("rating-form");
  if (!form) { return; }
  var shown = Date.now();
  var timeField = form.querySelector("input[name=time_on_task_ms]");
  var ANSWER_KEYS = "abcdefgh";
  form.addEventListener("submit", function () {
    if (timeField) { timeField.value = String(Date.now() - shown); }
  });
  function choose(input) {
    if (input) { input.checked = true; }
  }
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    var tag = (event.target && event.target.tagName) || "";
    if (tag === "TEXTAREA" || (tag === "INPUT" && event.target.type === "text")) { return; }
    var key = event.key;
    var answer = key.length === 1 ? ANSWER_KEYS.indexOf(key) : -1;
    if (key >= "1" && key <= "5") { choose(form.querySelector("input[name=relevance][value='" + key + "']")); }
    else if (answer >= 0) { choose(form.querySelectorAll("input[name=answer]")[answer]); }
    else if (key === "y") { choose(form.querySelector("input[name=ambiguous][value=yes]")); }
    else if (key === "n") { choose(form.querySelector("input[name=ambiguous][value=no]")); }
    else if (key === "s") { document.getElementById("skip-form").submit(); }
    else if (key === "Enter") { event.preventDefault(); form.requestSubmit(); }
  });
})();
