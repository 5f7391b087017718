// The laboratory floor, keyboard first: the receipt scan box and the result entry grid.
// No inline script (the CSP forbids it); without this file both pages still work as plain forms.
(function () {
  "use strict";

  // --- Sample receipt: each scan (barcode + Enter from a keyboard-wedge scanner) is sent on its
  // own, so scans in quick succession never wait for or overwrite each other. A "checking" line
  // goes to the top of the batch at once and the server's answer replaces it; the box is
  // cleared and keeps the focus for the next tube.
  document.addEventListener("submit", function (evt) {
    var form = evt.target;
    if (!form || form.id !== "scan-form" || !window.htmx) return;
    evt.preventDefault();
    var box = form.elements.barcode;
    var barcode = box.value.trim();
    var checked = form.querySelector("input[name=action]:checked");
    box.value = "";
    box.focus();
    if (!barcode) return;
    var batch = document.getElementById("batch");
    var line = document.createElement("li");
    line.className = "scan-line pending";
    line.textContent = barcode + " · checking…";
    batch.insertBefore(line, batch.firstChild);
    window.htmx.ajax("POST", form.getAttribute("action"), {
      source: line, target: line, swap: "outerHTML",
      values: {barcode: barcode, action: checked ? checked.value : "receive"}
    });
  });

  function scanFailed(evt) {
    var line = evt.detail && evt.detail.elt;
    if (line && line.classList && line.classList.contains("pending")) {
      line.className = "scan-line refused";
      line.textContent = line.textContent.replace("checking…", "not recorded (no answer from the server): scan it again");
    }
  }
  document.addEventListener("htmx:responseError", scanFailed);
  document.addEventListener("htmx:sendError", scanFailed);

  document.addEventListener("change", function (evt) {
    var t = evt.target;
    if (t && t.name === "action" && t.form && t.form.id === "scan-form") t.form.elements.barcode.focus();
  });

  // --- Result entry grid: a row is saved when Enter is pressed in it (the focus then moves to
  // the next row's value) or when the focus leaves the row after a change. Tab moves between
  // the inputs as usual (the Save buttons are out of the tab order).
  function rowOf(el) {
    return el && el.closest ? el.closest("tr.result-row") : null;
  }

  function save(row) {
    delete row.dataset.dirty;
    var form = row.querySelector("form");
    // A "submit" event for htmx only: never a native submission (a row being swapped out has
    // lost its htmx handlers, and would otherwise navigate away).
    if (form && row.isConnected && window.htmx) window.htmx.trigger(form, "submit");
  }

  function focusNext(row) {
    for (var next = row.nextElementSibling; next; next = next.nextElementSibling) {
      var input = next.querySelector(".result-value");
      if (input) {
        input.focus();
        if (input.select) input.select();
        return;
      }
    }
  }

  // "input" fires for typing and for a choice picked in a select (not for Enter itself).
  document.addEventListener("input", function (evt) {
    var row = rowOf(evt.target);
    if (row && evt.target.form) row.dataset.dirty = "1";
  });

  document.addEventListener("keydown", function (evt) {
    if (evt.key !== "Enter" || evt.isComposing) return;
    var row = rowOf(evt.target);
    if (!row || evt.target.tagName === "BUTTON") return;
    evt.preventDefault();
    if (row.dataset.dirty) save(row);
    focusNext(row);
  });

  document.addEventListener("focusout", function (evt) {
    var row = rowOf(evt.target);
    if (!row || !row.dataset.dirty || !row.isConnected || row.contains(evt.relatedTarget)) return;
    save(row);
  });
})();
