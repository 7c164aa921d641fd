// Voucher counter: camera scanning where the browser has BarcodeDetector; typing always works.
(function () {
  if (!("BarcodeDetector" in window) || !navigator.mediaDevices) { return; }
  var button = document.getElementById("scan-button");
  var video = document.getElementById("scan-video");
  var field = document.getElementById("id_code");
  if (!button || !video || !field) { return; }
  button.hidden = false;
  button.addEventListener("click", function () {
    var detector = new BarcodeDetector({formats: ["qr_code"]});
    navigator.mediaDevices.getUserMedia({video: {facingMode: "environment"}}).then(function (stream) {
      video.srcObject = stream;
      video.style.display = "block";
      video.play();
      function stop() { stream.getTracks().forEach(function (track) { track.stop(); }); video.style.display = "none"; }
      function tick() {
        detector.detect(video).then(function (codes) {
          if (codes.length) { field.value = codes[0].rawValue; stop(); document.getElementById("id_dynamic_code").focus(); return; }
          requestAnimationFrame(tick);
        }).catch(function () { requestAnimationFrame(tick); });
      }
      tick();
    }).catch(function () { button.hidden = true; });
  });
})();
