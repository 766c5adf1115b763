/* Keyboard shortcuts of the inbox (listed in its "?" dialog, templates/inbox/index.html):
 *   j / k        next / previous conversation        r / n   reply / private note
 *   a            assign to me                        e       resolve
 *   /            the list's team filter              ?       this help
 *   l            add a label (the thread's label picker; type to pick, the choice applies at once)
 *   m            run a macro (the thread's macro picker, the same way)
 *   Ctrl+Enter   in the reply box: send              Esc     in the reply box: leave it
 * Letters do nothing while the operator types in a field. "/" in an empty reply box opens the saved
 * replies (saved-replies.js).
 *
 * Uses window.Parley (parley.js, and thread from thread.js).
 */
(function () {
  "use strict";

  var P = window.Parley;
  var $ = P.$;
  var $all = P.$all;

  function isTyping(target) {
    return target.closest("input, textarea, select, [contenteditable=true]");
  }

  function moveSelection(step) {
    var links = $all("#conversation-list .row-link");
    if (!links.length) return;
    var current = links.findIndex(function (link) { return link.closest(".row").hasAttribute("aria-current"); });
    var next = current === -1 ? 0 : Math.min(Math.max(current + step, 0), links.length - 1);
    links[next].focus();
    // Already open (j on the last row): no second request that could land after the next move's.
    if (next !== current) links[next].click();
  }

  function focusComposer(mode) {
    var form = $("[data-composer]");
    if (!form) return;
    var radio = form.querySelector("input[name=mode][value=" + mode + "]");
    if (radio) { radio.checked = true; P.thread.syncComposer(form); }
    form.querySelector("[data-composer-text]").focus();
  }

  function clickIfShown(selector) {
    var button = $(selector);
    if (button && !button.hidden && !button.disabled) button.click();
  }

  function openPicker(selector) {
    var select = $(selector);
    if (!select) return;
    select.focus();
    try { select.showPicker(); } catch (error) { /* focus alone: arrows or typing pick */ }
  }

  document.addEventListener("keydown", function (event) {
    if (event.target.matches("[data-composer-text]")) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        event.target.form.requestSubmit();
      } else if (event.key === "Escape") {
        event.target.blur();
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || isTyping(event.target)) return;
    var help = $("#shortcuts");
    switch (event.key) {
      case "j": moveSelection(1); break;
      case "k": moveSelection(-1); break;
      case "r": focusComposer("reply"); break;
      case "n": focusComposer("note"); break;
      case "a": clickIfShown("[data-action=assign-me]"); break;
      case "e": clickIfShown("[data-action=resolve]"); break;
      case "l": openPicker("[data-label-select]"); break;
      case "m": openPicker("[data-macro-select]"); break;
      case "/": var filter = $("#filter-team"); if (filter) filter.focus(); break;
      case "?": if (help && !help.open) help.showModal(); break;
      default: return;
    }
    event.preventDefault();
  });
})();
