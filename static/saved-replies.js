/* Saved replies in the reply box: the picker.
 *
 * The "Saved replies" button, or "/" typed into an empty reply box, opens the picker under
 * [data-saved-picker]. Its search box loads the options from the server as you type (htmx,
 * debounced); arrows move the choice, Enter or a click inserts the saved reply, filled in for this
 * conversation, at the cursor (replacing a selection), and Escape closes. Nothing is sent. Works in
 * reply and private-note mode alike.
 *
 * Uses window.Parley (parley.js, and thread from thread.js).
 */
(function () {
  "use strict";

  var P = window.Parley;
  var $all = P.$all;

  function savedPicker(form) { return form ? form.querySelector("[data-saved-picker]") : null; }
  function savedSearch(picker) { return picker.querySelector("[data-saved-search]"); }
  function savedOptions(picker) { return $all("[role=option]", picker); }

  function setPickerOpen(form, open) {
    savedPicker(form).hidden = !open;
    var button = form.querySelector("[data-saved-replies-open]");
    if (button) button.setAttribute("aria-expanded", open ? "true" : "false");
  }

  function openSavedReplies(form, bySlash) {
    var picker = savedPicker(form);
    var text = form.querySelector("[data-composer-text]");
    if (!picker || !text) return;
    // Where the pick goes: the cursor (or selection) of the reply box as it was.
    picker.dataset.start = text.selectionStart;
    picker.dataset.end = text.selectionEnd;
    picker.dataset.bySlash = bySlash ? "true" : "";
    setPickerOpen(form, true);
    var search = savedSearch(picker);
    search.value = "";
    search.focus();
    htmx.trigger(search, "saved-replies-load");
  }

  function closeSavedReplies(form, focusText) {
    var picker = savedPicker(form);
    if (!picker || picker.hidden) return;
    var text = form.querySelector("[data-composer-text]");
    var search = savedSearch(picker);
    if (picker.dataset.bySlash && !text.value) {
      // Closed after "/" without a pick: keep what was typed, the operator may have meant it.
      text.value = "/" + search.value;
      picker.dataset.start = picker.dataset.end = text.value.length;
      P.thread.saveDraft();
    }
    delete picker.dataset.pickWhenLoaded;
    setPickerOpen(form, false);
    if (focusText) {
      text.focus();
      text.setSelectionRange(Number(picker.dataset.start), Number(picker.dataset.end));
    }
  }

  function chooseSavedReply(picker, index) {
    var options = savedOptions(picker);
    var search = savedSearch(picker);
    if (!options.length) { search.removeAttribute("aria-activedescendant"); return; }
    index = (index + options.length) % options.length;
    options.forEach(function (option, i) { option.setAttribute("aria-selected", i === index ? "true" : "false"); });
    search.setAttribute("aria-activedescendant", options[index].id);
    options[index].scrollIntoView({ block: "nearest" });
  }

  function chosenIndex(picker) {
    return savedOptions(picker).findIndex(function (option) { return option.getAttribute("aria-selected") === "true"; });
  }

  function insertSavedReply(form, option) {
    var picker = savedPicker(form);
    var text = form.querySelector("[data-composer-text]");
    picker.setAttribute("aria-busy", "true");
    fetch(option.dataset.savedReplyUrl, { credentials: "same-origin", headers: { Accept: "text/plain" } })
      .then(function (response) {
        if (!response.ok) throw new Error(String(response.status));
        return response.text();
      })
      .then(function (value) {
        picker.removeAttribute("aria-busy");
        picker.dataset.bySlash = "";
        closeSavedReplies(form, true);
        text.setRangeText(value, Number(picker.dataset.start), Number(picker.dataset.end), "end");
        text.dispatchEvent(new Event("input", { bubbles: true }));
        text.focus();
      })
      .catch(function () {
        picker.removeAttribute("aria-busy");
        P.announce(picker.dataset.failedText || "This saved reply could not be loaded.");
      });
  }

  function insertChosen(form) {
    var picker = savedPicker(form);
    var search = savedSearch(picker);
    var list = picker.querySelector("[data-saved-options]");
    if (!list || list.dataset.query !== search.value.trim()) {
      // The options for what was just typed are still on their way: insert the first when they come.
      picker.dataset.pickWhenLoaded = "true";
      htmx.trigger(search, "saved-replies-load");
      return;
    }
    var options = savedOptions(picker);
    var index = chosenIndex(picker);
    if (options.length) insertSavedReply(form, options[index === -1 ? 0 : index]);
  }

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (event.isComposing || event.ctrlKey || event.metaKey || event.altKey) return;
    if (target.matches("[data-composer-text]")) {
      if (event.key === "/" && target.value === "" && savedPicker(target.form)) {
        event.preventDefault();
        openSavedReplies(target.form, true);
      }
      return;
    }
    if (!target.matches("[data-saved-search]")) return;
    var form = target.closest("[data-composer]");
    var picker = savedPicker(form);
    if (event.key === "ArrowDown") chooseSavedReply(picker, chosenIndex(picker) + 1);
    else if (event.key === "ArrowUp") chooseSavedReply(picker, Math.max(chosenIndex(picker), 0) - 1);
    else if (event.key === "Enter") insertChosen(form);
    else if (event.key === "Escape") closeSavedReplies(form, true);
    else return;
    event.preventDefault();
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-saved-replies-open]");
    if (button) {
      var form = button.closest("[data-composer]");
      if (savedPicker(form).hidden) openSavedReplies(form, false);
      else closeSavedReplies(form, true);
      return;
    }
    var option = event.target.closest("[data-saved-picker] [role=option]");
    if (option) {
      var picker = option.closest("[data-saved-picker]");
      chooseSavedReply(picker, savedOptions(picker).indexOf(option));
      insertSavedReply(option.closest("[data-composer]"), option);
      return;
    }
    // A click elsewhere closes an open picker, leaving the focus where the click put it.
    $all("[data-saved-picker]:not([hidden])").forEach(function (picker) {
      if (!picker.contains(event.target)) closeSavedReplies(picker.closest("[data-composer]"), false);
    });
  });

  document.body.addEventListener("htmx:afterSwap", function (event) {
    var results = event.detail.target;
    if (!results.matches || !results.matches("[data-saved-results]")) return;
    var picker = results.closest("[data-saved-picker]");
    var search = savedSearch(picker);
    chooseSavedReply(picker, 0);
    var list = results.querySelector("[data-saved-options]");
    if (picker.dataset.pickWhenLoaded && list && list.dataset.query === search.value.trim()) {
      delete picker.dataset.pickWhenLoaded;
      var first = savedOptions(picker)[0];
      if (first) insertSavedReply(picker.closest("[data-composer]"), first);
    }
  });
})();
