// celeriac monitor: live updates and confirmed controls. Hand-written, no build step.
(function () {
  "use strict";
  var main = document.getElementById("live");
  var status = document.getElementById("live-status");
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var pending = false, last = 0, timer = null;

  function busy() {
    // Do not redraw under the user's fingers (a form being filled in).
    var el = document.activeElement;
    return el && main.contains(el) && (el.tagName === "INPUT" || el.tagName === "SELECT");
  }

  function redraw() {
    if (pending) return;
    if (busy()) { schedule(1000); return; }
    pending = true; last = Date.now();
    fetch(location.href, { headers: { "X-Fragment": "1" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) main.innerHTML = html; })
      .finally(function () { pending = false; });
  }

  function schedule(delay) {
    if (timer) return;
    timer = setTimeout(function () { timer = null; redraw(); }, delay);
  }

  if (window.EventSource) {
    var source = new EventSource("/live");
    var first = true;
    source.onopen = function () { status.classList.add("on"); };
    source.onerror = function () { status.classList.remove("on"); };
    source.onmessage = function () {
      if (first) { first = false; return; }  // the page is already current
      var wait = Math.max(0, 1000 - (Date.now() - last));  // at most one redraw a second
      schedule(wait);
    };
  }

  function flash(text, ok) {
    var box = document.getElementById("flash");
    var p = document.createElement("p");
    p.className = ok ? "ok" : "error";
    p.textContent = text;
    box.replaceChildren(p);
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList || !form.classList.contains("control")) return;
    event.preventDefault();
    if (!window.confirm(form.dataset.confirm || "Are you sure?")) return;
    var body = new URLSearchParams(new FormData(form));
    fetch(form.action, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf, "Accept": "application/json" }
    }).then(function (r) {
      return r.json().then(function (data) {
        flash(data.message || data.error || r.statusText, r.ok);
        if (r.ok) schedule(300);
      });
    }).catch(function (err) { flash(String(err), false); });
  });
})();
