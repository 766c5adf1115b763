/* Parley operator UI: keyboard, live connection state, catch-up on reconnect. */
(function () {
  "use strict";
  document.addEventListener("change", function (event) {
    if (event.target.matches("[data-autosubmit]")) event.target.form.requestSubmit();
  });
})();
