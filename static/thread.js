/* The open conversation in the inbox: which row of the list is open, the thread's scrolling, the
 * reply box (reply or private note, the channel it follows, "reply to this"), drafts that survive
 * refreshes and navigation (sessionStorage), typing frames, and the way back to the list on a
 * narrow screen.
 *
 * Uses window.Parley (parley.js, and send from live.js) and offers Parley.thread: refresh() fetches
 * the open thread again, keeping the draft; saveDraft(); syncComposer(form).
 */
(function () {
  "use strict";

  var P = window.Parley;
  var $ = P.$;
  var $all = P.$all;

  var TYPING_EVERY = 2000;

  function markCurrentRow() {
    var id = P.currentConversation();
    $all("#conversation-list .row").forEach(function (row) {
      if (Number(row.dataset.conversation) === id) row.setAttribute("aria-current", "true");
      else row.removeAttribute("aria-current");
    });
    // On a narrow screen "has-thread" shows the thread instead of the list. Only showing a thread
    // sets it (onThreadShown); a swap elsewhere (a live refresh of the list) must not take an
    // operator who went back to the list into the thread again.
    var inbox = $("#inbox");
    if (inbox && id === null) inbox.classList.remove("has-thread");
  }

  function refreshThread() {
    var thread = P.currentThread();
    if (!thread) return;
    saveDraft();
    var inbox = $("#inbox");
    var onList = inbox !== null && !inbox.classList.contains("has-thread");
    htmx.ajax("GET", thread.dataset.threadUrl, { target: "#thread-pane", swap: "innerHTML" }).then(function () {
      if (onList) inbox.classList.remove("has-thread");  // refreshed where it was: the list stays in view
    });
  }

  // -- drafts survive refreshes and navigation -------------------------------------------------------

  function draftKey(id) { return "parley-draft-" + id; }
  function saveDraft() {
    var text = $("[data-composer-text]");
    var id = P.currentConversation();
    if (text && id) sessionStorage.setItem(draftKey(id), text.value);
  }
  function restoreDraft() {
    var text = $("[data-composer-text]");
    var id = P.currentConversation();
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
    var inbox = $("#inbox");
    if (inbox) inbox.classList.add("has-thread");
    var row = $("#conversation-list .row[aria-current]");
    if (row) row.scrollIntoView({ block: "nearest" });
    restoreDraft();
    syncComposer($("[data-composer]"));
    hideOwnAssign();
    scrollToEnd(true);
    P.send({ type: "view", conversation: P.currentConversation() });
  }

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

  // -- htmx events --------------------------------------------------------------------------------------

  document.body.addEventListener("htmx:wsAfterMessage", function () {
    hideOwnAssign();
    scrollToEnd(false);
    followCustomerChannel();
  });

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

  // A reply or note went out: forget its draft. The answer replaces the reply box, so htmx reports
  // the request from the box's parent: the box itself is the request's element (requestConfig.elt).
  document.body.addEventListener("htmx:afterRequest", function (event) {
    var elt = event.detail.requestConfig ? event.detail.requestConfig.elt : event.detail.elt;
    if (elt && elt.matches && elt.matches("[data-composer]") && event.detail.successful && event.detail.xhr.status < 300) {
      var id = P.currentConversation();
      if (id) sessionStorage.removeItem(draftKey(id));
      var box = $("[data-composer-text]");
      if (box) box.focus();
      scrollToEnd(true);
    }
  });

  // Back and forward restore a page from htmx's history cache: tell the server what is shown now.
  document.body.addEventListener("htmx:historyRestore", function () {
    if (P.currentThread()) onThreadShown();
    else { markCurrentRow(); P.send({ type: "view", conversation: null }); }
  });

  // -- the reply box ------------------------------------------------------------------------------------

  document.addEventListener("change", function (event) {
    if (event.target.matches("[data-composer] input[name=mode]")) syncComposer(event.target.form);
  });

  var lastTyping = 0;
  document.addEventListener("input", function (event) {
    if (!event.target.matches("[data-composer-text]")) return;
    saveDraft();
    var now = Date.now();
    if (now - lastTyping > TYPING_EVERY) {
      lastTyping = now;
      P.send({ type: "typing" });
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

  // On a narrow screen the list and the thread are separate views: "back" shows the list again.
  document.addEventListener("click", function (event) {
    var back = event.target.closest("[data-back]");
    if (back && window.matchMedia("(max-width: 800px)").matches) {
      event.preventDefault();
      var inbox = $("#inbox");
      if (inbox) inbox.classList.remove("has-thread");
      var row = $("#conversation-list .row[aria-current] .row-link");
      if (row) row.focus();
    }
  });

  // Deferred scripts run before DOMContentLoaded, after which htmx has initialised too.
  document.addEventListener("DOMContentLoaded", function () {
    if (P.currentThread()) onThreadShown();
    else markCurrentRow();
  });

  P.thread = { refresh: refreshThread, saveDraft: saveDraft, syncComposer: syncComposer };
})();
