// Order page: copy buttons, and a reload when the order's status or deliveries change.
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
        if (data.status !== status || String(data.delivered) !== delivered) { stopped = true; window.location.reload(); return; }
        if (data.is_final || tries >= MAX_TRIES) { stopped = true; return; }
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
