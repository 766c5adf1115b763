/* Parley's operator UI, the core: htmx's settings, the helpers the other scripts share (window.Parley)
 * and the few behaviours any page may use (the data attributes below).
 *
 * templates/base.html loads, all with `defer` and in this order: htmx, its ws extension, this file,
 * then live.js (the websocket), thread.js (the open conversation), keyboard.js, saved-replies.js
 * and notifications.js. Deferred scripts run in document order once the page is parsed and before
 * DOMContentLoaded, which is when htmx initialises: the settings below are in place before htmx
 * reads them, and window.Parley exists before the other files use it.
 */
(function () {
  "use strict";

  // -- htmx's settings ------------------------------------------------------------------------------------

  // The Content-Security-Policy allows no eval and no inline script or style: htmx must not eval
  // (hx-on, js: values, trigger filters), run <script> tags from responses, or add its indicator
  // <style> (those rules are in parley.css).
  htmx.config.allowEval = false;
  htmx.config.allowScriptTags = false;
  htmx.config.includeIndicatorStyles = false;
  // Settling copies the listed attributes from the old element to its swapped-in twin with
  // setAttribute, which the policy refuses for ``style`` (style-src-attr): settle no styles.
  htmx.config.attributesToSettle = ["class", "width", "height"];
  htmx.config.wsReconnectDelay = function (retryCount) {
    return Math.min(500 * Math.pow(2, retryCount), 8000) * (0.5 + Math.random() / 2);
  };
  // Wire swapped-in content at once: htmx otherwise waits 20 ms (for settle transitions, which this
  // UI has none of) before new buttons and selects answer, and a quick operator's click is lost.
  htmx.config.defaultSettleDelay = 0;
  // 4xx answers carry a readable problem for the operator: show it (the server retargets it).
  // The other pages narrow this to form errors with their <meta name="htmx-config">
  // (templates/partials/pages_htmx_config.html), which htmx merges in when it initialises.
  htmx.config.responseHandling = [
    { code: "204", swap: false },
    { code: "[23]..", swap: true },
    { code: "4..", swap: true, error: false },
    { code: "...", swap: false, error: true },
  ];

  // -- what the other scripts share -----------------------------------------------------------------------

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $all(selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); }

  // Screen readers hear it (#announcer, a polite live region in base.html).
  function announce(text) {
    var region = $("#announcer");
    if (!region) return;
    region.textContent = "";
    window.setTimeout(function () { region.textContent = text; }, 50);
  }

  function currentThread() { return $("#thread"); }
  function currentConversation() {
    var thread = currentThread();
    return thread ? Number(thread.dataset.conversation) : null;
  }

  // live.js adds send(frame); thread.js adds thread; notifications.js adds notifications.
  window.Parley = {
    $: $,
    $all: $all,
    announce: announce,
    currentThread: currentThread,
    currentConversation: currentConversation,
  };

  // -- behaviours any page may use ------------------------------------------------------------------------

  // A plain form that asks before it does something that cannot be undone (deleting a saved reply).
  // htmx requests ask with hx-confirm; this form is a plain post because its answer is a redirect
  // with a flash message, a whole new page, which an htmx swap would put inside the form.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.matches("[data-confirm]") && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });

  // A select that submits its plain form when changed: the language choice, which Django's
  // set_language answers with a redirect to a page in the new language (<html lang> and dir
  // included), so it needs a real page load, not an htmx swap. The form's <noscript> button
  // does the same without JavaScript.
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches("[data-autosubmit]")) target.form.requestSubmit();
  });

  document.addEventListener("click", function (event) {
    // A button that closes the message it is in (a problem shown by the inbox).
    var dismiss = event.target.closest("[data-dismiss]");
    if (dismiss) dismiss.parentElement.remove();
    // A button that removes its table row (an example question in the knowledge base's editor).
    var removeRow = event.target.closest("[data-remove-row]");
    if (removeRow && removeRow.closest("tr")) removeRow.closest("tr").remove();
  });

  // Polling that only a visible tab needs (data-poll-visible; a trigger filter would need eval).
  document.body.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (document.hidden && elt && elt.matches && elt.matches("[data-poll-visible]")) event.preventDefault();
  });
})();
