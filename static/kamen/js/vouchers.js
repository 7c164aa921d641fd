// Voucher cards: count down and refresh the 30-second dynamic code.
(function () {
  document.querySelectorAll("[data-dynamic-url]").forEach(function (node) {
    var card = node.closest(".voucher");
    var counter = card.querySelector(".seconds-left");
    var left = parseInt(counter.textContent, 10) || 30;
    function refresh() {
      fetch(node.dataset.dynamicUrl, {credentials: "same-origin", cache: "no-store"})
        .then(function (response) { return response.json(); })
        .then(function (data) {
          if (data.is_redeemed) { window.location.reload(); return; }
          node.textContent = data.code;
          left = data.seconds_left;
        })
        .catch(function () {});
    }
    setInterval(function () {
      left -= 1;
      if (left <= 0) { left = 30; refresh(); }
      counter.textContent = left;
    }, 1000);
  });
})();
