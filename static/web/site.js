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

  // An evidence form's "Add a row" button (hidden until this script runs) appends a blank row
  // from the formset's empty form and counts it in the management form.
  document.querySelectorAll("[data-add-row]").forEach(function (button) {
    var prefix = button.getAttribute("data-add-row");
    var total = document.getElementById("id_" + prefix + "-TOTAL_FORMS");
    var template = document.getElementById("row-template");
    var rows = document.getElementById("rows");
    if (!total || !template || !rows) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      var index = parseInt(total.value, 10);
      var html = template.innerHTML.replace(/__prefix__/g, String(index));
      rows.insertAdjacentHTML("beforeend", html);
      total.value = String(index + 1);
      var added = rows.lastElementChild;
      var first = added && added.querySelector("input, select, textarea");
      if (first) first.focus();
    });
  });
})();
