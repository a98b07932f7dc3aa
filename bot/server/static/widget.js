/*
 * csbot website chat widget. Plain JavaScript, no dependencies, no build step.
 *
 * Embed with one tag; the API base is the folder this script is served from:
 *   <script src="https://HOST/widget.js" data-title="Support" data-primary-color="#5b3f8c" defer></script>
 * The data- attributes are documented in bot/server/static/README.md.
 *
 * Safety rule: text from the server or the customer is only ever put into the page as text
 * nodes (textContent / append(string)); this file never assigns innerHTML/outerHTML or
 * calls insertAdjacentHTML/document.write. Markdown is rendered by building DOM nodes, and
 * links are kept only when their scheme is http or https.
 */
(function () {
  "use strict";

  var script = document.currentScript ||
    document.querySelector('script[src$="/widget.js"], script[src*="/widget.js?"]');
  if (!script || window.__csbotWidget) return;
  window.__csbotWidget = true;

  // ---------------------------------------------------------------- configuration
  var ds = script.dataset;
  var apiBase = (function () {
    var raw = ds.apiBase ? new URL(ds.apiBase, location.href) : new URL(".", script.src);
    if (!/\/$/.test(raw.pathname)) raw.pathname += "/";
    raw.search = "";
    raw.hash = "";
    return raw.href;
  })();
  var config = {
    lang: normaliseLang(ds.lang) || "en",
    title: ds.title || null,
    open: ds.open === "true" || ds.open === "",
    position: ds.position === "left" ? "left" : "right",
    streaming: ds.streaming !== "false",
  };
  var THEME = {
    primaryColor: "--csbot-primary",
    primaryTextColor: "--csbot-on-primary",
    textColor: "--csbot-text",
    backgroundColor: "--csbot-bg",
    botBubbleColor: "--csbot-bot-bubble",
    botTextColor: "--csbot-bot-text",
  };
  var RTL_LANGS = ["ar", "he", "fa", "ur"];
  var REQUEST_TIMEOUT_MS = 20000;
  var STREAM_IDLE_MS = 60000;
  var MAX_BACKOFF_MS = 30000;
  var MAX_SERVER_RETRIES = 4;

  function normaliseLang(value) {
    var lang = String(value || "").trim().toLowerCase().split(/[-_]/)[0];
    return /^[a-z]{2,3}$/.test(lang) ? lang : null;
  }

  function api(path) {
    return new URL(path, apiBase).href;
  }

  // ---------------------------------------------------------------- storage
  // localStorage can be unavailable (privacy modes, disabled storage): fall back to memory.
  var memory = {};
  var prefix = "csbot:" + apiBase + ":";
  var storage = {
    get: function (key) {
      try { return window.localStorage.getItem(prefix + key); } catch (e) { return memory[key] || null; }
    },
    set: function (key, value) {
      try { window.localStorage.setItem(prefix + key, value); } catch (e) { memory[key] = value; }
    },
    del: function (key) {
      try { window.localStorage.removeItem(prefix + key); } catch (e) { delete memory[key]; }
    },
  };
  var session = {
    get: function (key) { try { return window.sessionStorage.getItem(prefix + key); } catch (e) { return null; } },
    set: function (key, value) { try { window.sessionStorage.setItem(prefix + key, value); } catch (e) { /* ignore */ } },
  };

  function uuid() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
    var b = new Uint8Array(16);
    window.crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join("");
    return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" + hex.slice(16, 20) + "-" + hex.slice(20);
  }

  // ---------------------------------------------------------------- strings
  var strings = {};

  function t(key, vars) {
    var s = Object.prototype.hasOwnProperty.call(strings, key) ? String(strings[key]) : key;
    if (vars) {
      s = s.replace(/\{(\w+)\}/g, function (m, name) {
        return Object.prototype.hasOwnProperty.call(vars, name) ? String(vars[name]) : m;
      });
    }
    return s;
  }

  function loadLocale(lang) {
    return fetchWithTimeout(api("widget/locales/" + lang + ".json"), {}).then(function (r) {
      if (!r.ok) throw new Error("locale " + lang + ": HTTP " + r.status);
      return r.json();
    });
  }

  function loadStrings() {
    // English is the base; the chosen language overrides it key by key.
    var english = loadLocale("en").catch(function () { return {}; });
    var chosen = config.lang === "en" ? english : loadLocale(config.lang).catch(function () { return null; });
    return Promise.all([english, chosen]).then(function (res) {
      if (!res[1]) config.lang = "en";
      strings = Object.assign({}, res[0], res[1] || {});
      if (!strings.dir) strings.dir = RTL_LANGS.indexOf(config.lang) >= 0 ? "rtl" : "ltr";
    });
  }

  // ---------------------------------------------------------------- DOM helpers
  function h(tag, props) {
    var node = document.createElement(tag);
    if (props) {
      Object.keys(props).forEach(function (k) {
        var v = props[k];
        if (v === null || v === undefined || v === false) return;
        if (k === "class") node.className = v;
        else if (k === "text") node.textContent = v;
        else if (k === "hidden") node.hidden = true;
        else if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), v);
        else node.setAttribute(k, v === true ? "" : String(v));
      });
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c !== null && c !== undefined && c !== false) node.append(c); // strings become text nodes
    }
    return node;
  }

  var SVG_NS = "http://www.w3.org/2000/svg";
  var ICONS = {
    chat: "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z",
    close: "M6 6l12 12M18 6L6 18",
    send: "M3 20l18-8L3 4v6l12 2-12 2z",
    // a thumb (the down vote is the same shape turned over in widget.css); drawn as SVG so
    // it does not depend on an emoji font
    thumb: "M2.5 10.5h3.5v10h-3.5zM8 20.5h9.3a2 2 0 0 0 1.9-1.4l2-6.4a2 2 0 0 0-1.9-2.6H14l.8-4a1.6 1.6 0 0 0-.5-1.5l-.9-.8L8 9.8z",
  };

  function icon(name) {
    var svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    svg.setAttribute("class", "csbot-icon csbot-icon--" + name);
    var path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", ICONS[name]);
    svg.appendChild(path);
    return svg;
  }

  // ---------------------------------------------------------------- safe markdown
  // Supported: **bold**, __bold__, *italic*, _italic_, [label](http(s)://url), bare
  // http(s) URLs, "- " list items, line breaks and blank-line paragraphs. Everything else
  // (HTML included) stays literal text.
  var INLINE_SOURCE = [
    "\\[([^\\]\\n]{1,300})\\]\\(([^()\\s]{1,2000})\\)", // 1 label, 2 url
    "\\*\\*(?=\\S)([^*\\n]*?\\S)\\*\\*", // 3 bold
    "__(?=\\S)([^_\\n]*?\\S)__", // 4 bold
    "\\*(?=[^\\s*])([^*\\n]*?[^\\s*])\\*", // 5 italic
    "(^|[^\\w])_(?=[^\\s_])([^_\\n]*?[^\\s_])_(?!\\w)", // 6 lead, 7 italic
    "\\bhttps?:\\/\\/[^\\s<>\"'`]+", // bare URL
  ].join("|");

  function safeUrl(raw) {
    try {
      var u = new URL(raw);
      return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
    } catch (e) {
      return null;
    }
  }

  function link(href, label) {
    return h("a", { href: href, target: "_blank", rel: "noopener noreferrer nofollow ugc", class: "csbot-link" },
      label, h("span", { class: "csbot-sr", text: " " + t("link_new_tab") }));
  }

  function appendInline(parent, text, depth) {
    var re = new RegExp(INLINE_SOURCE, "g");
    var last = 0;
    var m;
    while ((m = re.exec(text)) !== null) {
      if (m.index > last) parent.append(text.slice(last, m.index));
      last = re.lastIndex;
      if (m[1] !== undefined) {
        var href = safeUrl(m[2]);
        parent.append(href ? link(href, m[1]) : m[0]);
      } else if (m[3] !== undefined || m[4] !== undefined) {
        var strong = h("strong");
        if (depth < 3) appendInline(strong, m[3] !== undefined ? m[3] : m[4], depth + 1);
        else strong.append(m[3] !== undefined ? m[3] : m[4]);
        parent.append(strong);
      } else if (m[5] !== undefined || m[7] !== undefined) {
        if (m[6]) parent.append(m[6]);
        var em = h("em");
        if (depth < 3) appendInline(em, m[5] !== undefined ? m[5] : m[7], depth + 1);
        else em.append(m[5] !== undefined ? m[5] : m[7]);
        parent.append(em);
      } else {
        // bare URL: trailing punctuation belongs to the sentence
        var url = m[0];
        var trail = /[.,;:!?)\]]+$/.exec(url);
        if (trail) {
          url = url.slice(0, -trail[0].length);
          last -= trail[0].length;
          re.lastIndex = last;
        }
        var safe = safeUrl(url);
        parent.append(safe ? link(safe, url) : url);
      }
      if (m[0].length === 0) re.lastIndex++;
    }
    if (last < text.length) parent.append(text.slice(last));
  }

  function renderMarkdown(container, text) {
    container.replaceChildren();
    var blocks = String(text == null ? "" : text).replace(/\r\n?/g, "\n").split(/\n\s*\n/);
    blocks.forEach(function (block) {
      if (!block.trim()) return;
      var p = null;
      var ul = null;
      block.split("\n").forEach(function (line) {
        var item = /^\s*[-*\u2022]\s+(.+)$/.exec(line);
        if (item) {
          p = null;
          if (!ul) { ul = h("ul", { class: "csbot-md-list" }); container.append(ul); }
          var li = h("li");
          appendInline(li, item[1], 0);
          ul.append(li);
        } else {
          ul = null;
          if (!p) { p = h("p", { class: "csbot-md-p" }); container.append(p); } else p.append(h("br"));
          appendInline(p, line, 0);
        }
      });
    });
  }

  function plainText(text) {
    var tmp = document.createElement("div");
    renderMarkdown(tmp, text);
    return tmp.textContent;
  }

  // ---------------------------------------------------------------- network helpers
  function HttpError(status, detail, retryAfter) {
    this.status = status;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }
  function NetworkError(reason) {
    this.status = 0;
    this.detail = reason;
  }

  function formatDetail(detail) {
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      // FastAPI's validation list: the messages are for the customer, the field names not
      return detail.map(function (d) {
        return d && typeof d === "object" ? String(d.msg || JSON.stringify(d)) : String(d);
      }).join("; ");
    }
    if (detail && typeof detail === "object") return JSON.stringify(detail);
    return "";
  }

  function parseRetryAfter(value) {
    if (!value) return null;
    var secs = Number(value);
    if (!isNaN(secs)) return Math.max(0, secs);
    var when = Date.parse(value);
    return isNaN(when) ? null : Math.max(0, (when - Date.now()) / 1000);
  }

  function httpError(response) {
    var retryAfter = parseRetryAfter(response.headers.get("Retry-After"));
    return response.text().then(function (body) {
      var detail = "";
      try { detail = formatDetail(JSON.parse(body).detail); } catch (e) { detail = ""; }
      return new HttpError(response.status, detail || t("error_generic"), retryAfter);
    }, function () {
      return new HttpError(response.status, t("error_generic"), retryAfter);
    });
  }

  function fetchWithTimeout(url, options, timeoutMs) {
    var controller = new AbortController();
    var timer = setTimeout(function () { controller.abort(); }, timeoutMs || REQUEST_TIMEOUT_MS);
    var opts = Object.assign({ credentials: "omit", signal: controller.signal }, options);
    return fetch(url, opts).then(function (r) {
      clearTimeout(timer);
      return r;
    }, function (err) {
      clearTimeout(timer);
      throw new NetworkError(String(err && err.message || err));
    });
  }

  function postJson(url, body) {
    return fetchWithTimeout(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
    }).then(function (r) {
      if (!r.ok) return httpError(r).then(function (e) { throw e; });
      return r.status === 204 ? null : r.json().catch(function () { return null; });
    });
  }

  // Server-sent events over a fetch body (EventSource cannot POST).
  function parseSseBlock(block) {
    var ev = { event: "message", data: "", id: null };
    var data = [];
    block.split("\n").forEach(function (line) {
      if (!line || line.charAt(0) === ":") return;
      var i = line.indexOf(":");
      var field = i < 0 ? line : line.slice(0, i);
      var value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
      if (field === "event") ev.event = value;
      else if (field === "data") data.push(value);
      else if (field === "id") ev.id = value;
    });
    if (!data.length && ev.event === "message") return null;
    ev.data = data.join("\n");
    try { ev.data = JSON.parse(ev.data); } catch (e) { /* keep the raw string */ }
    return ev;
  }

  function readSse(response, controller, onEvent) {
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    var timer = null;
    var stopped = false;
    function arm() {
      clearTimeout(timer);
      timer = setTimeout(function () { controller.abort(); }, STREAM_IDLE_MS);
    }
    function drain(final) {
      buffer = buffer.replace(/\r\n/g, "\n").replace(/\r(?!$)/g, "\n");
      var idx;
      while (!stopped && (idx = buffer.indexOf("\n\n")) >= 0) {
        var block = buffer.slice(0, idx);
        buffer = buffer.slice(idx + 2);
        var ev = parseSseBlock(block);
        if (ev && onEvent(ev) === false) stopped = true;
      }
      if (final && !stopped && buffer.trim()) {
        var last = parseSseBlock(buffer);
        buffer = "";
        if (last) onEvent(last);
      }
    }
    function pump() {
      return reader.read().then(function (res) {
        if (res.done) {
          buffer += decoder.decode();
          drain(true);
          return;
        }
        arm();
        buffer += decoder.decode(res.value, { stream: true });
        drain(false);
        if (stopped) return reader.cancel().catch(function () {});
        return pump();
      });
    }
    arm();
    return pump().then(function () { clearTimeout(timer); }, function (err) {
      clearTimeout(timer);
      if (err instanceof HttpError) throw err;
      throw new NetworkError(String(err && err.message || err));
    });
  }

  function sleep(ms) {
    // resolves early when the browser comes back online
    return new Promise(function (resolve) {
      var timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        window.removeEventListener("online", done);
        resolve();
      }
      window.addEventListener("online", done);
    });
  }

  function backoffMs(attempt) {
    var base = Math.min(MAX_BACKOFF_MS, 1000 * Math.pow(2, Math.max(0, attempt - 1)));
    return Math.round(base * (0.75 + Math.random() * 0.5));
  }

  // ---------------------------------------------------------------- state
  var state = {
    conversationId: storage.get("conversation"),
    isOpen: false,
    queue: [],
    busy: false,
    restoring: false, // the history is being fetched: sending waits for it
    handedOff: false,
    ended: false,
    seen: {}, // message ids already on screen
    events: null,
    eventsAttempt: 0,
    eventsTimer: null,
    lastBotMessage: null,
    unread: 0,
  };

  var ui = {};

  // ---------------------------------------------------------------- building the widget
  function applyTheme(host) {
    Object.keys(THEME).forEach(function (key) {
      var value = ds[key];
      if (value && window.CSS && CSS.supports("color", value)) host.style.setProperty(THEME[key], value);
    });
  }

  function build() {
    var host = h("div", { id: "csbot-widget", class: "csbot-host" });
    applyTheme(host);
    var shadow = host.attachShadow({ mode: "open" });
    var stylesheet = h("link", { rel: "stylesheet", href: api("widget.css") });
    shadow.append(stylesheet);

    var dir = strings.dir === "rtl" ? "rtl" : "ltr";
    var titleId = "csbot-title";
    var inputId = "csbot-input";

    ui.launcherLabel = h("span", { class: "csbot-sr" });
    ui.launcher = h("button", {
      type: "button",
      class: "csbot-launcher",
      "aria-expanded": "false",
      "aria-controls": "csbot-panel",
      onclick: function () { toggle(); },
    }, icon("chat"), icon("close"), h("span", { class: "csbot-badge", "aria-hidden": "true", hidden: true }));

    ui.status = h("div", { class: "csbot-status", role: "status", hidden: true });
    ui.log = h("div", { class: "csbot-log", role: "log", "aria-live": "off", "aria-label": t("conversation_label"), tabindex: "0" });
    ui.typing = h("div", { class: "csbot-typing", hidden: true },
      h("span", { class: "csbot-dots", "aria-hidden": "true" }, h("span"), h("span"), h("span")),
      h("span", { class: "csbot-sr", text: t("typing") }));
    ui.quick = h("div", { class: "csbot-quick", role: "group", "aria-label": t("quick_replies"), hidden: true });
    ui.announcer = h("div", { class: "csbot-sr csbot-announcer", "aria-live": "polite", "aria-atomic": "true" });

    ui.input = h("textarea", {
      id: inputId,
      class: "csbot-input",
      rows: "1",
      maxlength: "4000",
      placeholder: t("input_placeholder"),
      autocomplete: "off",
      onkeydown: function (e) {
        if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
          e.preventDefault();
          submitInput();
        }
      },
      oninput: autosize,
    });
    ui.form = h("form", {
      class: "csbot-composer",
      onsubmit: function (e) { e.preventDefault(); submitInput(); },
    },
    h("label", { class: "csbot-sr", for: inputId, text: t("input_label") }),
    ui.input,
    h("button", { type: "submit", class: "csbot-send", "aria-label": t("send"), title: t("send") }, icon("send")));

    ui.endButton = h("button", { type: "button", class: "csbot-end", text: t("end_chat"), onclick: endChat });
    ui.panel = h("section", {
      id: "csbot-panel",
      class: "csbot-panel",
      role: "dialog",
      "aria-modal": "false",
      "aria-labelledby": titleId,
      hidden: true,
    },
    h("header", { class: "csbot-header" },
      h("div", { class: "csbot-heading" },
        h("h2", { id: titleId, class: "csbot-title", text: config.title || t("title") }),
        h("p", { class: "csbot-subtitle", text: t("subtitle") })),
      ui.endButton,
      h("button", {
        type: "button",
        class: "csbot-close",
        "aria-label": t("close"),
        title: t("close"),
        onclick: function () { toggle(false); },
      }, icon("close"))),
    ui.status,
    ui.log,
    ui.typing,
    ui.quick,
    ui.form,
    ui.announcer);

    ui.root = h("div", {
      class: "csbot-root csbot-root--" + config.position,
      dir: dir,
      lang: config.lang,
      hidden: true,
      onkeydown: function (e) {
        if (e.key === "Escape" && state.isOpen) {
          e.stopPropagation();
          toggle(false);
        }
      },
    }, ui.panel, ui.launcher);
    shadow.append(ui.root);
    ui.host = host;
    ui.shadow = shadow;
    updateLauncher();

    // Show the widget once its stylesheet is in (or has failed), never unstyled.
    var shown = false;
    function show() { if (!shown) { shown = true; ui.root.hidden = false; } }
    stylesheet.addEventListener("load", show);
    stylesheet.addEventListener("error", show);
    setTimeout(show, 3000);
    document.body.append(host);
  }

  function autosize() {
    ui.input.style.height = "auto";
    ui.input.style.height = Math.min(ui.input.scrollHeight, 120) + "px";
  }

  function updateLauncher() {
    var label = state.isOpen ? t("launcher_close") : (state.unread ? t("launcher_open_unread") : t("launcher_open"));
    ui.launcher.setAttribute("aria-label", label);
    ui.launcher.title = label;
    ui.launcher.setAttribute("aria-expanded", state.isOpen ? "true" : "false");
    ui.launcher.classList.toggle("csbot-launcher--open", state.isOpen);
    ui.launcher.querySelector(".csbot-badge").hidden = !state.unread || state.isOpen;
  }

  function toggle(open, keepFocus) {
    var wasOpen = state.isOpen;
    state.isOpen = open === undefined ? !state.isOpen : !!open;
    ui.panel.hidden = !state.isOpen;
    ui.root.classList.toggle("csbot-root--open", state.isOpen);
    session.set("open", state.isOpen ? "1" : "0");
    if (state.isOpen) state.unread = 0;
    updateLauncher();
    if (state.isOpen !== wasOpen) emit(state.isOpen ? "open" : "close");
    if (state.isOpen) {
      scrollToEnd(true);
      if (!keepFocus) ui.input.focus();
    } else if (wasOpen && !keepFocus) {
      ui.launcher.focus();
    }
  }

  function scrollToEnd(force) {
    var log = ui.log;
    var near = log.scrollHeight - log.scrollTop - log.clientHeight < 120;
    if (force || near) log.scrollTop = log.scrollHeight;
  }

  function announce(text) {
    ui.announcer.textContent = "";
    // a new node in a separate task so the same text twice is still announced
    setTimeout(function () { ui.announcer.textContent = text; }, 50);
  }

  function setStatus(key, vars) {
    if (!key) {
      ui.status.hidden = true;
      ui.status.textContent = "";
      return;
    }
    ui.status.textContent = t(key, vars);
    ui.status.hidden = false;
  }

  // Events for the host page (analytics, tests): csbot:open, csbot:close, csbot:typing
  // {on}, csbot:text {text}, csbot:reply {the final reply object}, csbot:error {status, detail}.
  function emit(name, detail) {
    try {
      ui.host.dispatchEvent(new CustomEvent("csbot:" + name, { detail: detail || {} }));
    } catch (e) { /* a listener's error is not ours */ }
  }

  function setTyping(on) {
    if (ui.typing.hidden === !on) return;
    ui.typing.hidden = !on;
    emit("typing", { on: !!on });
    ui.log.setAttribute("aria-busy", on ? "true" : "false");
    if (on) scrollToEnd(false);
  }

  // ---------------------------------------------------------------- messages
  function roleLabel(role) {
    return t({ customer: "you", bot: "bot", agent: "agent", system: "system" }[role] || "bot");
  }

  function addMessage(m) {
    var role = m.role;
    if (role === "system") {
      var note = h("div", { class: "csbot-notice", role: "note" }, m.text);
      ui.log.append(note);
      scrollToEnd(false);
      return { el: note };
    }
    // dir=auto: each message runs in its own script's direction (English text in an
    // Arabic widget keeps its punctuation where it belongs)
    var bubble = h("div", { class: "csbot-bubble", dir: "auto" });
    if (role === "customer") bubble.textContent = m.text; // the customer's words, verbatim
    else renderMarkdown(bubble, m.text);
    var el = h("div", { class: "csbot-msg csbot-msg--" + role },
      h("span", { class: "csbot-sr csbot-who", text: roleLabel(role) + ": " }),
      role === "agent" ? h("span", { class: "csbot-author", "aria-hidden": "true", text: t("agent") }) : null,
      bubble);
    var msg = { el: el, bubble: bubble, role: role, text: m.text, messageId: null, feedback: m.feedback || null };
    if (role === "customer") {
      msg.statusEl = h("div", { class: "csbot-msg-status", hidden: true });
      el.append(msg.statusEl);
    }
    ui.log.append(el);
    if (m.messageId !== undefined && m.messageId !== null) setMessageId(msg, m.messageId);
    scrollToEnd(role === "customer");
    return msg;
  }

  function setMessageId(msg, id) {
    msg.messageId = id;
    state.seen[String(id)] = true;
    msg.el.setAttribute("data-message-id", String(id));
    if (msg.role === "bot" && !msg.feedbackEl) addFeedback(msg);
  }

  function addFeedback(msg) {
    function button(rating, key) {
      return h("button", {
        type: "button",
        class: "csbot-fb csbot-fb--" + rating,
        "aria-label": t(key),
        title: t(key),
        "aria-pressed": msg.feedback === rating ? "true" : "false",
        onclick: function () { sendFeedback(msg, rating); },
      }, icon("thumb"));
    }
    msg.feedbackEl = h("div", { class: "csbot-feedback", role: "group", "aria-label": t("feedback_question") },
      button("up", "feedback_up"), // thumbs up
      button("down", "feedback_down")); // thumbs down
    msg.el.append(msg.feedbackEl);
    showFeedbackState(msg);
  }

  function showFeedbackState(msg) {
    if (!msg.feedbackEl) return;
    Array.prototype.forEach.call(msg.feedbackEl.querySelectorAll(".csbot-fb"), function (b) {
      var rating = b.classList.contains("csbot-fb--up") ? "up" : "down";
      b.setAttribute("aria-pressed", msg.feedback === rating ? "true" : "false");
    });
    msg.el.classList.toggle("csbot-msg--rated", !!msg.feedback);
  }

  function sendFeedback(msg, rating) {
    if (msg.messageId === null || msg.feedback === rating || msg.feedbackPending) return;
    var previous = msg.feedback;
    msg.feedback = rating;
    msg.feedbackPending = true;
    showFeedbackState(msg);
    postJson(api("api/v1/messages/" + encodeURIComponent(msg.messageId) + "/feedback"), { rating: rating, comment: null })
      .then(function () {
        announce(t("feedback_thanks"));
      }, function (err) {
        msg.feedback = previous;
        showFeedbackState(msg);
        announce(t("feedback_error"));
        showInlineError(msg.el, err && err.status >= 400 && err.status < 500 && err.detail ? err.detail : t("feedback_error"));
      })
      .then(function () { msg.feedbackPending = false; });
  }

  function showInlineError(container, text) {
    var old = container.querySelector(".csbot-inline-error");
    if (old) old.remove();
    var e = h("div", { class: "csbot-inline-error", role: "alert" }, text);
    container.append(e);
    setTimeout(function () { e.remove(); }, 6000);
  }

  function setQuickReplies(buttons) {
    ui.quick.replaceChildren();
    var list = Array.isArray(buttons) ? buttons.filter(function (b) { return typeof b === "string" && b.trim(); }) : [];
    list.slice(0, 8).forEach(function (label) {
      ui.quick.append(h("button", {
        type: "button",
        class: "csbot-quick-reply",
        text: label,
        onclick: function () { send(label); },
      }));
    });
    ui.quick.hidden = list.length === 0;
    scrollToEnd(false);
  }

  function setItemStatus(item, status, detail) {
    var el = item.msg.el;
    item.status = status;
    ["queued", "sending", "sent", "failed", "rejected"].forEach(function (s) {
      el.classList.toggle("csbot-msg--" + s, s === status);
    });
    var statusEl = item.msg.statusEl;
    statusEl.replaceChildren();
    statusEl.classList.toggle("csbot-msg-status--error", status === "failed" || status === "rejected");
    if (status === "queued") statusEl.append(t("queued"));
    else if (status === "rejected") {
      statusEl.append(h("span", { class: "csbot-error-detail", role: "alert" }, detail || t("error_generic")));
    } else if (status === "failed") {
      statusEl.append(h("span", { role: "alert" }, (detail ? detail + " " : "") + t("failed") + " "),
        h("button", {
          type: "button",
          class: "csbot-retry",
          text: t("retry"),
          onclick: function () {
            setItemStatus(item, "queued");
            state.queue.push(item);
            saveQueue();
            processQueue();
          },
        }));
    }
    statusEl.hidden = !statusEl.firstChild;
  }

  // ---------------------------------------------------------------- handoff and agent messages
  function onHandoff() {
    if (state.handedOff) return;
    state.handedOff = true;
    addMessage({ role: "system", text: t("handoff_notice") });
    announce(t("handoff_notice"));
    openEvents();
  }

  function closeEvents() {
    clearTimeout(state.eventsTimer);
    if (state.events) state.events.close();
    state.events = null;
    state.eventsAttempt = 0;
  }

  function openEvents() {
    if (state.events || !state.conversationId || typeof window.EventSource !== "function") return;
    var id = state.conversationId;
    var es = new EventSource(api("api/v1/conversations/" + encodeURIComponent(id) + "/events"));
    state.events = es;
    es.addEventListener("open", function () { state.eventsAttempt = 0; });
    es.addEventListener("agent_message", function (e) {
      var data;
      try { data = JSON.parse(e.data); } catch (err) { return; }
      if (!data || typeof data.text !== "string") return;
      var mid = data.message_id !== undefined ? data.message_id : e.lastEventId;
      if (mid !== undefined && mid !== null && mid !== "" && state.seen[String(mid)]) return;
      setQuickReplies([]);
      addMessage({ role: "agent", text: data.text, messageId: mid === "" ? null : mid });
      announce(t("agent") + ": " + plainText(data.text));
      if (!state.isOpen) { state.unread += 1; updateLauncher(); }
    });
    es.addEventListener("handoff", function () { onHandoff(); });
    es.addEventListener("error", function () {
      if (es.readyState !== EventSource.CLOSED) return; // the browser is reconnecting by itself
      es.close();
      if (state.events !== es) return;
      state.events = null;
      state.eventsAttempt += 1;
      if (state.eventsAttempt > 10 || state.conversationId !== id) return;
      state.eventsTimer = setTimeout(openEvents, backoffMs(state.eventsAttempt));
    });
  }

  // ---------------------------------------------------------------- CSAT
  function showCsat() {
    var id = state.conversationId;
    if (!id || storage.get("csat:" + id) || ui.log.querySelector(".csbot-csat")) return;
    var questionId = "csbot-csat-q";
    var scores = h("div", { class: "csbot-csat-scores" });
    var card = h("div", { class: "csbot-csat", role: "group", "aria-labelledby": questionId },
      h("p", { id: questionId, class: "csbot-csat-question", text: t("csat_question") }),
      scores,
      h("button", {
        type: "button",
        class: "csbot-link-button",
        text: t("csat_skip"),
        onclick: function () { card.remove(); ui.input.focus(); },
      }));
    for (var s = 1; s <= 5; s++) {
      (function (score) {
        scores.append(h("button", {
          type: "button",
          class: "csbot-csat-score",
          "aria-label": t("csat_score", { score: score }),
          title: t("csat_score_" + score),
          onclick: function () { submitCsat(card, score, id); },
        }, h("span", { "aria-hidden": "true", text: String(score) })));
      })(s);
    }
    ui.log.append(card);
    scrollToEnd(true);
    announce(t("csat_question"));
  }

  function submitCsat(card, score, id) {
    var buttons = card.querySelectorAll("button");
    var hadFocus = card.contains(ui.shadow.activeElement);
    Array.prototype.forEach.call(buttons, function (b) { b.setAttribute("aria-disabled", "true"); });
    if (card.getAttribute("aria-busy") === "true") return;
    card.setAttribute("aria-busy", "true");
    postJson(api("api/v1/conversations/" + encodeURIComponent(id) + "/csat"), { score: score, comment: null })
      .then(function () {
        storage.set("csat:" + id, String(score));
        card.removeAttribute("aria-busy");
        card.replaceChildren(h("p", { class: "csbot-csat-thanks", text: t("csat_thanks") }));
        announce(t("csat_thanks"));
        if (hadFocus) ui.input.focus(); // the focused button is gone
      }, function (err) {
        card.removeAttribute("aria-busy");
        Array.prototype.forEach.call(buttons, function (b) { b.removeAttribute("aria-disabled"); });
        showInlineError(card, err && err.status >= 400 && err.status < 500 && err.detail ? err.detail : t("csat_error"));
      });
  }

  function endChat() {
    if (!state.conversationId) { toggle(false); return; }
    state.ended = true;
    setQuickReplies([]);
    if (!ui.log.querySelector(".csbot-ended")) {
      ui.log.append(h("div", { class: "csbot-notice csbot-ended", role: "note" },
        h("span", { text: t("chat_ended") + " " }),
        h("button", { type: "button", class: "csbot-link-button", text: t("new_chat"), onclick: function () { newChat(); } })));
    }
    showCsat();
    var first = ui.log.querySelector(".csbot-csat-score");
    if (first) first.focus();
  }

  function newChat() {
    closeEvents();
    state.conversationId = null;
    state.handedOff = false;
    state.ended = false;
    state.seen = {};
    storage.del("conversation");
    ui.log.replaceChildren();
    setQuickReplies([]);
    addWelcome();
    ui.input.focus();
  }

  function addWelcome() {
    var bubble = h("div", { class: "csbot-bubble" });
    renderMarkdown(bubble, t("welcome"));
    ui.log.append(h("div", { class: "csbot-msg csbot-msg--welcome" },
      h("span", { class: "csbot-sr csbot-who", text: roleLabel("bot") + ": " }), bubble));
  }

  // ---------------------------------------------------------------- sending
  function saveQueue() {
    var pending = state.queue.map(function (item) { return { text: item.text, client_message_id: item.client_message_id }; });
    if (pending.length) storage.set("queue", JSON.stringify(pending));
    else storage.del("queue");
  }

  function submitInput() {
    var text = ui.input.value;
    if (!text.trim()) return;
    ui.input.value = "";
    autosize();
    send(text);
  }

  function send(text) {
    text = String(text).trim();
    if (!text) return;
    if (state.ended) newChat();
    setQuickReplies([]);
    var item = { text: text, client_message_id: uuid() };
    item.msg = addMessage({ role: "customer", text: text });
    setItemStatus(item, navigator.onLine === false ? "queued" : "sending");
    state.queue.push(item);
    saveQueue();
    processQueue();
  }

  function processQueue() {
    if (state.busy || state.restoring) return;
    state.busy = true;
    (function next() {
      if (!state.queue.length) {
        state.busy = false;
        return;
      }
      var item = state.queue[0];
      deliver(item).catch(function (err) {
        emit("error", { status: err && err.status || 0, detail: err && err.detail || "" });
        setItemStatus(item, "failed", err && err.detail);
      }).then(function () {
        state.queue.shift();
        saveQueue();
        next();
      });
    })();
  }

  function waitOnline() {
    if (navigator.onLine !== false) return Promise.resolve();
    setStatus("offline");
    return new Promise(function (resolve) {
      function done() { window.removeEventListener("online", done); clearTimeout(timer); resolve(); }
      window.addEventListener("online", done);
      var timer = setTimeout(done, MAX_BACKOFF_MS); // navigator.onLine is only a hint
    });
  }

  function ensureConversation() {
    if (state.conversationId) return Promise.resolve(state.conversationId);
    return postJson(api("api/v1/conversations"), { channel: "web" }).then(function (data) {
      if (!data || !data.conversation_id) throw new HttpError(502, t("error_generic"));
      state.conversationId = String(data.conversation_id);
      storage.set("conversation", state.conversationId);
      return state.conversationId;
    });
  }

  // Delivers one queued message; retries network failures (forever, with backoff: the
  // message stays queued), 429 (after Retry-After) and 5xx (a few times). Resolves when the
  // message is answered or rejected; rejects when it gives up (the message gets a Retry).
  function deliver(item) {
    var attempt = 0;
    var serverErrors = 0;
    var freshConversation = false;
    function loop() {
      return waitOnline().then(function () {
        setItemStatus(item, "sending");
        var hadConversation = !!state.conversationId;
        return ensureConversation().then(function () {
          freshConversation = freshConversation || !hadConversation;
          return turn(item);
        }).then(function () {
          setStatus(null);
          if (item.status === "sending") setItemStatus(item, "sent");
        }, function (err) {
          if (!(err instanceof HttpError) && !(err instanceof NetworkError)) err = new NetworkError(String(err));
          if (err.status === 404 && err.scope === "conversation" && !freshConversation) {
            // the server no longer knows this conversation: start a new one, same message id
            closeEvents();
            state.conversationId = null;
            state.handedOff = false;
            storage.del("conversation");
            freshConversation = true;
            return loop();
          }
          if (err.status === 429) {
            var wait = err.retryAfter !== null && err.retryAfter !== undefined ? err.retryAfter : 2;
            wait = Math.min(60, Math.max(1, Math.ceil(wait)));
            setStatus("rate_limited", { seconds: wait });
            setItemStatus(item, "queued");
            return sleep(wait * 1000).then(function () { setStatus(null); return loop(); });
          }
          if (err.status >= 400 && err.status < 500) {
            emit("error", { status: err.status, detail: err.detail });
            setItemStatus(item, "rejected", err.detail);
            if (!ui.input.value) { ui.input.value = item.text; autosize(); } // to fix and resend
            setStatus(null);
            return null;
          }
          if (err.status >= 500) {
            serverErrors += 1;
            if (serverErrors > MAX_SERVER_RETRIES) {
              setStatus(null);
              throw err;
            }
          }
          attempt += 1;
          var delay = backoffMs(attempt);
          setItemStatus(item, "queued");
          setStatus(navigator.onLine === false ? "offline" : "reconnecting", { seconds: Math.ceil(delay / 1000) });
          return sleep(delay).then(loop);
        });
      });
    }
    return loop();
  }

  // One turn: streamed when the browser can read a fetch body, else the JSON endpoint.
  function turn(item) {
    var id = state.conversationId;
    var base = "api/v1/conversations/" + encodeURIComponent(id) + "/messages";
    var streaming = config.streaming && typeof window.ReadableStream === "function" &&
      typeof window.TextDecoder === "function";
    var controller = new AbortController();
    var bot = null;
    var text = "";
    var final = null;
    var failure = null;
    setTyping(true);
    return fetch(api(streaming ? base + "/stream" : base), {
      method: "POST",
      credentials: "omit",
      signal: controller.signal,
      headers: { "Content-Type": "application/json", Accept: streaming ? "text/event-stream" : "application/json" },
      body: JSON.stringify({ text: item.text, client_message_id: item.client_message_id }),
    }).catch(function (err) {
      throw new NetworkError(String(err && err.message || err));
    }).then(function (response) {
      if (!response.ok) {
        return httpError(response).then(function (e) {
          if (e.status === 404) e.scope = "conversation";
          throw e;
        });
      }
      var type = response.headers.get("Content-Type") || "";
      if (!streaming || type.indexOf("text/event-stream") < 0 || !response.body) {
        return response.json().then(function (data) { final = data; });
      }
      return readSse(response, controller, function (ev) {
        var data = ev.data || {};
        if (ev.event === "typing") {
          setTyping(true);
        } else if (ev.event === "text") {
          if (typeof data.text !== "string") return true;
          if (!bot) bot = addMessage({ role: "bot", text: "" });
          bot.el.classList.add("csbot-msg--streaming");
          text += data.text;
          renderMarkdown(bot.bubble, text);
          emit("text", { text: data.text });
          setTyping(false);
          scrollToEnd(false);
        } else if (ev.event === "final") {
          final = data;
          return false;
        } else if (ev.event === "error") {
          failure = new HttpError(Number(data.status) || 500, formatDetail(data.detail) || t("error_generic"));
          if (failure.status === 404) failure.scope = "conversation";
          return false;
        }
        return true;
      });
    }).then(function () {
      if (failure) throw failure;
      if (!final || typeof final !== "object") throw new NetworkError("the reply stream ended early");
      finishTurn(item, bot, final);
    }).catch(function (err) {
      if (bot) bot.el.remove(); // a retry renders the reply again
      throw err;
    }).finally(function () {
      setTyping(false);
      controller.abort();
    });
  }

  function finishTurn(item, bot, final) {
    if (final.conversation_id && String(final.conversation_id) !== state.conversationId) {
      state.conversationId = String(final.conversation_id);
      storage.set("conversation", state.conversationId);
    }
    var mid = final.message_id;
    if (mid !== undefined && mid !== null && state.seen[String(mid)]) {
      // a message restored from the offline queue that the server had already answered
      // (same client_message_id): the history on screen already shows it
      if (bot) bot.el.remove();
      item.msg.el.remove();
      return;
    }
    if (!bot) bot = addMessage({ role: "bot", text: "" });
    bot.el.classList.remove("csbot-msg--streaming");
    bot.text = typeof final.reply === "string" ? final.reply : "";
    renderMarkdown(bot.bubble, bot.text);
    if (final.action) bot.el.setAttribute("data-action", String(final.action));
    if (mid !== undefined && mid !== null) setMessageId(bot, mid);
    state.lastBotMessage = bot;
    setItemStatus(item, "sent");
    emit("reply", final);
    announce(t("bot") + ": " + plainText(bot.text));
    if (!state.isOpen) { state.unread += 1; updateLauncher(); }
    setQuickReplies(final.buttons);
    if (final.action === "handoff") onHandoff();
    if (final.intent === "goodbye" && final.action === "smalltalk") showCsat();
    scrollToEnd(false);
  }

  // ---------------------------------------------------------------- history
  function restoreHistory() {
    var id = state.conversationId;
    if (!id) return Promise.resolve();
    state.restoring = true;
    return fetchWithTimeout(api("api/v1/conversations/" + encodeURIComponent(id)), {
      headers: { Accept: "application/json" },
    }).then(function (r) {
      if (r.status === 404) {
        storage.del("conversation");
        state.conversationId = null;
        return null;
      }
      if (!r.ok) return httpError(r).then(function (e) { throw e; });
      return r.json();
    }).then(function (data) {
      if (!data || state.conversationId !== id) return;
      ui.log.replaceChildren();
      addWelcome();
      var messages = Array.isArray(data.messages) ? data.messages : [];
      var notified = false;
      var last = null;
      messages.forEach(function (m) {
        if (!m || typeof m.text !== "string") return;
        var role = ["customer", "bot", "agent", "system"].indexOf(m.role) >= 0 ? m.role : "system";
        var msg = addMessage({
          role: role,
          text: m.text,
          messageId: m.message_id,
          feedback: m.feedback === "up" || m.feedback === "down" ? m.feedback : null,
        });
        if (role === "bot" && m.action) msg.el.setAttribute("data-action", String(m.action));
        if (role === "bot" && m.action === "handoff" && !notified) {
          notified = true;
          addMessage({ role: "system", text: t("handoff_notice") });
        }
        last = { role: role, buttons: m.buttons };
      });
      if (last && last.role === "bot") setQuickReplies(last.buttons);
      if (data.handed_off) {
        state.handedOff = true;
        if (!notified) addMessage({ role: "system", text: t("handoff_notice") });
        openEvents();
      }
      // messages typed while the history loaded go after it
      state.queue.forEach(function (item) { ui.log.append(item.msg.el); });
      scrollToEnd(true);
    }).catch(function () {
      addMessage({ role: "system", text: t("history_error") });
    }).then(function () {
      state.restoring = false;
    });
  }

  function restoreQueue() {
    var saved;
    try { saved = JSON.parse(storage.get("queue") || "[]"); } catch (e) { saved = []; }
    if (!Array.isArray(saved)) return;
    saved.forEach(function (p) {
      if (!p || typeof p.text !== "string" || typeof p.client_message_id !== "string") return;
      var item = { text: p.text, client_message_id: p.client_message_id };
      item.msg = addMessage({ role: "customer", text: p.text });
      setItemStatus(item, "queued");
      state.queue.push(item);
    });
  }

  // ---------------------------------------------------------------- start
  function start() {
    loadStrings().then(function () {
      build();
      addWelcome();
      restoreQueue(); // before anything can be typed: saveQueue() rewrites the saved queue
      window.addEventListener("offline", function () { setStatus("offline"); });
      window.addEventListener("online", function () {
        if (ui.status.textContent === t("offline")) setStatus(null);
        if (state.handedOff && !state.events) { state.eventsAttempt = 0; openEvents(); }
      });
      // the customer's last open/closed choice in this tab wins over data-open
      var remembered = session.get("open");
      if (remembered === "1" || (remembered === null && config.open)) toggle(true, true);
      return restoreHistory();
    }).then(function () {
      processQueue();
      ui.host.setAttribute("data-ready", "true");
    });
  }

  // A small API for the host page.
  window.CsbotWidget = {
    open: function () { if (ui.root) toggle(true); },
    close: function () { if (ui.root) toggle(false); },
    send: function (text) { if (ui.root) send(text); },
    conversationId: function () { return state.conversationId; },
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
