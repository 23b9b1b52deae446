// Live updates for the dashboard: the page's <main data-live> is replaced
// by what the server pushes on the same URL with ?live=1 (Server-Sent
// Events). An update waits while someone types in a form in it.
(function () {
  "use strict";
  var main = document.querySelector("main[data-live]");
  if (!main || !window.EventSource) return;
  var url = new URL(window.location.href);
  url.searchParams.set("live", "1");
  var pending = null;
  function busy() {
    var a = document.activeElement;
    if (a && main.contains(a) && (a.tagName === "INPUT" || a.tagName === "TEXTAREA" || a.tagName === "SELECT")) return true;
    var fields = main.querySelectorAll("form.control input[name=reason]");
    for (var i = 0; i < fields.length; i++) if (fields[i].value) return true;
    return false;
  }
  function apply() {
    if (pending === null || busy()) return;
    main.innerHTML = pending;
    pending = null;
    main.dispatchEvent(new CustomEvent("live-update", { bubbles: true }));
  }
  var es = new EventSource(url.toString());
  es.addEventListener("page", function (e) { pending = e.data; apply(); });
  main.addEventListener("focusout", function () { setTimeout(apply, 0); });
  document.documentElement.setAttribute("data-live-connected", "");
})();
