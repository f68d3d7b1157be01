// The send page's live figures: poll the progress endpoint and update the numbers in place.
// Served from our own origin (the console's policy allows script from 'self' only); without
// script the page's Refresh link does the same. When the edition's status changes the page
// reloads, so the controls offered (pause, resume, resend) match the new state.
(function () {
  "use strict";
  var box = document.getElementById("progress");
  if (!box || !window.fetch) return;
  var url = box.getAttribute("data-progress-url");
  var status = box.getAttribute("data-status");
  var bar = box.querySelector("progress");
  var timer = null;
  // Intervals in milliseconds, from the page (the server's settings), else as shipped.
  function ms(name, fallback) { return Number(box.getAttribute("data-poll-" + name)) || fallback; }

  function show(p) {
    var fields = box.querySelectorAll("[data-field]");
    for (var i = 0; i < fields.length; i++) {
      var name = fields[i].getAttribute("data-field");
      if (p[name] !== undefined && p[name] !== null) fields[i].textContent = String(p[name]);
    }
    var trouble = box.querySelector('[data-field="trouble"]');
    if (trouble) trouble.hidden = !p.trouble;  // relay refusing, a silent worker's claims
    if (bar) {
      bar.max = Math.max(p.total, 1);
      bar.value = p.done;
      bar.textContent = p.done + " of " + p.total;
    }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (p) {
        show(p);
        if (p.status !== status) { window.location.reload(); return; }
        if (!p.finished) timer = setTimeout(poll, ms("every", 2000));
      })
      .catch(function () { timer = setTimeout(poll, ms("retry", 10000)); });
  }

  if (status === "sending" || status === "draft" || status === "scheduled") timer = setTimeout(poll, ms("first", 1000));
})();
