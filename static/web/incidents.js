// Progressive enhancement: the time left before a break-glass must be confirmed, or before it
// ends, counts down each second (the server wrote the time left when it rendered the page).
(function () {
  "use strict";
  var clocks = document.querySelectorAll("[data-countdown]");
  if (!clocks.length) return;
  function tick() {
    var now = Date.now();
    clocks.forEach(function (clock) {
      var left = Math.max(0, Math.floor((Date.parse(clock.getAttribute("data-countdown")) - now) / 1000));
      var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
      clock.textContent = left === 0 ? "time is up" :
        (h ? h + " h " : "") + (h || m ? m + " min " : "") + s + " s left";
    });
  }
  tick();
  setInterval(tick, 1000);
})();
