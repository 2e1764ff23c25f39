// The invite page: the link carries its token in the fragment (/annotate/join/#<token>), which the
// browser never sends to the server; copy it into the form, and drop it from the address bar and
// history so it is not left behind on this page.
(function () {
  "use strict";
  var field = document.getElementById("id_token");
  var token = window.location.hash.slice(1);
  if (!field || !token) { return; }
  try { field.value = decodeURIComponent(token); } catch (error) { field.value = token; }
  window.history.replaceState(null, "", window.location.pathname + window.location.search);
  var start = document.querySelector("#join-form button[type=submit]");
  if (start) { start.focus(); }
})();
