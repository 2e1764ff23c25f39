/* The explorer's label filter is a compact control (templates/analysis/explorer.html): a <details>
   whose summary says how many of the labels are shown, so that the eleven labels of the released
   data do not push the map below the fold. The checkboxes inside are made and handled by the
   explorer's own modules (static/js/explorer/controls.js); this only keeps the count in step. */
(function () {
  "use strict";

  function setUp() {
    var list = document.getElementById("label-filter");
    var shown = document.getElementById("label-shown");
    if (!list || !shown) {
      return;
    }

    function count() {
      var boxes = list.querySelectorAll("input[type=checkbox]");
      var checked = list.querySelectorAll("input[type=checkbox]:checked");
      shown.textContent = boxes.length ? "(" + checked.length + " of " + boxes.length + ")" : "";
    }

    list.addEventListener("change", count);
    // The list is filled once the map's data has arrived, and again when a map is rebuilt.
    new MutationObserver(count).observe(list, { childList: true });
    count();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUp);
  } else {
    setUp();
  }
})();
