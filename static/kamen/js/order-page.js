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
  var status = page.dataset.status, delivered = page.dataset.delivered, tries = 0;
  function poll() {
    tries += 1;
    fetch(page.dataset.statusUrl, {credentials: "same-origin", cache: "no-store"})
      .then(function (response) {
        // Refused (the session that opened the page expired, or too many refusals): stop
        // asking; every refused request counts against this browser as page guessing.
        if (!response.ok) { return null; }
        return response.json();
      })
      .then(function (data) {
        if (data === null) { return; }
        if (data.status !== status || String(data.delivered) !== delivered) { window.location.reload(); return; }
        if (!data.is_final && tries < 600) { setTimeout(poll, tries < 30 ? 1000 : 5000); }
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  // Goods usually arrive within a second of paying; each poll is one small query
  // (bench/http_storm.py waits the same way).
  setTimeout(poll, 500);
})();
