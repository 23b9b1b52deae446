// Live updates for the dashboard: the page's <main data-live> is replaced
// by what the server pushes on the same URL with ?live=1 (Server-Sent
// Events). An update waits while someone types in a form in it, and
// keeps the keyboard focus on the same link or button when it replaces it.
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
  // focusKey names a focusable element by what it does, so its copy in
  // the new content can be found.
  function focusKey(el) {
    return [el.tagName, el.id, el.getAttribute("name"), el.getAttribute("value"), el.getAttribute("href"), el.textContent].join("\u0000");
  }
  function apply() {
    if (pending === null || busy()) return;
    var a = document.activeElement, key = null;
    if (a && a !== main && main.contains(a)) key = focusKey(a);
    main.innerHTML = pending;
    pending = null;
    if (key !== null) {
      var same = main.querySelectorAll(a.tagName);
      for (var i = 0; i < same.length; i++) {
        if (focusKey(same[i]) === key) { same[i].focus({ preventScroll: true }); break; }
      }
    }
    main.dispatchEvent(new CustomEvent("live-update", { bubbles: true }));
  }
  var es = new EventSource(url.toString());
  es.addEventListener("page", function (e) { pending = e.data; apply(); });
  main.addEventListener("focusout", function () { setTimeout(apply, 0); });
  document.documentElement.setAttribute("data-live-connected", "");
})();
