/* The live connection: the page's one websocket (#live in base.html, htmx's ws extension).
 *
 * HTML frames are out-of-band swaps that htmx does; JSON frames ({"type": ...}) are handled here:
 * list pings, typing, access changes, refusals, assignments, the operator's own presence. When the
 * socket closes the page says it is offline; when it opens again the page fetches again what it
 * shows (the list and the open thread), so nothing stale is shown silently. A close the server
 * will not take back (signed out, account deactivated) reloads the page, which leads to log in.
 * Presence: the operator is online while they use the page, away after five idle minutes.
 *
 * Uses window.Parley (parley.js) and offers Parley.send(frame).
 */
(function () {
  "use strict";

  var P = window.Parley;
  var $ = P.$;

  var IDLE_AFTER = 5 * 60 * 1000; // no input this long: away
  var HEARTBEAT = 60 * 1000;

  var socket = null;
  var connected = false;
  var everOpened = false;
  var state = "online";
  var lastInput = Date.now();

  function send(frame) {
    // Frames describe the present (typing, presence, view): never queue them for later.
    if (socket && connected) socket.send(JSON.stringify(frame));
  }
  P.send = send;

  // -- the list: refreshed (coalesced) when something changes ------------------------------------

  var refreshTimer = null;
  var lastRefresh = 0;
  var refreshWhenVisible = false;

  function refreshList() {
    var list = $("#inbox-list");
    if (!list) return;
    lastRefresh = Date.now();
    htmx.ajax("GET", list.dataset.listUrl, { target: "#inbox-list", swap: "outerHTML" });
  }

  function scheduleListRefresh() {
    // A hidden tab catches up when it is shown again, rather than on every change.
    if (document.hidden) { refreshWhenVisible = true; return; }
    if (refreshTimer) return;
    var wait = Math.max(250, 1000 - (Date.now() - lastRefresh));
    refreshTimer = window.setTimeout(function () { refreshTimer = null; refreshList(); }, wait);
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && refreshWhenVisible) { refreshWhenVisible = false; refreshList(); }
  });

  // -- the socket ---------------------------------------------------------------------------------------

  document.body.addEventListener("htmx:wsOpen", function (event) {
    socket = event.detail.socketWrapper;
    connected = true;
    document.body.dataset.live = "online";
    $("#offline-banner").hidden = true;
    send({ type: "presence", state: state });
    send({ type: "view", conversation: P.currentConversation() });
    if (everOpened) {
      // Back after a break: fetch again everything on screen; never show stale data silently.
      refreshList();
      P.thread.refresh();
      P.announce(document.body.dataset.reconnectedText || "Reconnected");
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
      var current = P.currentConversation();
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
      if (notify) P.notifications.newMessage(notify);
    } else if (frame.type === "typing") {
      var line = $("#typing-" + frame.conversation);
      if (!line) return;
      line.textContent = (document.body.dataset.typingText || "%s is typing…").replace("%s", frame.name);
      window.clearTimeout(typingTimer);
      typingTimer = window.setTimeout(function () { line.textContent = ""; }, 4000);
    } else if (frame.type === "viewers") {
      // Collision control: the other operators viewing this thread now.
      var viewersLine = $("#viewers-" + frame.conversation);
      if (!viewersLine) return;
      viewersLine.textContent = frame.names.length
        ? (document.body.dataset.viewersText || "Also here now: %s").replace("%s", frame.names.join(", "))
        : "";
    } else if (frame.type === "access") {
      // The operator's teams changed: what this page shows was chosen under the old ones.
      refreshList();
      P.thread.refresh();
    } else if (frame.type === "refused") {
      P.announce(document.body.dataset.refusedText || "This conversation is not available.");
    } else if (frame.type === "assigned") {
      P.notifications.assigned(frame);
    } else if (frame.type === "alert") {
      P.notifications.alert(frame);
    } else if (frame.type === "presence") {
      var dot = $("#my-presence");
      if (dot) dot.dataset.presence = frame.presence;
    }
  }

  // -- focus across live swaps ----------------------------------------------------------------------
  // A live change replaces rows (the list's refresh, a row's own update): the row the operator had
  // focused (with the keyboard, or by going back from a thread on a narrow screen) keeps the focus,
  // as if nothing was swapped. A row left on purpose (focus moved, or a click elsewhere) is let go.

  var focusedRow = "";

  document.addEventListener("focusin", function (event) {
    var row = event.target.closest && event.target.closest("#conversation-list .row[id]");
    focusedRow = row ? row.id : "";
  });
  document.addEventListener("focusout", function (event) {
    var left = event.target;
    window.setTimeout(function () {
      // Still in the page: the operator moved away. Gone from it: a swap took it; keep the row.
      if (left.isConnected && document.activeElement === document.body) focusedRow = "";
    }, 0);
  });
  new MutationObserver(function () {
    if (!focusedRow || (document.activeElement && document.activeElement !== document.body)) return;
    var link = document.querySelector("#" + CSS.escape(focusedRow) + " .row-link");
    if (link && link.offsetParent !== null) link.focus({ preventScroll: true });
  }).observe(document.body, { childList: true, subtree: true });

  // -- presence: active, idle, heartbeat --------------------------------------------------------------

  ["mousemove", "pointerdown", "focus", "scroll"].forEach(function (name) {
    window.addEventListener(name, function () {
      lastInput = Date.now();
      if (state !== "online") { state = "online"; send({ type: "presence", state: state }); }
    }, { passive: true });
  });
  // Typing counts as use too; the next heartbeat says so.
  document.addEventListener("keydown", function () { lastInput = Date.now(); });

  window.setInterval(function () {
    var idle = Date.now() - lastInput > IDLE_AFTER;
    var next = idle ? "away" : "online";
    if (next !== state) state = next;
    send({ type: "presence", state: state });
  }, HEARTBEAT);
})();
