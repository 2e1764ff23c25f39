/* The generation form (templates/generation/generation_form.html) shows only the fields of the
   method chosen: each field that one method alone reads is wrapped in an element marked
   data-method="<method>", shown while that method is selected. A hidden field is also disabled: the
   method chosen does not read it, and a value the browser finds invalid there (typed before the
   method was changed) must not block the form with a message no one can see. The server validates
   what is sent as before; a field it sent back with an error is never hidden. Without JavaScript
   every field shows and is sent. */
(function () {
  "use strict";

  function setUp() {
    var form = document.getElementById("generate-form");
    if (!form) {
      return;
    }
    var select = document.getElementById(form.getAttribute("data-method-select"));
    if (!select) {
      return;
    }
    var fields = form.querySelectorAll("[data-method]");

    function show() {
      for (var i = 0; i < fields.length; i++) {
        var mine = fields[i].getAttribute("data-method") === select.value;
        var hide = !mine && !fields[i].hasAttribute("data-has-errors");
        fields[i].hidden = hide;
        var controls = fields[i].querySelectorAll("input, select, textarea");
        for (var j = 0; j < controls.length; j++) {
          controls[j].disabled = hide;
        }
      }
      form.setAttribute("data-shown-method", select.value);
    }

    select.addEventListener("change", show);
    show();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUp);
  } else {
    setUp();
  }
})();
