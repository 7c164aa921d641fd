// QR payment page: once the order is no longer waiting for payment, go to the order page.
(function () {
  var page = document.querySelector("[data-testid=pay-qr]"), tries = 0;
  if (!page) { return; }
  function poll() {
    tries += 1;
    fetch(page.dataset.statusUrl, {credentials: "same-origin", cache: "no-store"})
      .then(function (response) { return response.json(); })
      .then(function (data) {
        if (data.status !== "pending_payment") { window.location.href = page.dataset.orderUrl; return; }
        if (tries < 300) { setTimeout(poll, 3000); }
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  setTimeout(poll, 3000);
})();
