// Card-key import page: follow the job's progress; reload when its status changes.
(function () {
  var bar = document.getElementById("import-progress");
  if (!bar) { return; }
  var text = document.getElementById("import-progress-text");
  var status = bar.dataset.status;
  (function poll() {
    fetch(bar.dataset.statusUrl, {credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (data) {
        bar.max = data.total || 1; bar.value = data.done;
        text.textContent = data.done + " / " + data.total;
        if (data.status === status) { setTimeout(poll, 1000); } else { window.location.reload(); }
      })
      .catch(function () { setTimeout(poll, 3000); });
  })();
})();
