// The console's import page, while an import runs: poll its progress (JSON from the same
// origin) and move the progress bar; reload the page once the import has finished, so it
// shows the outcome. Without this script the page refreshes itself (<noscript> refresh).
// Loaded from 'self' only, as the console's Content-Security-Policy requires.
(function () {
  "use strict";
  var box = document.getElementById("import-progress");
  if (!box) { return; }
  var bar = document.getElementById("import-bar");
  var status = document.getElementById("import-status");
  var url = box.getAttribute("data-progress-url");
  // Intervals in milliseconds, from the page (the server's settings), else as shipped.
  function ms(name, fallback) { return Number(box.getAttribute("data-poll-" + name)) || fallback; }
  function tick() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (p) {
        if (p.status === "done" || p.status === "failed") { window.location.reload(); return; }
        bar.max = Math.max(1, p.total);
        bar.value = p.done;
        bar.textContent = p.done + " of " + p.total;
        status.textContent = p.done + " of " + p.total + " rows checked" + (p.total && p.done >= p.total ? "; writing." : ".");
        window.setTimeout(tick, ms("every", 1000));
      })
      .catch(function () { window.setTimeout(tick, ms("retry", 5000)); });
  }
  window.setTimeout(tick, ms("first", 500));
}());
