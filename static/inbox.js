/* Parley operator UI: the live connection, catch-up on reconnect, keyboard, presence, drafts.
 *
 * The page holds one websocket (#live, htmx ws extension). HTML frames are out-of-band swaps done by
 * htmx; JSON frames ({"type": ...}) are handled here: list pings, typing, refusals, own presence.
 */
(function () {
  "use strict";

  var IDLE_AFTER = 5 * 60 * 1000; // no input this long: away
  var HEARTBEAT = 60 * 1000;
  var TYPING_EVERY = 2000;

  // The Content-Security-Policy allows no eval and no inline script or style: htmx must not eval
  // (hx-on, js: values, trigger filters), run <script> tags from responses, or add its indicator
  // <style> (those rules are in inbox.css). This runs before htmx initialises (DOMContentLoaded).
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
  htmx.config.responseHandling = [
    { code: "204", swap: false },
    { code: "[23]..", swap: true },
    { code: "4..", swap: true, error: false },
    { code: "...", swap: false, error: true },
  ];

  var socket = null;
  var connected = false;
  var everOpened = false;
  var state = "online";
  var lastInput = Date.now();

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $all(selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); }

  function send(frame) {
    // Frames describe the present (typing, presence, view): never queue them for later.
    if (socket && connected) socket.send(JSON.stringify(frame));
  }

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

  // -- the list: refreshed (coalesced) when something changes ------------------------------------

  var refreshTimer = null;
  var lastRefresh = 0;

  function refreshList() {
    var list = $("#inbox-list");
    if (!list) return;
    lastRefresh = Date.now();
    htmx.ajax("GET", list.dataset.listUrl, { target: "#inbox-list", swap: "outerHTML" });
  }

  var refreshWhenVisible = false;

  function scheduleListRefresh() {
    // A hidden tab catches up when it is shown again, rather than on every change.
    if (document.hidden) { refreshWhenVisible = true; return; }
    if (refreshTimer) return;
    var wait = Math.max(250, 1000 - (Date.now() - lastRefresh));
    refreshTimer = window.setTimeout(function () { refreshTimer = null; refreshList(); }, wait);
  }

  function refreshThread() {
    var thread = currentThread();
    if (!thread) return;
    saveDraft();
    htmx.ajax("GET", thread.dataset.threadUrl, { target: "#thread-pane", swap: "innerHTML" });
  }

  function markCurrentRow() {
    var id = currentConversation();
    $all("#conversation-list .row").forEach(function (row) {
      if (Number(row.dataset.conversation) === id) row.setAttribute("aria-current", "true");
      else row.removeAttribute("aria-current");
    });
    var inbox = $("#inbox");
    if (inbox) inbox.classList.toggle("has-thread", id !== null);
  }

  // -- drafts survive refreshes and navigation -------------------------------------------------------

  function draftKey(id) { return "parley-draft-" + id; }
  function saveDraft() {
    var text = $("[data-composer-text]");
    var id = currentConversation();
    if (text && id) sessionStorage.setItem(draftKey(id), text.value);
  }
  function restoreDraft() {
    var text = $("[data-composer-text]");
    var id = currentConversation();
    if (text && id && !text.value) text.value = sessionStorage.getItem(draftKey(id)) || "";
  }

  // -- the thread -----------------------------------------------------------------------------------------

  function scrollToEnd(force) {
    var scroller = $("#timeline-scroll");
    if (!scroller) return;
    var nearEnd = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 160;
    if (force || nearEnd) scroller.scrollTop = scroller.scrollHeight;
  }

  function syncComposer(form) {
    if (!form) return;
    var note = form.querySelector("input[name=mode][value=note]");
    var isNote = note && note.checked;
    form.classList.toggle("mode-note", !!isNote);
    var text = form.querySelector("[data-composer-text]");
    var placeholder = text && (isNote ? text.dataset.notePlaceholder : text.dataset.replyPlaceholder);
    if (placeholder) text.placeholder = placeholder;
    var button = form.querySelector("[data-send]");
    if (button) button.disabled = !isNote && button.hasAttribute("data-reply-blocked");
    var picker = form.querySelector(".channel-picker");
    if (picker) picker.hidden = !!isNote;
  }

  function hideOwnAssign() {
    var me = document.body.dataset.me;
    $all(".thread-header").forEach(function (header) {
      var button = header.querySelector("[data-action=assign-me]");
      if (button) button.hidden = header.dataset.assignee === me;
    });
  }

  function onThreadShown() {
    markCurrentRow();
    var row = $("#conversation-list .row[aria-current]");
    if (row) row.scrollIntoView({ block: "nearest" });
    restoreDraft();
    syncComposer($("[data-composer]"));
    hideOwnAssign();
    scrollToEnd(true);
    send({ type: "view", conversation: currentConversation() });
  }

  // -- htmx events --------------------------------------------------------------------------------------

  document.body.addEventListener("htmx:wsOpen", function (event) {
    socket = event.detail.socketWrapper;
    connected = true;
    document.body.dataset.live = "online";
    $("#offline-banner").hidden = true;
    send({ type: "presence", state: state });
    send({ type: "view", conversation: currentConversation() });
    if (everOpened) {
      // Back after a break: fetch again everything on screen; never show stale data silently.
      refreshList();
      refreshThread();
      announce(document.body.dataset.reconnectedText || "Reconnected");
    }
    everOpened = true;
  });

  document.body.addEventListener("htmx:wsClose", function (event) {
    connected = false;
    var code = event.detail && event.detail.event ? event.detail.event.code : 0;
    if (code === 4401 || code === 4403) {
      // Signed out, or the account was deactivated: the server will not take this socket back.
      // Load the page again, which leads to the login page.
      window.location.reload();
      return;
    }
    document.body.dataset.live = "offline";
    var banner = $("#offline-banner");
    if (banner) banner.hidden = false;
  });

  document.body.addEventListener("htmx:wsBeforeMessage", function (event) {
    var data = event.detail.message;
    if (typeof data !== "string") return;
    if (data.charAt(0) !== "{") {
      // HTML: htmx swaps it out of band. Drop fragments for things this page does not show
      // (another page, another thread) rather than let htmx report a missing target.
      if (!hasTarget(data)) event.preventDefault();
      return;
    }
    event.preventDefault();
    var frame;
    try { frame = JSON.parse(data); } catch (e) { return; }
    handleFrame(frame);
  });

  document.body.addEventListener("htmx:wsAfterMessage", function () {
    hideOwnAssign();
    scrollToEnd(false);
    followCustomerChannel();
  });

  // The reply box follows the channel the customer last wrote on, live: when their newest message
  // in the open thread came on another channel than the box was made for, fetch the box again for
  // that channel (keeping the text and the mode). A channel the operator picked stays picked.
  function followCustomerChannel() {
    var form = $("[data-composer]");
    if (!form || form.hasAttribute("data-picked") || !form.dataset.composerUrl) return;
    var messages = $all("#thread-pane li.msg.dir-in.kind-message[data-channel]");
    var newest = messages[messages.length - 1];
    if (!newest || newest.dataset.channel === form.dataset.follows) return;
    form.dataset.follows = newest.dataset.channel;  // once per change, whatever the answer
    var text = form.querySelector("[data-composer-text]");
    var note = form.querySelector("input[name=mode][value=note]");
    htmx.ajax("GET", form.dataset.composerUrl, {
      target: form,
      swap: "outerHTML",
      values: { auto: "1", text: text ? text.value : "", mode: note && note.checked ? "note" : "reply" },
    });
  }

  function hasTarget(html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    return Array.prototype.some.call(template.content.children, function (element) {
      var oob = element.getAttribute("hx-swap-oob") || "true";
      var selector = oob.indexOf(":") > 0 ? oob.slice(oob.indexOf(":") + 1) : "#" + CSS.escape(element.id);
      return selector !== "#" && document.querySelector(selector) !== null;
    });
  }

  var typingTimer = null;
  function handleFrame(frame) {
    if (frame.type === "changed") {
      // One ping names every conversation that changed since the last (the server coalesces them).
      scheduleListRefresh();
      var current = currentConversation();
      var messages = frame.messages || [];
      var notify = null;
      messages.forEach(function (message) {
        if (message.conversation === current) {
          var typingLine = $("#typing-" + message.conversation);
          if (typingLine) typingLine.textContent = "";
        }
        if (message.direction === "in" && message.kind === "message" && (!notify || message.mine || message.conversation === current)) {
          notify = message;
        }
      });
      if (notify) {
        var title = document.body.dataset.newMessageText || "New message";
        announce(title);
        if (document.hidden && window.Notification && Notification.permission === "granted" && (notify.mine || notify.conversation === current)) {
          new Notification(title, { tag: "parley-" + notify.conversation });
        }
      }
    } else if (frame.type === "typing") {
      var line = $("#typing-" + frame.conversation);
      if (!line) return;
      line.textContent = (document.body.dataset.typingText || "%s is typing…").replace("%s", frame.name);
      window.clearTimeout(typingTimer);
      typingTimer = window.setTimeout(function () { line.textContent = ""; }, 4000);
    } else if (frame.type === "access") {
      // The operator's teams changed: what this page shows was chosen under the old ones.
      refreshList();
      refreshThread();
    } else if (frame.type === "refused") {
      announce(document.body.dataset.refusedText || "This conversation is not available.");
    } else if (frame.type === "assigned") {
      notifyAssigned(frame);
    } else if (frame.type === "presence") {
      var dot = $("#my-presence");
      if (dot) dot.dataset.presence = frame.presence;
    }
  }

  // A conversation given to this operator (by routing or a teammate): a desktop notification when
  // they allowed them and are not looking at it already; clicking it opens the conversation.
  function notifyAssigned(frame) {
    announce(frame.title);
    if (!window.Notification || Notification.permission !== "granted") return;
    if (!document.hidden && frame.conversation === currentConversation()) return;
    var notification = new Notification(frame.title, { body: frame.body || "", tag: "parley-assigned-" + frame.conversation });
    notification.onclick = function () {
      window.focus();
      notification.close();
      var link = $("#row-" + frame.conversation + " .row-link");
      if (link) link.click();
      else window.location.href = frame.url;
    };
  }

  // A message may arrive twice (the reply's own response and the socket): keep one, the newest.
  document.body.addEventListener("htmx:oobBeforeSwap", function (event) {
    var fragment = event.detail.fragment;
    if (!fragment || !fragment.children) return;
    var children = Array.prototype.slice.call(fragment.children);
    var fresh = children.filter(function (child) {
      var existing = child.id && document.getElementById(child.id);
      if (existing && existing !== child) {
        existing.replaceWith(child);
        htmx.process(child);
        return false;
      }
      return true;
    });
    if (children.length && !fresh.length) event.detail.shouldSwap = false;
  });

  document.body.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (target.id === "thread-pane") onThreadShown();
    else if (target.matches && target.matches("[data-composer]")) { syncComposer(target); }
    markCurrentRow();
  });

  document.body.addEventListener("htmx:afterSettle", function () {
    syncComposer($("[data-composer]"));
    hideOwnAssign();
  });

  document.body.addEventListener("htmx:afterRequest", function (event) {
    var elt = event.detail.elt;
    if (elt && elt.matches && elt.matches("[data-composer]") && event.detail.successful && event.detail.xhr.status < 300) {
      var id = currentConversation();
      if (id) sessionStorage.removeItem(draftKey(id));
      var box = $("[data-composer-text]");
      if (box) box.focus();
      scrollToEnd(true);
    }
  });

  // Polling that only a visible tab needs (data-poll-visible; a trigger filter would need eval).
  document.body.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (document.hidden && elt && elt.matches && elt.matches("[data-poll-visible]")) event.preventDefault();
  });

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && refreshWhenVisible) { refreshWhenVisible = false; refreshList(); }
  });

  // -- forms ---------------------------------------------------------------------------------------------

  // A form that asks before it does something that cannot be undone (deleting a saved reply).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.matches("[data-confirm]") && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches("[data-autosubmit]")) target.form.requestSubmit();
    if (target.matches("[data-composer] input[name=mode]")) syncComposer(target.form);
  });

  var lastTyping = 0;
  document.addEventListener("input", function (event) {
    if (!event.target.matches("[data-composer-text]")) return;
    saveDraft();
    var now = Date.now();
    if (now - lastTyping > TYPING_EVERY) {
      lastTyping = now;
      send({ type: "typing" });
    }
  });

  // "Reply to this" on a customer's message: the reply box remembers which one (sent as reply_to).
  document.addEventListener("click", function (event) {
    var quote = event.target.closest("[data-reply-to]");
    var cancel = event.target.closest("[data-reply-cancel]");
    var form = $("[data-composer]");
    if (!form || (!quote && !cancel)) return;
    var input = form.querySelector("[data-reply-to-input]");
    var line = form.querySelector("[data-replying]");
    if (!input || !line) return;
    input.value = quote ? quote.dataset.replyTo : "";
    line.querySelector("[data-replying-text]").textContent = quote ? quote.dataset.replyText : "";
    line.hidden = !quote;
    var text = form.querySelector("[data-composer-text]");
    if (quote && text) text.focus();
  });

  document.addEventListener("click", function (event) {
    var dismiss = event.target.closest("[data-dismiss]");
    if (dismiss) dismiss.parentElement.remove();
    // A button that removes its table row (an example question in the knowledge base's editor).
    var removeRow = event.target.closest("[data-remove-row]");
    if (removeRow && removeRow.closest("tr")) removeRow.closest("tr").remove();
    var back = event.target.closest("[data-back]");
    if (back && window.matchMedia("(max-width: 800px)").matches) {
      event.preventDefault();
      var inbox = $("#inbox");
      if (inbox) inbox.classList.remove("has-thread");
      var row = $("#conversation-list .row[aria-current] .row-link");
      if (row) row.focus();
    }
  });

  // -- keyboard ------------------------------------------------------------------------------------------

  function isTyping(target) {
    return target.closest("input, textarea, select, [contenteditable=true]");
  }

  function moveSelection(step) {
    var links = $all("#conversation-list .row-link");
    if (!links.length) return;
    var current = links.findIndex(function (link) { return link.closest(".row").hasAttribute("aria-current"); });
    var next = current === -1 ? 0 : Math.min(Math.max(current + step, 0), links.length - 1);
    links[next].focus();
    links[next].click();
  }

  function focusComposer(mode) {
    var form = $("[data-composer]");
    if (!form) return;
    var radio = form.querySelector("input[name=mode][value=" + mode + "]");
    if (radio) { radio.checked = true; syncComposer(form); }
    form.querySelector("[data-composer-text]").focus();
  }

  function clickIfShown(selector) {
    var button = $(selector);
    if (button && !button.hidden && !button.disabled) button.click();
  }

  document.addEventListener("keydown", function (event) {
    lastInput = Date.now();
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
      case "/": var filter = $("#filter-team"); if (filter) filter.focus(); break;
      case "?": if (help && !help.open) help.showModal(); break;
      default: return;
    }
    event.preventDefault();
  });

  // -- saved replies: the reply box's picker ----------------------------------------------------------
  //
  // The "Saved replies" button, or "/" typed into an empty reply box, opens the picker under
  // [data-saved-picker]. Its search box loads the options from the server as you type (htmx,
  // debounced); arrows move the choice, Enter or a click inserts the saved reply, filled in for this
  // conversation, at the cursor (replacing a selection), and Escape closes. Nothing is sent. Works in
  // reply and private-note mode alike.

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
      saveDraft();
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
        announce(picker.dataset.failedText || "This saved reply could not be loaded.");
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

  // -- presence: active, idle, heartbeat --------------------------------------------------------------

  ["mousemove", "pointerdown", "focus", "scroll"].forEach(function (name) {
    window.addEventListener(name, function () {
      lastInput = Date.now();
      if (state !== "online") { state = "online"; send({ type: "presence", state: state }); }
    }, { passive: true });
  });

  window.setInterval(function () {
    var idle = Date.now() - lastInput > IDLE_AFTER;
    var next = idle ? "away" : "online";
    if (next !== state) state = next;
    send({ type: "presence", state: state });
  }, HEARTBEAT);

  // Back and forward restore a page from htmx's history cache: tell the server what is shown now.
  document.body.addEventListener("htmx:historyRestore", function () {
    if (currentThread()) onThreadShown();
    else { markCurrentRow(); send({ type: "view", conversation: null }); }
  });

  function offerNotifications() {
    var button = $("[data-enable-notifications]");
    if (!button || !window.Notification) return;
    button.hidden = Notification.permission !== "default";
    button.addEventListener("click", function () {
      Notification.requestPermission().then(function () { button.hidden = true; });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    offerNotifications();
    if (currentThread()) onThreadShown();
    else markCurrentRow();
  });
  if (document.readyState !== "loading") {
    if (currentThread()) onThreadShown();
  }
})();
