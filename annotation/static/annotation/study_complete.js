// The completion page of a crowd platform's study link: after a few seconds (data-redirect-seconds),
// take a Prolific participant back to the study's completion URL, counting down on the page. The
// Content Security Policy forbids inline script, hence this file. Only an https:// address is
// followed; Mechanical Turk's form is left for the participant to submit.
(function () {
  "use strict";
  var link = document.getElementById("study-continue");
  if (!link || link.tagName !== "A") { return; }
  var href = link.getAttribute("href") || "";
  var seconds = parseInt(link.getAttribute("data-redirect-seconds"), 10);
  if (href.indexOf("https://") !== 0 || !(seconds >= 0)) { return; }
  var note = document.getElementById("study-redirect-note");
  var countdown = document.getElementById("study-countdown");
  if (note) { note.hidden = false; }
  var left = seconds;
  var timer = window.setInterval(function () {
    left -= 1;
    if (countdown) { countdown.textContent = String(Math.max(left, 0)); }
    if (left <= 0) {
      window.clearInterval(timer);
      window.location.assign(href);
    }
  }, 1000);
})();
