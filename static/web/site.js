// Progressive enhancement only: every action works without this file. A link or button with
// data-dialog="<id>" opens that <dialog> instead of navigating to its confirmation page.
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var trigger = event.target.closest("[data-dialog]");
    if (!trigger) return;
    var dialog = document.getElementById(trigger.getAttribute("data-dialog"));
    if (!dialog || typeof dialog.showModal !== "function") return;
    event.preventDefault();
    dialog.showModal();
    var first = dialog.querySelector("textarea, input:not([type=hidden]), select, button");
    if (first) first.focus();
  });
})();
