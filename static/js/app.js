// Small behaviours htmx does not cover. No inline scripts (the CSP forbids them).
document.addEventListener("htmx:responseError", function (evt) {
  // A 4xx/5xx that htmx does not swap: tell the user instead of failing silently.
  var box = document.getElementById("flash");
  if (!box) return;
  var p = document.createElement("p");
  p.className = "flash error";
  p.setAttribute("role", "alert");
  var status = evt.detail.xhr.status;
  p.textContent = status === 403 ? "You are not allowed to do that." :
    status === 429 ? "Too many attempts. Wait a minute and try again." :
    "The request failed (" + status + "). Please try again.";
  box.replaceChildren(p);
});
document.addEventListener("htmx:sendError", function () {
  var box = document.getElementById("flash");
  if (box) box.innerHTML = '<p class="flash error" role="alert">No connection to the server. Check the network and try again.</p>';
});

// Order form, keyboard first: Enter in the test search adds the best match; after a test is
// added or removed the search box is cleared and takes the focus for the next one.
document.addEventListener("keydown", function (evt) {
  if (evt.key !== "Enter" || !evt.target || evt.target.id !== "test-q") return;
  evt.preventDefault();
  var first = document.querySelector("#found .pick-item");
  if (first) first.click();
});
document.addEventListener("htmx:afterSwap", function (evt) {
  var path = (evt.detail.pathInfo && evt.detail.pathInfo.requestPath) || "";
  var isLines = (evt.detail.target && evt.detail.target.id === "lines") || path.indexOf("/orders/lines") !== -1;
  if (!isLines) return;
  var box = document.getElementById("test-q");
  var found = document.getElementById("found");
  if (found) found.replaceChildren();
  if (box) { box.value = ""; box.focus(); }
});
