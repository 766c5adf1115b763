/* Desktop notifications and what screen readers hear of news: a new customer message, a
 * conversation given to this operator, one that needs them (an SLA target missed). The inbox's "Turn on desktop notifications" button asks the
 * browser's permission; without it the news is only announced (#announcer).
 *
 * Uses window.Parley (parley.js) and offers Parley.notifications, called by live.js.
 */
(function () {
  "use strict";

  var P = window.Parley;

  // A customer wrote (the newest such message of a list ping): announced; a desktop notification
  // too when the tab is hidden and the conversation is the operator's or the open one.
  function newMessage(message) {
    var title = document.body.dataset.newMessageText || "New message";
    P.announce(title);
    if (document.hidden && window.Notification && Notification.permission === "granted" && (message.mine || message.conversation === P.currentConversation())) {
      new Notification(title, { tag: "parley-" + message.conversation });
    }
  }

  // A conversation given to this operator (by routing or a teammate): a desktop notification when
  // they allowed them and are not looking at it already; clicking it opens the conversation.
  function assigned(frame) {
    notify(frame, "parley-assigned-" + frame.conversation);
  }

  // A conversation that needs this operator (an SLA target missed: frame.kind "sla_breached"):
  // announced, and a desktop notification as for an assignment.
  function alert(frame) {
    notify(frame, "parley-" + frame.kind + "-" + frame.conversation);
  }

  function notify(frame, tag) {
    P.announce(frame.title);
    if (!window.Notification || Notification.permission !== "granted") return;
    if (!document.hidden && frame.conversation === P.currentConversation()) return;
    var notification = new Notification(frame.title, { body: frame.body || "", tag: tag });
    notification.onclick = function () {
      window.focus();
      notification.close();
      var link = P.$("#row-" + frame.conversation + " .row-link");
      if (link) link.click();
      else window.location.href = frame.url;
    };
  }

  function offerNotifications() {
    var button = P.$("[data-enable-notifications]");
    if (!button || !window.Notification) return;
    button.hidden = Notification.permission !== "default";
    button.addEventListener("click", function () {
      Notification.requestPermission().then(function () { button.hidden = true; });
    });
  }

  document.addEventListener("DOMContentLoaded", offerNotifications);

  P.notifications = { newMessage: newMessage, assigned: assigned, alert: alert };
})();
