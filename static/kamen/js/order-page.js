// Order page: copy buttons; the status line changes in place when the order is paid, and the
// page reloads only when goods arrive or the order ends (ADR 0014).
(function () {
  var page = document.querySelector("[data-testid=order]");
  document.querySelectorAll("button.copy").forEach(function (button) {
    button.addEventListener("click", function () {
      var text = button.getAttribute("data-copy");
      var done = function () { button.textContent = button.getAttribute("data-copied-label"); };
      if (navigator.clipboard) { navigator.clipboard.writeText(text).then(done, done); } else { done(); }
    });
  });
  if (!page || page.dataset.final === "1") { return; }
  // When to ask (bench/http_storm.py's buyers wait the same way, ADR 0014): 0.5 s after the
  // page opens, then every second for its first 10 s (goods usually arrive within a second or
  // two of paying), then 2, 3, 4 s apart and every 5 s after that, so a buyer who waits long
  // asks ~12 times a minute, not 60. A hidden page does not ask; coming back to it (from the
  // payment app, another tab) asks at once and starts the fast 10 s again.
  var FIRST = 500, FAST = 1000, FAST_FOR = 10000, SLOWEST = 5000, MAX_TRIES = 600;
  var status = page.dataset.status, delivered = page.dataset.delivered;
  var opened = Date.now(), slow = 0, tries = 0, timer = null, busy = false, stopped = false, last = 0;
  function nextDelay() {
    if (Date.now() - opened < FAST_FOR) { return FAST; }
    slow += 1;
    return Math.min(FAST + slow * 1000, SLOWEST);
  }
  // Paid, delivering, waiting for stock or for a risk review: no goods to show yet, so the
  // status line and the hint change here instead of loading the whole page again (about half
  // of a buyer's page loads). Anything else (goods, an ending) reloads. True when patched.
  var HINTS = {paid: "hintWaiting", fulfilling: "hintWaiting", backordered: "hintBackordered"};
  function patch(data) {
    var line = page.querySelector("[data-testid=order-status]");
    var next = page.querySelector("[data-testid=order-next]");
    var text = data.is_under_review ? data.message : page.dataset[HINTS[data.status]];
    if (!line || !next || data.is_final || !text || !data.status_label) { return false; }
    line.textContent = data.status_label;
    line.className = "order-status status-" + data.status;
    var hint = document.createElement("p");
    hint.className = "hint";
    if (data.is_under_review) { hint.setAttribute("data-testid", "under-review"); }
    else if (HINTS[data.status] === "hintWaiting") { hint.setAttribute("data-testid", "waiting"); }
    hint.textContent = text;
    next.replaceChildren(hint);
    page.dataset.status = data.status;
    return true;
  }
  function later(delay) { clearTimeout(timer); timer = setTimeout(poll, delay); }
  function poll() {
    timer = null;
    if (stopped || busy || document.hidden) { return; }  // a hidden page asks when shown again
    busy = true;
    tries += 1;
    last = Date.now();
    fetch(page.dataset.statusUrl, {credentials: "same-origin", cache: "no-store"})
      .then(function (response) {
        // Refused (the session that opened the page expired, or too many refusals): stop
        // asking; every refused request counts against this browser as page guessing.
        if (!response.ok) { return null; }
        return response.json();
      })
      .then(function (data) {
        busy = false;
        if (data === null) { stopped = true; return; }
        if (String(data.delivered) !== delivered || (data.status !== status && !patch(data))) {
          stopped = true; window.location.reload(); return;
        }
        if (data.is_final || tries >= MAX_TRIES) { stopped = true; return; }
        if (data.status !== status) { status = data.status; opened = Date.now(); slow = 0; later(FIRST); return; }
        later(nextDelay());
      })
      .catch(function () { busy = false; later(SLOWEST); });
  }
  function shown(restart) {
    if (stopped || busy || document.hidden || Date.now() - last < FAST) { return; }
    if (restart) { opened = Date.now(); slow = 0; }
    later(0);
  }
  document.addEventListener("visibilitychange", function () { shown(true); });
  window.addEventListener("focus", function () { shown(false); });
  later(FIRST);
})();
