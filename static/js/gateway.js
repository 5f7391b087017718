// Copy buttons on the billing portal's payment-link panel (inline scripts are blocked by the CSP).
(function () {
  if (window.lisGatewayCopy) return;
  window.lisGatewayCopy = true;
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-copy]");
    if (!button || !navigator.clipboard) return;
    navigator.clipboard.writeText(button.getAttribute("data-copy")).then(function () {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = "Copy"; }, 1500);
    });
  });
})();
