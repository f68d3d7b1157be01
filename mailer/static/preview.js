// Live preview on the partner submission form: as the partner types, post the form to the
// preview address and show the returned fragment. Served from our own origin so the page's
// Content-Security-Policy (script from 'self' only) allows it. Without script, the
// "Preview" button does the same with a full page load.
(function () {
  "use strict";
  var form = document.getElementById("item-form");
  var out = document.getElementById("preview");
  if (!form || !out || !window.fetch) return;
  var url = form.getAttribute("data-preview-url");
  var timer = null, seq = 0;
  var summary = document.getElementById("summary"), count = document.getElementById("summary-count");
  var kind = document.getElementById("kind"), events = document.getElementById("event-fields");

  function showEvents() { if (kind && events) events.hidden = kind.value !== "event"; }

  function refresh() {
    var mine = ++seq;
    fetch(url, { method: "POST", body: new FormData(form), credentials: "same-origin" })
      .then(function (r) { return r.text(); })
      .then(function (html) { if (mine === seq) out.innerHTML = html; })
      .catch(function () {});
  }

  function later() {
    if (summary && count) count.textContent = summary.value.length;
    showEvents();
    clearTimeout(timer);
    timer = setTimeout(refresh, 300);
  }

  form.addEventListener("input", later);
  form.addEventListener("change", later);
  showEvents();
})();
