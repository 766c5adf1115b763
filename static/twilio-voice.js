// The operator's browser phone: registers with Twilio (Voice JS SDK, vendored), rings on incoming
// calls with the caller's name, answers, mutes, hangs up, and takes the next caller from the queue.
// All text comes from data-text-* attributes rendered (translated) by the template.
(function () {
  "use strict";
  const root = document.getElementById("softphone");
  if (!root || !window.Twilio || !window.Twilio.Device) return;
  const status = root.querySelector(".softphone-status");
  const link = root.querySelector(".softphone-conversation");
  const buttons = {};
  root.querySelectorAll("[data-softphone]").forEach((b) => { buttons[b.dataset.softphone] = b; });
  let device = null;
  let current = null;

  const text = (name, values) => {
    let s = root.dataset["text" + name[0].toUpperCase() + name.slice(1)] || "";
    Object.entries(values || {}).forEach(([k, v]) => { s = s.replace("%(" + k + ")s", v); });
    return s;
  };
  const show = (names) => {
    Object.entries(buttons).forEach(([name, b]) => { b.hidden = !names.includes(name); });
  };
  const say = (s) => { status.textContent = s; };

  async function fetchToken() {
    const response = await fetch(root.dataset.tokenUrl, { credentials: "same-origin" });
    if (!response.ok) return null;
    return response.json();
  }

  async function describe(number) {
    if (!number || number.startsWith("client:")) return { label: number, url: "" };
    try {
      const r = await fetch(root.dataset.callerUrl + "?number=" + encodeURIComponent(number), { credentials: "same-origin" });
      const who = r.ok ? await r.json() : {};
      return { label: who.name ? who.name + " (" + number + ")" : number, url: who.conversation_url || "" };
    } catch (e) {
      return { label: number, url: "" };
    }
  }

  function idle() {
    current = null;
    link.hidden = true;
    show(["next"]);
    say(text("ready"));
  }

  function follow(call, label) {
    current = call;
    call.on("accept", () => { say(text("inCall", { caller: label })); show(["mute", "hangup"]); });
    call.on("disconnect", idle);
    call.on("cancel", idle);
    call.on("reject", idle);
    call.on("error", (e) => { say(text("error", { error: e.message })); idle(); });
  }

  async function start() {
    const grant = await fetchToken();
    if (!grant) return;  // no phone line for this operator: stay hidden
    root.hidden = false;
    device = new window.Twilio.Device(grant.token, { closeProtection: true, codecPreferences: ["opus", "pcmu"] });
    device.on("registered", () => { document.body.classList.add("phone-ready"); if (!current) idle(); });
    device.on("unregistered", () => { document.body.classList.remove("phone-ready"); say(text("offline")); });
    device.on("error", (e) => say(text("error", { error: e.message })));
    device.on("tokenWillExpire", async () => {
      const fresh = await fetchToken();
      if (fresh) device.updateToken(fresh.token);
    });
    device.on("incoming", async (call) => {
      // Already on a call: decline this leg; the line keeps ringing the others, then queues.
      if (current) { call.reject(); return; }
      const who = await describe(call.parameters.From);
      follow(call, who.label || text("unknown"));
      say(text("incoming", { caller: who.label || text("unknown") }));
      if (who.url) { link.href = who.url; link.hidden = false; }
      show(["accept", "reject"]);
    });
    await device.register();
  }

  buttons.accept && buttons.accept.addEventListener("click", () => current && current.accept());
  buttons.reject && buttons.reject.addEventListener("click", () => current && current.reject());
  buttons.hangup && buttons.hangup.addEventListener("click", () => current && current.disconnect());
  buttons.mute && buttons.mute.addEventListener("click", () => {
    if (!current) return;
    const muted = !current.isMuted();
    current.mute(muted);
    buttons.mute.setAttribute("aria-pressed", String(muted));
  });
  buttons.next && buttons.next.addEventListener("click", async () => {
    if (!device || current) return;
    const call = await device.connect({ params: { To: "queue" } });
    follow(call, text("unknown"));
  });

  // "Call" next to a customer's phone number (rendered hidden; shown once the phone is ready).
  document.addEventListener("click", async (event) => {
    const button = event.target.closest && event.target.closest("[data-call-number]");
    if (!button || !device || current) return;
    const number = button.dataset.callNumber;
    const who = await describe(number);
    say(text("calling", { caller: who.label || number }));
    show(["hangup"]);
    const call = await device.connect({ params: { To: number } });
    follow(call, who.label || number);
    if (who.url) { link.href = who.url; link.hidden = false; }
  });

  start().catch((e) => say(text("error", { error: e.message })));
})();
