/*! Parley website chat widget 1.2.0 | AGPL-3.0-or-later
 * Embed: <script src="https://PARLEY/webchat/parley-webchat.1.0.0.js" data-parley-channel="KEY" async></script>
 * No framework, no cookies. Renders in an open shadow root. Protocol: docs/connectors/webchat.md.
 * API: Parley.open(), Parley.close(), Parley.identify({email, name, user_id, user_hash}) -> Promise.
 */
(function () {
  "use strict";
  if (window.Parley && window.Parley.version) return;

  var script = document.currentScript || document.querySelector("script[data-parley-channel]");
  if (!script) return;
  var KEY = script.getAttribute("data-parley-channel") || "";
  var BASE = new URL(script.src, location.href).origin;
  var HTTP = BASE + "/webchat/" + encodeURIComponent(KEY) + "/";
  var WS = BASE.replace(/^http/, "ws") + "/ws/webchat/" + encodeURIComponent(KEY) + "/";
  var WINDOW = 100; // ids a resume lists
  var TEXT = {
    en: {
      title: "Chat with us", open: "Open chat", close: "Close chat", unread: "{n} unread",
      log: "Conversation", input: "Message", placeholder: "Write a message…", send: "Send",
      attach: "Attach a file", bot: "Bot", agent: "Support", you: "You", sending: "Sending…",
      sent: "Sent", seen: "Seen", failed: "Not sent: {d}", typing: "{n} is typing…",
      someone: "Someone", offline: "You are offline. Your messages will be sent when you are back.",
      reconnecting: "Reconnecting…", slow: "You are writing faster than we can read. Sending again in {s} s.",
      away: "We are away right now. Leave your email and we will answer there too.", email: "Email",
      save: "Save", thanks: "Thanks! We will answer at {e}.", big: "The file is too large (up to {m} MB).",
      type: "This kind of file cannot be sent here.", uploading: "Uploading {f}…", file: "File",
      newmsg: "New message from {n}", choose: "Choose an answer",
      joined: "{n} joined the conversation", closed: "We are away until {t}. The bot can help now; leave your email and a person will answer there.",
      closedshort: "We are away until {t}.", prechat: "Leave your email so that we can answer there if you leave.", skip: "Skip",
      tabs: "Too many chat windows are open from this network. Close some and we will reconnect.",
      queued: "Waiting for the connection: {f} will be sent when you are back."
    },
    ru: {
      title: "Напишите нам", open: "Открыть чат", close: "Закрыть чат", unread: "Непрочитанных: {n}",
      log: "Переписка", input: "Сообщение", placeholder: "Напишите сообщение…", send: "Отправить",
      attach: "Прикрепить файл", bot: "Бот", agent: "Поддержка", you: "Вы", sending: "Отправляется…",
      sent: "Отправлено", seen: "Прочитано", failed: "Не отправлено: {d}", typing: "{n} печатает…",
      someone: "Кто-то", offline: "Нет связи. Сообщения уйдут, когда она появится.",
      reconnecting: "Подключаемся…", slow: "Слишком много сообщений подряд. Отправим снова через {s} с.",
      away: "Сейчас мы не на связи. Оставьте email, и мы ответим туда.", email: "Email",
      save: "Сохранить", thanks: "Спасибо! Ответим на {e}.", big: "Файл слишком большой (до {m} МБ).",
      type: "Такой файл сюда отправить нельзя.", uploading: "Загружается {f}…", file: "Файл",
      newmsg: "Новое сообщение от {n}", choose: "Выберите ответ",
      joined: "{n} подключается к разговору", closed: "Мы вернёмся {t}. Бот поможет уже сейчас; оставьте email, и человек ответит туда.",
      closedshort: "Мы вернёмся {t}.", prechat: "Оставьте email, чтобы мы могли ответить туда, если вы уйдёте.", skip: "Пропустить",
      tabs: "Из этой сети открыто слишком много окон чата. Закройте лишние, и мы переподключимся.",
      queued: "Ждём связи: {f} уйдёт, когда она появится."
    },
    uk: {
      title: "Напишіть нам", open: "Відкрити чат", close: "Закрити чат", unread: "Непрочитаних: {n}",
      log: "Листування", input: "Повідомлення", placeholder: "Напишіть повідомлення…", send: "Надіслати",
      attach: "Прикріпити файл", bot: "Бот", agent: "Підтримка", you: "Ви", sending: "Надсилається…",
      sent: "Надіслано", seen: "Прочитано", failed: "Не надіслано: {d}", typing: "{n} друкує…",
      someone: "Хтось", offline: "Немає зв'язку. Повідомлення підуть, щойно він з'явиться.",
      reconnecting: "Підключаємося…", slow: "Забагато повідомлень поспіль. Надішлемо знову за {s} с.",
      away: "Зараз ми не на зв'язку. Залиште email, і ми відповімо туди.", email: "Email",
      save: "Зберегти", thanks: "Дякуємо! Відповімо на {e}.", big: "Файл завеликий (до {m} МБ).",
      type: "Такий файл сюди надіслати не можна.", uploading: "Завантажується {f}…", file: "Файл",
      newmsg: "Нове повідомлення від {n}", choose: "Виберіть відповідь",
      joined: "{n} приєднується до розмови", closed: "Ми повернемося {t}. Бот допоможе вже зараз; залиште email, і людина відповість туди.",
      closedshort: "Ми повернемося {t}.", prechat: "Залиште email, щоб ми могли відповісти туди, якщо ви підете.", skip: "Пропустити",
      tabs: "З цієї мережі відкрито забагато вікон чату. Закрийте зайві, і ми перепідключимося.",
      queued: "Чекаємо на зв'язок: {f} буде надіслано, щойно він з'явиться."
    },
    fa: {
      title: "با ما گفتگو کنید", open: "باز کردن گفتگو", close: "بستن گفتگو", unread: "{n} پیام خوانده‌نشده",
      log: "گفتگو", input: "پیام", placeholder: "پیامی بنویسید…", send: "ارسال",
      attach: "پیوست فایل", bot: "ربات", agent: "پشتیبانی", you: "شما", sending: "در حال ارسال…",
      sent: "ارسال شد", seen: "دیده شد", failed: "ارسال نشد: {d}", typing: "{n} در حال نوشتن است…",
      someone: "کسی", offline: "اتصال برقرار نیست. پیام‌ها پس از اتصال ارسال می‌شوند.",
      reconnecting: "در حال اتصال دوباره…", slow: "پیام‌ها بیش از حد سریع است. تا {s} ثانیه دیگر دوباره ارسال می‌شود.",
      away: "اکنون در دسترس نیستیم. ایمیل خود را بگذارید تا همان‌جا پاسخ دهیم.", email: "ایمیل",
      save: "ذخیره", thanks: "سپاس! به {e} پاسخ می‌دهیم.", big: "فایل بیش از حد بزرگ است (تا {m} مگابایت).",
      type: "این نوع فایل را نمی‌توان اینجا فرستاد.", uploading: "در حال بارگذاری {f}…", file: "فایل",
      newmsg: "پیام تازه از {n}", choose: "یک پاسخ را انتخاب کنید",
      joined: "{n} به گفتگو پیوست", closed: "تا {t} در دسترس نیستیم. ربات همین حالا کمک می‌کند؛ ایمیل خود را بگذارید تا یک نفر همان‌جا پاسخ دهد.",
      closedshort: "تا {t} در دسترس نیستیم.", prechat: "ایمیل خود را بگذارید تا اگر رفتید، همان‌جا پاسخ دهیم.", skip: "رد شدن",
      tabs: "پنجره‌های گفتگوی زیادی از این شبکه باز است. چند تا را ببندید تا دوباره وصل شویم.",
      queued: "در انتظار اتصال: {f} پس از اتصال ارسال می‌شود."
    }
  };
  var wanted = (script.getAttribute("data-locale") || (navigator.languages && navigator.languages[0]) || navigator.language || "en").toLowerCase().split("-")[0];
  var LANG = TEXT[wanted] ? wanted : "en";
  var RTL = LANG === "fa";
  function t(key, values) {
    var s = TEXT[LANG][key] || TEXT.en[key];
    for (var k in values || {}) s = s.replace("{" + k + "}", values[k]);
    return s;
  }

  // -- storage (the host page's origin: shared by its tabs, kept across visits) -------------------------
  var prefix = "parley:" + KEY + ":";
  function load(name, fallback) {
    try { var v = localStorage.getItem(prefix + name); return v === null ? fallback : JSON.parse(v); } catch (e) { return fallback; }
  }
  function save(name, value) {
    try { localStorage.setItem(prefix + name, JSON.stringify(value)); } catch (e) { /* private mode: this tab only */ }
  }
  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = crypto.getRandomValues(new Uint8Array(16)), h = "";
    for (var i = 0; i < 16; i++) h += (b[i] + 256).toString(16).slice(1);
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-4" + h.slice(13, 16) + "-a" + h.slice(17, 20) + "-" + h.slice(20);
  }

  var state = {
    token: load("token", null),
    outbox: load("outbox", []), // [{client_msg_id, text, at}] not yet acknowledged, in order
    messages: {}, // id -> message
    open: load("open", false),
    unread: 0,
    settings: { text_chars: 4000, upload_bytes: 10485760, upload_types: [] },
    online: true,
    hours: { open: true, back: null },
    files: [], // files picked while disconnected: sent on reconnect, in order
    connected: false,
    mode: "ws",
    delivered: {}, read: {}, shown: {},
    identify: [], // frames waiting for a connection
    waiting: {} // identify promises by sequence
  };

  // -- the shadow root -------------------------------------------------------------------------------
  var CSS = [
    ":host{all:initial}",
    ".root{position:fixed;z-index:2147483000;inset-block-end:20px;inset-inline-end:20px;font:15px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,Tahoma,sans-serif;color:#1f2328}",
    ".root *{box-sizing:border-box}",
    ".launcher{position:relative;width:56px;height:56px;border-radius:50%;border:0;background:#1d4ed8;color:#fff;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25);display:grid;place-items:center;margin-inline-start:auto}",
    ".launcher:focus-visible,button:focus-visible,textarea:focus-visible,input:focus-visible,a:focus-visible,.log:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}",
    ".launcher svg{width:28px;height:28px;fill:currentColor}",
    ".badge{position:absolute;top:-4px;inset-inline-end:-4px;min-width:22px;height:22px;padding:0 6px;border-radius:11px;background:#b91c1c;color:#fff;font-size:12px;font-weight:700;display:grid;place-items:center}",
    ".panel{display:flex;flex-direction:column;width:370px;height:560px;max-height:calc(100vh - 100px);background:#fff;border-radius:14px;box-shadow:0 10px 40px rgba(0,0,0,.25);overflow:hidden;margin-block-end:14px}",
    "[hidden]{display:none!important}",
    "header{display:flex;align-items:center;gap:8px;padding:12px 14px;background:#1d4ed8;color:#fff}",
    "h2{flex:1;margin:0;font-size:16px;font-weight:600}",
    ".dot{width:9px;height:9px;border-radius:50%;background:#9ca3af}.dot.on{background:#4ade80}",
    ".x{border:0;background:transparent;color:#fff;font-size:24px;line-height:1;cursor:pointer;padding:4px 8px;border-radius:6px}",
    ".notice{padding:8px 14px;background:#fef3c7;color:#713f12;font-size:13px}",
    ".log{flex:1;overflow-y:auto;margin:0;padding:12px 14px;list-style:none;display:flex;flex-direction:column;gap:8px;background:#f8fafc}",
    ".m{max-width:82%;display:flex;flex-direction:column;gap:2px}",
    ".m .b{padding:8px 12px;border-radius:14px;white-space:pre-wrap;overflow-wrap:anywhere;background:#e5e7eb;color:#111827}",
    ".m.me{align-self:flex-end;align-items:flex-end}.m.me .b{background:#1d4ed8;color:#fff}",
    ".m.me .b a{color:#fff}.m .b a{color:#1e3a8a}",
    ".who,.st{font-size:12px;color:#4b5563}.st.bad{color:#b91c1c}",
    ".sys{align-self:center;font-size:12px;color:#4b5563;padding:2px 8px}",
    ".email p{flex-basis:100%;margin:0 0 6px;font-size:13px}.email{flex-wrap:wrap}",
    ".opts{display:flex;flex-wrap:wrap;gap:6px;margin-top:4px}",
    ".opt{border:1px solid #1d4ed8;background:#fff;color:#1d4ed8;border-radius:16px;padding:6px 12px;font:inherit;cursor:pointer}",
    ".m img{max-width:220px;max-height:220px;border-radius:8px;display:block}",
    ".typing{min-height:20px;padding:0 14px;font-size:12px;color:#4b5563;background:#f8fafc}",
    "form{display:flex;gap:6px;align-items:flex-end;padding:10px;border-top:1px solid #e5e7eb;background:#fff}",
    "textarea,input[type=email]{flex:1;resize:none;border:1px solid #6b7280;border-radius:10px;padding:8px 10px;font:inherit;color:inherit;background:#fff;max-height:120px;min-height:40px}",
    ".i{border:0;background:#1d4ed8;color:#fff;border-radius:10px;height:40px;min-width:40px;padding:0 10px;cursor:pointer;font:inherit}",
    ".i.ghost{background:transparent;color:#374151}",
    ".i svg{width:20px;height:20px;fill:currentColor;vertical-align:middle}",
    "[dir=rtl] .flip{transform:scaleX(-1)}",
    ".vh{position:absolute!important;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}",
    "@media (max-width:480px){.root.opened{inset:0}.root.opened .launcher{display:none}.panel{width:100vw;height:100vh;height:100dvh;max-height:none;border-radius:0;margin:0}}"
  ].join("\n");

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    for (var k in attrs || {}) {
      if (k === "text") node.textContent = attrs[k];
      else if (attrs[k] === true) node.setAttribute(k, "");
      else if (attrs[k] !== false && attrs[k] != null) node.setAttribute(k, attrs[k]);
    }
    (children || []).forEach(function (c) { if (c) node.appendChild(c); });
    return node;
  }
  function svg(path) {
    var s = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    s.setAttribute("viewBox", "0 0 24 24");
    s.setAttribute("aria-hidden", "true");
    s.setAttribute("focusable", "false");
    var p = document.createElementNS("http://www.w3.org/2000/svg", "path");
    p.setAttribute("d", path);
    s.appendChild(p);
    return s;
  }

  var host = el("div", { id: "parley-webchat", "data-parley": "webchat" });
  var shadow = host.attachShadow({ mode: "open" });
  try {
    var sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS); // constructed sheets work under a strict host style-src
    shadow.adoptedStyleSheets = [sheet];
  } catch (e) {
    shadow.appendChild(el("style", { text: CSS }));
  }
  var badge = el("span", { "class": "badge", hidden: true, "aria-hidden": "true" });
  var launcher = el("button", { "class": "launcher", type: "button", "aria-expanded": "false", "aria-controls": "parley-panel", "aria-label": t("open") },
    [svg("M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-5 4V6a2 2 0 0 1 2-2z"), badge]);
  var title = el("h2", { id: "parley-title", text: t("title") });
  var dot = el("span", { "class": "dot", "aria-hidden": "true" });
  var closeButton = el("button", { "class": "x", type: "button", "aria-label": t("close"), text: "×" });
  var notice = el("div", { "class": "notice", role: "status", hidden: true });
  var log = el("div", { "class": "log", role: "log", "aria-live": "polite", "aria-label": t("log"), tabindex: "0" });
  var typing = el("div", { "class": "typing", "aria-hidden": "true" });
  var input = el("textarea", { id: "parley-input", rows: "1", placeholder: t("placeholder"), "aria-label": t("input"), maxlength: "4000" });
  var fileInput = el("input", { type: "file", "class": "vh", tabindex: "-1", "aria-hidden": "true", accept: "image/*,application/pdf,text/plain" });
  var attach = el("button", { "class": "i ghost", type: "button", "aria-label": t("attach") }, [svg("M16.5 6.5v10a4.5 4.5 0 0 1-9 0V5a3 3 0 0 1 6 0v10.5a1.5 1.5 0 0 1-3 0V6.5H9v9a3 3 0 0 0 6 0V5a4.5 4.5 0 0 0-9 0v11.5a6 6 0 0 0 12 0v-10z")]);
  var send = el("button", { "class": "i", type: "submit", "aria-label": t("send") }, [svg("M3 20.5 21 12 3 3.5V10l12 2-12 2z")]);
  send.firstChild.setAttribute("class", "flip");
  var composer = el("form", { "class": "composer" }, [attach, fileInput, input, send]);
  var emailInput = el("input", { type: "email", id: "parley-email", autocomplete: "email", "aria-label": t("email"), placeholder: t("email"), required: true });
  var emailIntro = el("p", { id: "parley-email-intro" });
  var skipButton = el("button", { "class": "i ghost", type: "button", text: t("skip"), hidden: true });
  emailInput.setAttribute("aria-describedby", "parley-email-intro");
  var emailForm = el("form", { "class": "email", hidden: true }, [emailIntro, emailInput, el("button", { "class": "i", type: "submit", text: t("save") }), skipButton]);
  var panel = el("section", { "class": "panel", id: "parley-panel", role: "dialog", "aria-labelledby": "parley-title", hidden: true },
    [el("header", {}, [dot, title, closeButton]), notice, log, typing, emailForm, composer]);
  var root = el("div", { "class": "root", dir: RTL ? "rtl" : "ltr", lang: LANG }, [panel, launcher]);
  shadow.appendChild(root);

  function mount() { document.body.appendChild(host); }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);

  // -- rendering -----------------------------------------------------------------------------------------
  var URL_RE = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]/g;
  function linkify(text) {
    var frag = document.createDocumentFragment(), last = 0, m;
    URL_RE.lastIndex = 0;
    while ((m = URL_RE.exec(text))) {
      frag.appendChild(document.createTextNode(text.slice(last, m.index)));
      frag.appendChild(el("a", { href: m[0], target: "_blank", rel: "noopener noreferrer nofollow", text: m[0] }));
      last = m.index + m[0].length;
    }
    frag.appendChild(document.createTextNode(text.slice(last)));
    return frag;
  }
  function who(m) {
    if (m.from === "visitor") return t("you");
    if (m.from === "bot") return t("bot");
    return m.name || t("agent");
  }
  function statusText(m) {
    if (m.failed) return t("failed", { d: m.failed });
    if (m.pending) return t("sending");
    return "";
  }
  function bubble(m) {
    if (m.from === "system") {
      return el("div", { "class": "sys", "data-id": m.id || "", "data-client": "" }, [
        el("span", { text: m.event === "joined" ? t("joined", { n: m.name || t("agent") }) : m.text || "" })
      ]);
    }
    var mine = m.from === "visitor";
    var b = el("div", { "class": "b" });
    if (m.text) b.appendChild(linkify(m.text));
    (m.attachments || []).forEach(function (a) {
      if (!a.url) return;
      a = { url: /^\//.test(a.url) ? BASE + a.url : a.url, type: a.type, name: a.name };
      if (/^image\//.test(a.type)) b.appendChild(el("a", { href: a.url, target: "_blank", rel: "noopener noreferrer" }, [el("img", { src: a.url, alt: a.name, loading: "lazy" })]));
      else b.appendChild(el("a", { href: a.url, target: "_blank", rel: "noopener noreferrer", text: "📎 " + a.name }));
    });
    var opts = null;
    if (m.options && m.options.length) {
      opts = el("div", { "class": "opts", role: "group", "aria-label": t("choose") });
      m.options.forEach(function (o) {
        var b = el("button", { type: "button", "class": "opt", text: o.label });
        b.addEventListener("click", function () { clearOptions(); write(o.reply, o.choice); input.focus(); });
        opts.appendChild(b);
      });
    }
    var item = el("div", { "class": "m" + (mine ? " me" : ""), "data-id": m.id || "", "data-client": m.client_msg_id || "" }, [
      el("span", { "class": mine ? "vh" : "who", text: who(m) }),
      b,
      el("span", { "class": "st" + (m.failed ? " bad" : ""), text: statusText(m) }),
      opts
    ]);
    return item;
  }
  function clearOptions() {
    var groups = log.querySelectorAll(".opts");
    for (var i = 0; i < groups.length; i++) groups[i].remove();
  }
  function nearBottom() { return log.scrollHeight - log.scrollTop - log.clientHeight < 80; }
  function place(node, m) {
    var stick = nearBottom();
    var items = log.children, before = null;
    if (m.id) {
      for (var i = 0; i < items.length; i++) {
        var id = +items[i].getAttribute("data-id");
        if (!id || id > m.id) { before = items[i]; break; }
      }
    }
    log.insertBefore(node, before);
    if (stick || m.from === "visitor") log.scrollTop = log.scrollHeight;
  }
  function show(m, live) {
    if (!m || !m.id || state.messages[m.id]) return;
    state.messages[m.id] = m;
    var newest = Object.keys(state.messages).map(Number).every(function (id) { return id <= m.id; });
    if (newest) clearOptions(); // only the latest question offers buttons
    else m = Object.assign({}, m, { options: null });
    if (m.client_msg_id) {
      var pending = log.querySelector('[data-client="' + m.client_msg_id.replace(/[^\w-]/g, "") + '"][data-id=""]');
      if (pending) pending.remove();
    }
    place(bubble(m), m);
    if (m.from !== "visitor" && m.from !== "system") {
      typing.textContent = "";
      if (!state.delivered[m.id] && m.status !== "delivered" && m.status !== "read") queueAck("delivered", m.id);
      if (live && !(state.open && document.visibilityState === "visible")) {
        state.unread += 1;
        paintBadge();
      }
    }
    markRead();
  }
  function showPending(item) {
    if (log.querySelector('[data-client="' + item.client_msg_id + '"]')) return;
    place(bubble({ from: "visitor", text: item.text, client_msg_id: item.client_msg_id, pending: true }), {});
  }
  function failPending(clientId, detail) {
    var node = log.querySelector('[data-client="' + clientId + '"][data-id=""]');
    if (node) { node.lastChild.textContent = t("failed", { d: detail }); node.lastChild.className = "st bad"; }
  }
  function paintBadge() {
    badge.hidden = state.unread === 0;
    badge.textContent = state.unread > 9 ? "9+" : String(state.unread);
    launcher.setAttribute("aria-label", state.unread ? t("open") + ", " + t("unread", { n: state.unread }) : t("open"));
  }
  var noticeTimer = null;
  function say(text, ms) {
    notice.textContent = text;
    notice.hidden = !text;
    clearTimeout(noticeTimer);
    if (text && ms) noticeTimer = setTimeout(function () { say(""); }, ms);
  }

  // -- acknowledgements ----------------------------------------------------------------------------------
  var ackTimer = null, acks = { delivered: [], read: [] };
  function queueAck(kind, id) {
    if (state[kind][id]) return;
    state[kind][id] = true;
    acks[kind].push(id);
    clearTimeout(ackTimer);
    ackTimer = setTimeout(flushAcks, 150);
  }
  function flushAcks() {
    ["delivered", "read"].forEach(function (kind) {
      while (acks[kind].length) {
        var ids = acks[kind].splice(0, 100);
        if (!transmit({ type: kind, ids: ids })) ids.forEach(function (id) { state[kind][id] = false; });
      }
    });
  }
  function markRead() {
    if (!state.open || document.visibilityState !== "visible") return;
    for (var id in state.messages) {
      var m = state.messages[id];
      if (m.from !== "visitor" && m.from !== "system" && m.status !== "read") queueAck("read", +id);
    }
    state.unread = 0;
    paintBadge();
  }

  // -- transports ----------------------------------------------------------------------------------------
  var socket = null, wsFailures = 0, retry = 0, retryTimer = null, polling = false, generation = 0, welcomed = false;
  try { if (sessionStorage.getItem(prefix + "mode") === "poll") state.mode = "poll"; } catch (e) { /* no storage */ }

  function resumeFrame() {
    var ids = Object.keys(state.messages).map(Number).sort(function (a, b) { return a - b; }).slice(-WINDOW);
    return {
      type: "hello", token: state.token, after: ids.length ? ids[0] - 1 : null, have: ids,
      locale: LANG, page: location.href.slice(0, 500)
    };
  }
  function transmit(frame) {
    if (!state.connected) return false;
    if (socket) { socket.send(JSON.stringify(frame)); return true; }
    frame.token = state.token;
    post("frames", frame).then(handle, function () { /* the next flush sends it again */ });
    return true;
  }
  function post(endpoint, body) {
    return fetch(HTTP + endpoint + "/", {
      method: "POST", mode: "cors", credentials: "omit", cache: "no-store",
      headers: { "Content-Type": "text/plain" }, body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().then(function (data) {
        if (!r.ok) { data.status = r.status; throw data; }
        return data;
      });
    });
  }

  function connect() {
    clearTimeout(retryTimer);
    if (state.connected || socket) return;
    if (!navigator.onLine) { offline(); return; }
    if (state.mode === "poll") { startPolling(); return; }
    var ws;
    try { ws = new WebSocket(WS); } catch (e) { fallBack(); return; }
    socket = ws;
    welcomed = false;
    // A handshake that hangs counts as a failure too (closing a socket that never opened may not
    // even say so).
    var guard = setTimeout(function () { if (!welcomed) { gone(); try { ws.close(); } catch (e) { /* already */ } } }, 6000);
    ws.onopen = function () {
      ws.send(JSON.stringify(resumeFrame()));
    };
    ws.onmessage = function (e) {
      var frame;
      try { frame = JSON.parse(e.data); } catch (err) { return; }
      handle(frame);
      if (welcomed) clearTimeout(guard);
    };
    ws.onclose = function (e) {
      if (e && e.code === 4429) { // too many sockets from this address: not a blocked websocket
        if (socket !== ws) return;
        socket = null; sending = {}; state.connected = false; paintOnline();
        say(t("tabs"));
        clearTimeout(retryTimer);
        retryTimer = setTimeout(connect, 30000 * (0.75 + Math.random() / 2));
        return;
      }
      gone();
    };
    function gone() {
      clearTimeout(guard);
      if (socket !== ws) return; // closed on purpose (offline, another visitor) or counted already
      socket = null;
      sending = {};
      state.connected = false;
      paintOnline();
      // A proxy that refuses websockets fails the handshake, or lets it through and cuts it: either
      // way no welcome comes. Twice in a row, and this tab falls back to long polling.
      if (!welcomed && ++wsFailures >= 2) { fallBack(); return; }
      if (welcomed) wsFailures = 0;
      later();
    }
  }
  function fallBack() {
    state.mode = "poll";
    try { sessionStorage.setItem(prefix + "mode", "poll"); } catch (e) { /* no storage */ }
    later(0);
  }
  function later(ms) {
    clearTimeout(retryTimer);
    if (!navigator.onLine) { offline(); return; }
    if (ms == null) { ms = Math.min(15000, 500 * Math.pow(2, retry++)) * (0.75 + Math.random() / 2); }
    if (retry > 1) say(t("reconnecting"));
    retryTimer = setTimeout(connect, ms);
  }
  function startPolling() {
    if (polling) return;
    polling = true;
    var mine = ++generation;
    post("frames", resumeFrame()).then(function (welcome) {
      handle(welcome);
      poll(mine);
    }, function () {
      polling = false;
      later();
    });
  }
  function poll(mine) {
    if (mine !== generation || !state.connected) { polling = false; return; }
    var hello = resumeFrame();
    post("poll", { token: state.token, after: hello.after || 0, have: hello.have }).then(function (answer) {
      retry = 0;
      (answer.messages || []).forEach(function (m) { show(m, true); });
      poll(mine);
    }, function (error) {
      polling = false;
      state.connected = false;
      paintOnline();
      if (error && error.status === 401) { state.token = null; save("token", null); }
      later();
    });
  }
  function offline() {
    state.connected = false;
    generation++;
    polling = false;
    sending = {};
    if (socket) { var s = socket; socket = null; s.close(); }
    paintOnline();
    say(t("offline"));
  }
  window.addEventListener("offline", offline);
  window.addEventListener("online", function () { say(""); retry = 0; connect(); });

  // -- frames from the server ----------------------------------------------------------------------------
  function handle(frame) {
    if (!frame || !frame.type) return;
    if (frame.type === "welcome") {
      if (socket) welcomed = true;
      if (frame.token !== state.token) {
        if (state.token && frame.new) { log.textContent = ""; state.messages = {}; state.outbox.forEach(showPending); }
        state.token = frame.token;
        save("token", frame.token);
      }
      state.connected = true;
      retry = 0;
      state.online = frame.online;
      state.hours = frame.hours || { open: true, back: null };
      state.settings = frame.settings || state.settings;
      if (frame.settings && frame.settings.title) title.textContent = frame.settings.title;
      input.setAttribute("maxlength", String(state.settings.text_chars));
      say("");
      paintOnline();
      (frame.messages || []).forEach(function (m) { show(m, false); });
      flushOutbox();
      flushFiles();
      state.identify.splice(0).forEach(transmit);
      flushAcks();
    } else if (frame.type === "ack") {
      acknowledged(frame.client_msg_id);
      show(frame.message, false);
    } else if (frame.type === "message") {
      show(frame.message, true);
    } else if (frame.type === "typing") {
      typing.textContent = t("typing", { n: frame.name || t("someone") });
      clearTimeout(handle.typingTimer);
      handle.typingTimer = setTimeout(function () { typing.textContent = ""; }, 5000);
    } else if (frame.type === "identified") {
      var done = state.waiting.identify;
      state.waiting.identify = null;
      if (done) done({ verified: frame.verified });
    } else if (frame.type === "error") {
      refused(frame);
    }
  }
  function refused(frame) {
    var id = frame.client_msg_id;
    if (frame.code === "rate_limited") {
      say(t("slow", { s: frame.retry_after || 10 }), (frame.retry_after || 10) * 1000);
      clearTimeout(refused.timer);
      refused.timer = setTimeout(flushOutbox, (frame.retry_after || 10) * 1000 + 200);
      sending = {};
      return;
    }
    if (frame.code === "hello_first" || frame.code === "bad_token") { state.connected = false; later(0); return; }
    if (id) {
      dropFromOutbox(id);
      failPending(id, frame.detail || frame.code);
    }
  }
  function acknowledged(id) {
    delete sending[id];
    dropFromOutbox(id);
  }
  // The outbox is shared by the site's tabs: read it again before changing it, so that one tab
  // never writes back a copy without what another just added.
  function dropFromOutbox(id) {
    state.outbox = load("outbox", state.outbox).filter(function (item) { return item.client_msg_id !== id; });
    save("outbox", state.outbox);
  }

  // -- sending -------------------------------------------------------------------------------------------
  var sending = {}, flushing = false;
  function flushOutbox() {
    if (!state.connected) return;
    if (socket) {
      state.outbox.forEach(function (item) {
        if (sending[item.client_msg_id]) return;
        sending[item.client_msg_id] = true;
        socket.send(JSON.stringify({ type: "message", client_msg_id: item.client_msg_id, text: item.text, choice: item.choice || "", locale: LANG, page: location.href.slice(0, 500) }));
      });
      return;
    }
    if (flushing) return;
    flushing = true;
    (function next() { // one at a time over HTTP: they are stored in order
      var item = state.outbox[0];
      if (!item || !state.connected) { flushing = false; return; }
      post("frames", { type: "message", token: state.token, client_msg_id: item.client_msg_id, text: item.text, choice: item.choice || "", locale: LANG, page: location.href.slice(0, 500) })
        .then(function (ack) { handle(ack); next(); }, function (error) {
          flushing = false;
          if (error && error.type === "error") { error.client_msg_id = error.client_msg_id || item.client_msg_id; refused(error); if (error.code !== "rate_limited") next(); }
          else later();
        });
    })();
  }
  function write(text, choice) {
    text = text.replace(/^\s+|\s+$/g, "");
    if (!text) return;
    var item = { client_msg_id: uuid(), text: text.slice(0, state.settings.text_chars), at: Date.now() };
    if (choice) item.choice = choice; // a tapped button: the server gets its id with the title
    state.outbox = load("outbox", state.outbox);
    state.outbox.push(item);
    save("outbox", state.outbox);
    showPending(item);
    flushOutbox();
    paintOnline(); // a pre-chat form gives way once the visitor writes
  }
  composer.addEventListener("submit", function (e) {
    e.preventDefault();
    write(input.value);
    input.value = "";
    input.focus();
  });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); composer.requestSubmit ? composer.requestSubmit(send) : composer.dispatchEvent(new Event("submit")); }
  });
  var typedAt = 0;
  input.addEventListener("input", function () {
    var now = Date.now();
    if (now - typedAt > 2000 && input.value) { typedAt = now; transmit({ type: "typing" }); }
  });
  attach.addEventListener("click", function () { fileInput.click(); });
  fileInput.addEventListener("change", function () {
    var file = fileInput.files && fileInput.files[0];
    fileInput.value = "";
    if (!file) return;
    if (file.size > state.settings.upload_bytes) { say(t("big", { m: Math.round(state.settings.upload_bytes / 1048576) }), 6000); return; }
    if (state.settings.upload_types.length && state.settings.upload_types.indexOf(file.type) < 0) { say(t("type"), 6000); return; }
    // Queued with its client id first: picked while offline, it goes on reconnect; a resend after
    // a cut upload is stored once (the server dedupes on the client id).
    var item = { client_msg_id: uuid(), file: file };
    state.files.push(item);
    place(bubble({ from: "visitor", text: "📎 " + file.name, client_msg_id: item.client_msg_id, pending: true }), {});
    if (!state.connected) say(t("queued", { f: file.name }));
    flushFiles();
  });
  var uploading = false;
  function flushFiles() {
    var item = state.files[0];
    if (!item || uploading || !state.connected || !state.token) return;
    uploading = true;
    var form = new FormData();
    form.append("token", state.token);
    form.append("client_msg_id", item.client_msg_id);
    form.append("page", location.href.slice(0, 500));
    form.append("file", item.file, item.file.name);
    say(t("uploading", { f: item.file.name }));
    fetch(HTTP + "upload/", { method: "POST", mode: "cors", credentials: "omit", body: form })
      .then(function (r) { return r.json().then(function (d) { if (!r.ok) { d.status = r.status; throw d; } return d; }); })
      .then(function (ack) {
        uploading = false;
        state.files.shift();
        say("");
        show(ack.message, false);
        flushFiles();
      }, function (error) {
        uploading = false;
        if (error && error.type === "error" && error.code !== "rate_limited" && error.code !== "bad_token") {
          state.files.shift(); // refused for good (type, size): say so, and go on with the next
          failPending(item.client_msg_id, error.detail || error.code);
          say(error.detail || t("type"), 6000);
          flushFiles();
          return;
        }
        // Offline, cut, or asked to wait: kept, and sent again on the next welcome or after a while.
        say(navigator.onLine ? t("queued", { f: item.file.name }) : t("offline"));
        clearTimeout(flushFiles.timer);
        flushFiles.timer = setTimeout(flushFiles, ((error && error.retry_after) || 5) * 1000);
      });
  }

  // -- opening, closing, presence ------------------------------------------------------------------------
  function backAt() {
    if (!state.hours.back) return "";
    try {
      return new Intl.DateTimeFormat(LANG, { weekday: "long", day: "numeric", month: "long", hour: "2-digit", minute: "2-digit" })
        .format(new Date(state.hours.back));
    } catch (e) { return new Date(state.hours.back).toLocaleString(); }
  }
  function paintOnline() {
    dot.className = "dot" + (state.connected && state.online ? " on" : "");
    var known = !!load("email", "") || load("skipped", false);
    var offers = state.settings.offline_form === "email";
    var closed = state.connected && state.hours && !state.hours.open;
    var away = state.connected && !state.online && offers && !load("email", "");
    var mode = state.settings.prechat_email || "off";
    var prechat = state.connected && mode !== "off" && !known && !Object.keys(state.messages).length && !state.outbox.length;
    emailForm.hidden = !(away || prechat);
    skipButton.hidden = !(prechat && mode === "optional") || away;
    composer.hidden = prechat && mode === "required";
    emailIntro.textContent = prechat && !away ? t("prechat") : "";
    emailIntro.hidden = !emailIntro.textContent;
    if (closed && !notice.textContent) say(state.hours.back ? t(offers && !load("email", "") ? "closed" : "closedshort", { t: backAt() }) : t("away"));
    else if (away && !notice.textContent) say(t("away"));
  }
  function setOpen(open) {
    state.open = open;
    save("open", open);
    panel.hidden = !open;
    root.className = "root" + (open ? " opened" : "");
    launcher.setAttribute("aria-expanded", String(open));
    if (open) { markRead(); flushAcks(); setTimeout(function () { input.focus(); log.scrollTop = log.scrollHeight; }, 0); }
  }
  launcher.addEventListener("click", function () { setOpen(!state.open); });
  closeButton.addEventListener("click", function () { setOpen(false); launcher.focus(); });
  root.addEventListener("keydown", function (e) { if (e.key === "Escape" && state.open) { setOpen(false); launcher.focus(); } });
  document.addEventListener("visibilitychange", function () { markRead(); flushAcks(); });
  emailForm.addEventListener("submit", function (e) {
    e.preventDefault();
    var email = emailInput.value.trim();
    if (!email) return;
    identify({ email: email }).then(function () {
      save("email", email);
      say(t("thanks", { e: email }), 6000);
      paintOnline();
    });
  });
  skipButton.addEventListener("click", function () { save("skipped", true); paintOnline(); input.focus(); });
  // A file waiting for the connection lives in this page only: ask before the page goes.
  window.addEventListener("beforeunload", function (e) { if (state.files.length) { e.preventDefault(); e.returnValue = ""; } });
  window.addEventListener("storage", function (e) {
    if (e.key === prefix + "token" && e.newValue && JSON.parse(e.newValue) !== state.token && !Object.keys(state.messages).length) {
      // Another tab of this site made the visitor first: be the same visitor.
      state.token = JSON.parse(e.newValue);
      state.connected = false;
      if (socket) { var s = socket; socket = null; s.close(); }
      later(0);
    }
  });

  function identify(data) {
    var frame = { type: "identify" };
    ["email", "name", "user_id", "user_hash"].forEach(function (k) { if (data && data[k] != null) frame[k] = String(data[k]); });
    return new Promise(function (resolve) {
      var previous = state.waiting.identify;
      state.waiting.identify = function (answer) { if (previous) previous(answer); resolve(answer); };
      if (!transmit(frame)) state.identify.push(frame);
    });
  }

  window.Parley = {
    version: "1.2.0",
    open: function () { setOpen(true); },
    close: function () { setOpen(false); },
    identify: identify
  };

  state.outbox.forEach(showPending);
  paintBadge();
  setOpen(state.open || location.hash === "#parley-chat");
  window.addEventListener("hashchange", function () { if (location.hash === "#parley-chat") setOpen(true); });
  connect();
})();
