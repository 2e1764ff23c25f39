/* Draws the figures a page embeds as JSON (Django's json_script) into the element that names them
   with data-figure="<id of the script element>". The figures are built on the server with their
   untrusted text already escaped; this file only hands them to plotly.js, served by this site.
   Kept out of the pages so that no inline script is needed. */
(function () {
  "use strict";

  function draw(container) {
    var source = document.getElementById(container.getAttribute("data-figure"));
    if (!source || typeof Plotly === "undefined") {
      return;
    }
    var figure = JSON.parse(source.textContent);
    container.classList.add("chart-drawn");
    Plotly.newPlot(container, figure.data, figure.layout, {
      responsive: true,
      displaylogo: false,
    }).then(function () {
      // A point whose customdata is a path on this site (a run or an example page) opens it.
      container.on("plotly_click", function (event) {
        var point = event && event.points && event.points[0];
        var target = point && point.customdata;
        if (typeof target === "string" && target.charAt(0) === "/" && target.charAt(1) !== "/") {
          window.location.assign(target);
        }
      });
    });
  }

  function drawAll() {
    var containers = document.querySelectorAll("[data-figure]");
    for (var i = 0; i < containers.length; i++) {
      draw(containers[i]);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
