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
    // how long the server keeps answering to a conversation's token after its last
    // activity (CSBOT_CONVERSATION_READ_HOURS, 30 days by default)
    readWindowMs: positiveNumber(ds.readWindowHours, 720) * 3600 * 1000,
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
  var HISTORY_PAGE_SIZE = 20;
  var TOKEN_HEADER = "X-Conversation-Token";

  function normaliseLang(value) {
    var lang = String(value || "").trim().toLowerCase().split(/[-_]/)[0];
    return /^[a-z]{2,3}$/.test(lang) ? lang : null;
  }

  function positiveNumber(value, fallback) {
    var n = Number(value);
    return value && isFinite(n) && n > 0 ? n : fallback;
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

  // The conversation is kept as one record: its id, the access token that the server
  // handed out once when it was created (every later call must show it), and the time of
  // the last activity. The server stops answering to the token once the conversation has
  // been idle past its read window, so an older record is dropped without asking.
  function loadConversation() {
    var raw = storage.get("conversation");
    if (!raw) return null;
    var saved = null;
    try { saved = JSON.parse(raw); } catch (e) { saved = null; }
    var fresh = saved && typeof saved.id === "string" && saved.id &&
      typeof saved.token === "string" && saved.token &&
      typeof saved.at === "number" && Date.now() - saved.at < config.readWindowMs;
    if (!fresh) {
      storage.del("conversation");
      return null;
    }
    return { id: saved.id, token: saved.token, at: saved.at, csat: Number(saved.csat) || null };
  }

  function saveConversation() {
    var conv = state.conv;
    // an ended chat is never written back: the next person at this browser must not get it
    if (!conv || state.ended) return;
    storage.set("conversation", JSON.stringify({ id: conv.id, token: conv.token, at: conv.at, csat: conv.csat }));
  }

  // Something happened in the conversation: its read window starts again.
  function touch(conv, when) {
    var at = when === undefined ? Date.now() : Math.min(Date.now(), when); // NaN: no change
    if (!conv || !(at > conv.at)) return;
    conv.at = at;
    if (conv === state.conv) saveConversation();
  }

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
    more: "M5 10a2 2 0 1 0 0 4 2 2 0 1 0 0-4zm7 0a2 2 0 1 0 0 4 2 2 0 1 0 0-4zm7 0a2 2 0 1 0 0 4 2 2 0 1 0 0-4z",
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
  function HttpError(status, detail, retryAfter, code) {
    this.status = status;
    this.detail = detail;
    this.retryAfter = retryAfter;
    this.code = code || null; // the server's stable error code: branch on it, not on the text
  }
  function NetworkError(reason) {
    this.status = 0;
    this.detail = reason;
    this.code = null;
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
      var data = null;
      try { data = JSON.parse(body); } catch (e) { data = null; }
      var detail = data && typeof data === "object" ? formatDetail(data.detail) : "";
      var code = data && typeof data.code === "string" ? data.code : null;
      return new HttpError(response.status, detail || t("error_generic"), retryAfter, code);
    }, function () {
      return new HttpError(response.status, t("error_generic"), retryAfter);
    });
  }

  // The server gives the same 404 for an unknown id, a wrong or missing token and a
  // conversation idle past its read window. `aboutConversation`: the request addressed
  // the conversation itself, so a 404 without a code can mean nothing else.
  function isConversationGone(err, aboutConversation) {
    return !!err && err.status === 404 &&
      (err.code === "conversation_not_found" || (!!aboutConversation && !err.code));
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

  function conversationUrl(conv, rest) {
    return api("api/v1/conversations/" + encodeURIComponent(conv.id) + (rest || ""));
  }

  // The access token only ever travels in a header: URLs end up in access logs, proxies
  // and the browser's history.
  function headersFor(conv, extra) {
    var headers = Object.assign({ Accept: "application/json" }, extra || {});
    if (conv) headers[TOKEN_HEADER] = conv.token;
    return headers;
  }

  function requestJson(method, url, conv, body) {
    var options = { method: method, headers: headersFor(conv) };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetchWithTimeout(url, options).then(function (r) {
      if (!r.ok) return httpError(r).then(function (e) { throw e; });
      return r.status === 204 ? null : r.json().catch(function () { return null; });
    });
  }

  function canStream() {
    return typeof window.ReadableStream === "function" && typeof window.TextDecoder === "function";
  }

  // Server-sent events over a fetch body: EventSource can neither POST nor send the
  // token header, so both the reply stream and the live events are read this way.
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

  // Pending waits (backoff, offline): they end early when the browser comes back online,
  // or when the chat is ended and there is nothing left to wait for.
  var sleepers = [];

  function sleep(ms) {
    return new Promise(function (resolve) {
      var timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        window.removeEventListener("online", done);
        var i = sleepers.indexOf(done);
        if (i >= 0) sleepers.splice(i, 1);
        resolve();
      }
      sleepers.push(done);
      window.addEventListener("online", done);
    });
  }

  function wakeSleepers() {
    sleepers.slice().forEach(function (done) { done(); });
  }

  function backoffMs(attempt) {
    var base = Math.min(MAX_BACKOFF_MS, 1000 * Math.pow(2, Math.max(0, attempt - 1)));
    return Math.round(base * (0.75 + Math.random() * 0.5));
  }

  // ---------------------------------------------------------------- state
  var state = {
    conv: loadConversation(), // {id, token, at, csat} or null
    isOpen: false,
    queue: [],
    busy: false,
    restoring: false, // the history is being fetched: sending waits for it
    handedOff: false,
    ended: false, // End chat: the conversation stays on screen, but no longer in storage
    seen: {}, // message ids already on screen
    oldestId: null, // the oldest message on screen, for "earlier messages"
    loadingEarlier: false,
    events: null, // the live events reader: {controller, conv}
    eventsAttempt: 0,
    eventsTimer: null,
    eventsCursor: null, // the last live event's id: where a reconnect resumes
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
    ui.menuButton = h("button", {
      type: "button",
      class: "csbot-menu-button",
      "aria-label": t("menu"),
      title: t("menu"),
      "aria-expanded": "false",
      "aria-controls": "csbot-menu",
      onclick: function () { toggleMenu(); },
    }, icon("more"));
    ui.menu = h("div", { id: "csbot-menu", class: "csbot-menu", role: "group", "aria-label": t("menu"), hidden: true });
    ui.panel = h("section", {
      id: "csbot-panel",
      class: "csbot-panel",
      role: "dialog",
      "aria-modal": "false",
      "aria-labelledby": titleId,
      hidden: true,
      onclick: function (e) {
        // a click anywhere else closes the menu (composedPath: the clicked node may have
        // been replaced by the time the click gets here)
        var path = e.composedPath();
        if (!ui.menu.hidden && path.indexOf(ui.menu) < 0 && path.indexOf(ui.menuButton) < 0) closeMenu(false);
      },
    },
    h("header", { class: "csbot-header" },
      h("div", { class: "csbot-heading" },
        h("h2", { id: titleId, class: "csbot-title", text: config.title || t("title") }),
        h("p", { class: "csbot-subtitle", text: t("subtitle") })),
      ui.endButton,
      ui.menuButton,
      h("button", {
        type: "button",
        class: "csbot-close",
        "aria-label": t("close"),
        title: t("close"),
        onclick: function () { toggle(false); },
      }, icon("close")),
      ui.menu),
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
        if (e.key !== "Escape") return;
        if (!ui.menu.hidden) {
          e.stopPropagation();
          closeMenu(true);
        } else if (state.isOpen) {
          e.stopPropagation();
          toggle(false);
        }
      },
    }, ui.panel, ui.launcher);
    shadow.append(ui.root);
    ui.host = host;
    ui.shadow = shadow;
    updateLauncher();
    updateControls();

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

  // The menu only offers what applies to a conversation, so it shows while there is one.
  function updateControls() {
    if (!ui.menuButton) return;
    ui.menuButton.hidden = !state.conv;
    if (!state.conv) closeMenu(false);
  }

  function toggle(open, keepFocus) {
    var wasOpen = state.isOpen;
    state.isOpen = open === undefined ? !state.isOpen : !!open;
    ui.panel.hidden = !state.isOpen;
    ui.root.classList.toggle("csbot-root--open", state.isOpen);
    session.set("open", state.isOpen ? "1" : "0");
    if (state.isOpen) state.unread = 0;
    else closeMenu(false);
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

  // ---------------------------------------------------------------- the menu
  function toggleMenu() {
    if (!ui.menu.hidden) {
      closeMenu(true);
      return;
    }
    if (!state.conv) return;
    ui.menu.replaceChildren(h("button", {
      type: "button",
      class: "csbot-menu-item",
      text: t("delete_conversation"),
      onclick: confirmDelete,
    }));
    ui.menu.hidden = false;
    ui.menuButton.setAttribute("aria-expanded", "true");
    ui.menu.querySelector("button").focus();
  }

  function closeMenu(returnFocus) {
    if (!ui.menu || ui.menu.hidden) return;
    ui.menu.hidden = true;
    ui.menu.replaceChildren();
    ui.menuButton.setAttribute("aria-expanded", "false");
    if (returnFocus && !ui.menuButton.hidden) ui.menuButton.focus();
  }

  // Deleting cannot be undone: ask first, with Cancel focused.
  function confirmDelete() {
    var cancel = h("button", {
      type: "button",
      class: "csbot-menu-item",
      text: t("cancel"),
      onclick: function () { closeMenu(true); },
    });
    ui.menu.replaceChildren(
      h("p", { class: "csbot-menu-text", text: t("delete_confirm") }),
      h("div", { class: "csbot-menu-actions" },
        h("button", {
          type: "button",
          class: "csbot-menu-item csbot-menu-item--danger",
          text: t("delete"),
          onclick: deleteConversation,
        }),
        cancel));
    cancel.focus();
  }

  function deleteConversation() {
    var conv = state.conv;
    if (!conv) { closeMenu(false); return; }
    if (ui.menu.getAttribute("aria-busy") === "true") return;
    ui.menu.setAttribute("aria-busy", "true");
    requestJson("DELETE", conversationUrl(conv), conv).catch(function (err) {
      // already gone on the server: there is nothing left to delete
      if (!isConversationGone(err, true)) throw err;
    }).then(function () {
      ui.menu.removeAttribute("aria-busy");
      if (state.conv !== conv) return;
      closeMenu(false);
      newChat();
      addMessage({ role: "system", text: t("deleted") });
      announce(t("deleted"));
    }, function (err) {
      ui.menu.removeAttribute("aria-busy");
      showInlineError(ui.menu, err && err.status >= 400 && err.status < 500 && err.detail ? err.detail : t("delete_error"));
    });
  }

  // ---------------------------------------------------------------- messages
  var ROLES = ["customer", "bot", "agent", "system"];

  function roleLabel(role) {
    return t({ customer: "you", bot: "bot", agent: "agent", system: "system" }[role] || "bot");
  }

  // A message's elements, not yet on the page. `kind` tags a system notice (handoff).
  function createMessage(m) {
    var role = m.role;
    if (role === "system") {
      var note = h("div", { class: "csbot-notice" + (m.kind ? " csbot-notice--" + m.kind : ""), role: "note" }, m.text);
      return { el: note, role: role };
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
    var msg = {
      el: el,
      bubble: bubble,
      role: role,
      text: m.text,
      messageId: null,
      feedback: m.feedback || null,
      conv: m.conv || state.conv, // a rating goes to the conversation the message is from
    };
    if (role === "customer") {
      msg.statusEl = h("div", { class: "csbot-msg-status", hidden: true });
      el.append(msg.statusEl);
    }
    if (m.messageId !== undefined && m.messageId !== null) setMessageId(msg, m.messageId);
    return msg;
  }

  function addMessage(m) {
    var msg = createMessage(m);
    ui.log.append(msg.el);
    scrollToEnd(m.role === "customer");
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

  // One rating per message; the server replaces it when the customer changes their mind.
  function sendFeedback(msg, rating) {
    var conv = msg.conv;
    if (msg.messageId === null || !conv || msg.feedback === rating || msg.feedbackPending) return;
    var previous = msg.feedback;
    msg.feedback = rating;
    msg.feedbackPending = true;
    showFeedbackState(msg);
    var path = "/messages/" + encodeURIComponent(msg.messageId) + "/feedback";
    requestJson("POST", conversationUrl(conv, path), conv, { rating: rating })
      .then(function () {
        announce(t("feedback_thanks"));
      }, function (err) {
        msg.feedback = previous;
        showFeedbackState(msg);
        announce(t("feedback_error"));
        if (isConversationGone(err, false)) conversationGone(conv);
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
    if (item.cancelled && status !== "cancelled") return; // the chat ended: it stays unsent
    var el = item.msg.el;
    item.status = status;
    ["queued", "sending", "sent", "failed", "rejected", "cancelled"].forEach(function (s) {
      el.classList.toggle("csbot-msg--" + s, s === status);
    });
    var statusEl = item.msg.statusEl;
    statusEl.replaceChildren();
    statusEl.classList.toggle("csbot-msg-status--error", status === "failed" || status === "rejected");
    if (status === "queued") statusEl.append(t("queued"));
    else if (status === "cancelled") statusEl.append(t("not_sent_ended"));
    else if (status === "rejected") {
      statusEl.append(h("span", { class: "csbot-error-detail", role: "alert" }, detail || t("error_generic")));
    } else if (status === "failed") {
      statusEl.append(h("span", { role: "alert" }, (detail ? detail + " " : "") + t("failed") + " "),
        h("button", {
          type: "button",
          class: "csbot-retry",
          text: t("retry"),
          onclick: function () {
            if (state.ended) return; // End chat dropped it
            setItemStatus(item, "queued");
            state.queue.push(item);
            saveQueue();
            processQueue();
          },
        }));
    }
    statusEl.hidden = !statusEl.firstChild;
  }

  // ---------------------------------------------------------------- the conversation
  // The server no longer answers for this conversation (unknown, wrong token, idle past
  // the read window): forget it; the next message starts a new one. The screen keeps
  // what it shows, and nothing typed is lost.
  function conversationGone(conv) {
    if (!conv || state.conv !== conv) return;
    forgetConversation();
  }

  function forgetConversation() {
    closeEvents();
    state.conv = null;
    state.handedOff = false;
    storage.del("conversation");
    updateControls();
  }

  // ---------------------------------------------------------------- handoff and agent messages
  function onHandoff() {
    if (state.handedOff) return;
    state.handedOff = true;
    addMessage({ role: "system", kind: "handoff", text: t("handoff_notice") });
    announce(t("handoff_notice"));
    openEvents();
  }

  function closeEvents() {
    clearTimeout(state.eventsTimer);
    state.eventsTimer = null;
    var live = state.events;
    state.events = null;
    state.eventsAttempt = 0;
    state.eventsCursor = null;
    if (live) live.controller.abort();
  }

  function maxSeenId() {
    var max = 0;
    Object.keys(state.seen).forEach(function (id) {
      if (/^\d+$/.test(id) && Number(id) > max) max = Number(id);
    });
    return max;
  }

  // Live events (agent messages, handoffs) read with fetch, since the token goes in a
  // header; after a drop it reconnects with backoff and resumes after the last event
  // (Last-Event-ID), so nothing is missed and nothing shows twice.
  function openEvents() {
    var conv = state.conv;
    if (state.events || !conv || state.ended || !canStream()) return;
    clearTimeout(state.eventsTimer);
    state.eventsTimer = null;
    // the first time: everything up to the newest message on screen is already shown
    if (state.eventsCursor === null) state.eventsCursor = maxSeenId();
    var live = { controller: new AbortController(), conv: conv };
    state.events = live;
    var headers = headersFor(conv, { Accept: "text/event-stream" });
    if (state.eventsCursor > 0) headers["Last-Event-ID"] = String(state.eventsCursor);
    fetch(conversationUrl(conv, "/events"), {
      credentials: "omit",
      cache: "no-store",
      signal: live.controller.signal,
      headers: headers,
    }).catch(function (err) {
      throw new NetworkError(String(err && err.message || err));
    }).then(function (response) {
      if (!response.ok) return httpError(response).then(function (e) { throw e; });
      if (state.events !== live) return null;
      state.eventsAttempt = 0;
      return readSse(response, live.controller, function (ev) {
        if (state.events !== live) return false;
        onLiveEvent(ev, conv);
        return true;
      });
    }).then(function () { return null; }, function (err) { return err; }).then(function (err) {
      if (state.events !== live) return; // closed on purpose
      state.events = null;
      if (isConversationGone(err, true)) {
        conversationGone(conv);
        return;
      }
      var delay;
      if (err && err.status === 429) {
        // too many open streams (other tabs): wait as long as the server asks
        var wait = err.retryAfter !== null && err.retryAfter !== undefined ? err.retryAfter : 5;
        delay = Math.min(60, Math.max(1, Math.ceil(wait))) * 1000;
      } else if (err && err.status >= 400 && err.status < 500) {
        return; // asking again gets the same answer
      } else {
        // a drop, a server restart, the stream ending: come back, more slowly each time
        state.eventsAttempt += 1;
        delay = backoffMs(state.eventsAttempt);
      }
      state.eventsTimer = setTimeout(openEvents, delay);
    });
  }

  function onLiveEvent(ev, conv) {
    if (ev.id && /^\d+$/.test(ev.id)) state.eventsCursor = Math.max(state.eventsCursor || 0, Number(ev.id));
    var data = ev.data && typeof ev.data === "object" ? ev.data : {};
    if (ev.event === "agent_message") {
      if (typeof data.text !== "string") return;
      var mid = data.message_id !== undefined && data.message_id !== null ? data.message_id : ev.id;
      if (mid !== undefined && mid !== null && mid !== "" && state.seen[String(mid)]) return;
      setQuickReplies([]);
      addMessage({ role: "agent", text: data.text, messageId: mid === "" ? null : mid });
      touch(conv);
      announce(t("agent") + ": " + plainText(data.text));
      if (!state.isOpen) { state.unread += 1; updateLauncher(); }
    } else if (ev.event === "handoff") {
      onHandoff();
    } else if (ev.event === "handed_back" || ev.event === "resolved") {
      var seenId = data.message_id !== undefined && data.message_id !== null ? String(data.message_id) : null;
      if (seenId && state.seen[seenId]) return;
      // the bot answers again: a later handoff shows its notice again
      state.handedOff = false;
      addMessage({ role: "system", text: t(ev.event + "_notice"), messageId: seenId });
      announce(t(ev.event + "_notice"));
      if (ev.event === "resolved") showCsat();
    }
  }

  // ---------------------------------------------------------------- CSAT
  function showCsat() {
    var conv = state.conv;
    if (!conv || conv.csat || ui.log.querySelector(".csbot-csat")) return;
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
          onclick: function () { submitCsat(card, score, conv); },
        }, h("span", { "aria-hidden": "true", text: String(score) })));
      })(s);
    }
    ui.log.append(card);
    scrollToEnd(true);
    announce(t("csat_question"));
  }

  function submitCsat(card, score, conv) {
    var buttons = card.querySelectorAll("button");
    var hadFocus = card.contains(ui.shadow.activeElement);
    Array.prototype.forEach.call(buttons, function (b) { b.setAttribute("aria-disabled", "true"); });
    if (card.getAttribute("aria-busy") === "true") return;
    card.setAttribute("aria-busy", "true");
    requestJson("POST", conversationUrl(conv, "/csat"), conv, { score: score })
      .then(function () {
        conv.csat = score;
        if (conv === state.conv) saveConversation();
        card.removeAttribute("aria-busy");
        card.replaceChildren(h("p", { class: "csbot-csat-thanks", text: t("csat_thanks") }));
        announce(t("csat_thanks"));
        if (hadFocus) ui.input.focus(); // the focused button is gone
      }, function (err) {
        card.removeAttribute("aria-busy");
        Array.prototype.forEach.call(buttons, function (b) { b.removeAttribute("aria-disabled"); });
        if (isConversationGone(err, true)) conversationGone(conv);
        showInlineError(card, err && err.status >= 400 && err.status < 500 && err.detail ? err.detail : t("csat_error"));
      });
  }

  // End chat: the transcript stays on screen (and can still be rated), but nothing of it
  // stays in this browser - whoever uses it next starts afresh, also after a reload.
  function endChat() {
    closeMenu(false);
    if (!state.conv && !state.queue.length) { toggle(false); return; }
    if (!state.ended) {
      state.ended = true;
      closeEvents();
      cancelQueue();
      storage.del("conversation");
      Array.prototype.forEach.call(ui.log.querySelectorAll(".csbot-retry"), function (b) { b.remove(); });
      setQuickReplies([]);
      ui.log.append(h("div", { class: "csbot-notice csbot-ended", role: "note" },
        h("span", { text: t("chat_ended") + " " }),
        h("button", { type: "button", class: "csbot-link-button", text: t("new_chat"), onclick: function () { newChat(); } })));
      showCsat();
    }
    var first = ui.log.querySelector(".csbot-csat-score") || ui.log.querySelector(".csbot-ended button");
    if (first) first.focus();
  }

  function newChat(takeFocus) {
    cancelQueue();
    closeEvents();
    state.conv = null;
    state.handedOff = false;
    state.ended = false;
    state.seen = {};
    state.oldestId = null;
    storage.del("conversation");
    updateControls();
    ui.earlier = null;
    ui.log.replaceChildren();
    setQuickReplies([]);
    addWelcome();
    if (takeFocus !== false) ui.input.focus();
  }

  function createWelcome() {
    var bubble = h("div", { class: "csbot-bubble" });
    renderMarkdown(bubble, t("welcome"));
    return h("div", { class: "csbot-msg csbot-msg--welcome" },
      h("span", { class: "csbot-sr csbot-who", text: roleLabel("bot") + ": " }), bubble);
  }

  function addWelcome() {
    ui.log.append(createWelcome());
  }

  // ---------------------------------------------------------------- sending
  function saveQueue() {
    var pending = state.queue.map(function (item) { return { text: item.text, client_message_id: item.client_message_id }; });
    if (pending.length) storage.set("queue", JSON.stringify(pending));
    else storage.del("queue");
  }

  // Messages still waiting are dropped (shown as not sent), from the screen's queue and
  // from storage; one being delivered right now is stopped.
  function cancelQueue() {
    var pending = state.queue;
    state.queue = [];
    pending.forEach(function (item) {
      setItemStatus(item, "cancelled");
      item.cancelled = true;
      if (item.controller) item.controller.abort();
    });
    storage.del("queue");
    wakeSleepers();
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
        // by identity: ending the chat may have emptied the queue meanwhile
        var i = state.queue.indexOf(item);
        if (i >= 0) state.queue.splice(i, 1);
        saveQueue();
        next();
      });
    })();
  }

  function waitOnline() {
    if (navigator.onLine !== false) return Promise.resolve();
    setStatus("offline");
    return sleep(MAX_BACKOFF_MS); // ends when the browser is back online; onLine is only a hint
  }

  function ensureConversation(item) {
    if (state.conv) return Promise.resolve(state.conv);
    return requestJson("POST", api("api/v1/conversations"), null, { channel: "web" }).then(function (data) {
      if (item.cancelled) return null; // the chat was ended meanwhile: leave this one unused
      if (!data || !data.conversation_id || typeof data.access_token !== "string" || !data.access_token) {
        throw new HttpError(502, t("error_generic"));
      }
      // the token is shown only this once: it is kept with the id, and nowhere else
      state.conv = { id: String(data.conversation_id), token: data.access_token, at: Date.now(), csat: null };
      state.eventsCursor = null;
      saveConversation();
      updateControls();
      return state.conv;
    });
  }

  // Delivers one queued message; retries network failures (forever, with backoff: the
  // message stays queued), 429 (after Retry-After) and 5xx (a few times). Resolves when the
  // message is answered, rejected or dropped by End chat; rejects when it gives up (the
  // message gets a Retry).
  function deliver(item) {
    var attempt = 0;
    var serverErrors = 0;
    var freshConversation = false;
    function loop() {
      if (item.cancelled) return Promise.resolve(null);
      return waitOnline().then(function () {
        if (item.cancelled) return null;
        setItemStatus(item, "sending");
        var hadConversation = !!state.conv;
        return ensureConversation(item).then(function (conv) {
          if (!conv || item.cancelled) return null;
          freshConversation = freshConversation || !hadConversation;
          return turn(item, conv).then(function () {
            setStatus(null);
            if (item.status === "sending") setItemStatus(item, "sent");
          });
        }).catch(function (err) {
          if (item.cancelled) {
            setStatus(null);
            return null;
          }
          if (!(err instanceof HttpError) && !(err instanceof NetworkError)) err = new NetworkError(String(err));
          if (isConversationGone(err, true) && !freshConversation) {
            // the server no longer knows this conversation: a new one, same message id
            forgetConversation();
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
  function turn(item, conv) {
    var streaming = config.streaming && canStream();
    var controller = new AbortController();
    var bot = null;
    var text = "";
    var final = null;
    var failure = null;
    item.controller = controller;
    setTyping(true);
    return fetch(conversationUrl(conv, streaming ? "/messages/stream" : "/messages"), {
      method: "POST",
      credentials: "omit",
      signal: controller.signal,
      headers: headersFor(conv, {
        "Content-Type": "application/json",
        Accept: streaming ? "text/event-stream" : "application/json",
      }),
      body: JSON.stringify({ text: item.text, client_message_id: item.client_message_id }),
    }).catch(function (err) {
      throw new NetworkError(String(err && err.message || err));
    }).then(function (response) {
      if (!response.ok) return httpError(response).then(function (e) { throw e; });
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
          if (!bot) bot = addMessage({ role: "bot", text: "", conv: conv });
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
          failure = new HttpError(Number(data.status) || 500, formatDetail(data.detail) || t("error_generic"),
            null, typeof data.code === "string" ? data.code : null);
          return false;
        }
        return true;
      });
    }).then(function () {
      if (failure) throw failure;
      if (!final || typeof final !== "object") throw new NetworkError("the reply stream ended early");
      if (item.cancelled) {
        if (bot) bot.el.remove();
        return;
      }
      finishTurn(item, bot, final, conv);
    }).catch(function (err) {
      if (bot) bot.el.remove(); // a retry renders the reply again
      throw err;
    }).finally(function () {
      setTyping(false);
      item.controller = null;
      controller.abort();
    });
  }

  function finishTurn(item, bot, final, conv) {
    touch(conv);
    var mid = final.message_id;
    if (mid !== undefined && mid !== null && state.seen[String(mid)]) {
      // a message restored from the offline queue that the server had already answered
      // (same client_message_id): the history on screen already shows it
      if (bot) bot.el.remove();
      item.msg.el.remove();
      return;
    }
    if (final.action === "agent") {
      // a support agent holds the conversation: the bot stays silent, the agent answers
      // through the live events
      if (bot) bot.el.remove();
      setItemStatus(item, "sent");
      emit("reply", final);
      return;
    }
    if (!bot) bot = addMessage({ role: "bot", text: "", conv: conv });
    bot.el.classList.remove("csbot-msg--streaming");
    bot.text = typeof final.reply === "string" ? final.reply : "";
    renderMarkdown(bot.bubble, bot.text);
    if (final.action) bot.el.setAttribute("data-action", String(final.action));
    if (mid !== undefined && mid !== null) setMessageId(bot, mid);
    setItemStatus(item, "sent");
    emit("reply", final);
    announce(t("bot") + ": " + plainText(bot.text));
    if (!state.isOpen) { state.unread += 1; updateLauncher(); }
    setQuickReplies(final.buttons);
    if (final.action === "handoff") onHandoff();
    if (final.ends_conversation === true) showCsat();
    scrollToEnd(false);
  }

  // ---------------------------------------------------------------- history
  function historyUrl(conv, before) {
    var query = "?limit=" + HISTORY_PAGE_SIZE;
    if (before !== null && before !== undefined) query += "&before=" + encodeURIComponent(before);
    return conversationUrl(conv, query);
  }

  // A page of the history as elements, oldest first; a handoff gets its notice once.
  function renderHistory(messages, conv) {
    var fragment = document.createDocumentFragment();
    messages.forEach(function (m) {
      if (!m || typeof m.text !== "string") return;
      if (m.message_id !== undefined && m.message_id !== null && state.seen[String(m.message_id)]) return;
      var role = ROLES.indexOf(m.role) >= 0 ? m.role : "system";
      // notices of the agents' side are shown in the customer's language
      var notice = role === "system" && (m.action === "handed_back" || m.action === "resolved");
      var msg = createMessage({
        role: role,
        text: notice ? t(m.action + "_notice") : m.text,
        messageId: m.message_id,
        feedback: m.feedback === "up" || m.feedback === "down" ? m.feedback : null,
        conv: conv,
      });
      if (role === "bot" && m.action) msg.el.setAttribute("data-action", String(m.action));
      fragment.append(msg.el);
      if (role === "bot" && m.action === "handoff" && !ui.log.querySelector(".csbot-notice--handoff") &&
          !fragment.querySelector(".csbot-notice--handoff")) {
        fragment.append(createMessage({ role: "system", kind: "handoff", text: t("handoff_notice") }).el);
      }
    });
    return fragment;
  }

  function pageMessages(data) {
    return data && Array.isArray(data.messages) ? data.messages : [];
  }

  function noteOldest(messages) {
    var first = messages.length ? messages[0] : null;
    if (first && first.message_id !== undefined && first.message_id !== null) state.oldestId = first.message_id;
  }

  // Shown above the messages while the server has older ones.
  function createEarlierControl() {
    ui.earlier = h("div", { class: "csbot-earlier" },
      h("button", {
        type: "button",
        class: "csbot-link-button csbot-earlier-button",
        text: t("earlier_messages"),
        onclick: loadEarlier,
      }));
    return ui.earlier;
  }

  // The latest page of the conversation, after a reload.
  function restoreHistory() {
    var conv = state.conv;
    if (!conv) return Promise.resolve();
    state.restoring = true;
    return requestJson("GET", historyUrl(conv, null), conv).then(function (data) {
      if (!data || state.conv !== conv) return;
      var messages = pageMessages(data);
      ui.log.replaceChildren(data.has_more === true ? createEarlierControl() : createWelcome());
      ui.log.append(renderHistory(messages, conv));
      noteOldest(messages);
      var last = messages.length ? messages[messages.length - 1] : null;
      if (last && last.role === "bot") setQuickReplies(last.buttons);
      if (last && typeof last.created_at === "string") touch(conv, Date.parse(last.created_at));
      if (data.handed_off) {
        state.handedOff = true;
        if (!ui.log.querySelector(".csbot-notice--handoff")) {
          addMessage({ role: "system", kind: "handoff", text: t("handoff_notice") });
        }
        openEvents();
      }
      // messages typed while the history loaded go after it
      state.queue.forEach(function (item) { ui.log.append(item.msg.el); });
      scrollToEnd(true);
    }).catch(function (err) {
      if (isConversationGone(err, true)) {
        conversationGone(conv);
        return;
      }
      addMessage({ role: "system", text: t("history_error") });
    }).then(function () {
      state.restoring = false;
    });
  }

  // The page before the oldest message on screen, put above it without moving what the
  // customer is reading.
  function loadEarlier() {
    var conv = state.conv;
    var control = ui.earlier;
    if (!conv || !control || state.loadingEarlier || state.oldestId === null) return;
    var button = control.querySelector("button");
    state.loadingEarlier = true;
    button.setAttribute("aria-busy", "true");
    requestJson("GET", historyUrl(conv, state.oldestId), conv).then(function (data) {
      if (!data || state.conv !== conv || ui.earlier !== control) return;
      var messages = pageMessages(data);
      var log = ui.log;
      var fromBottom = log.scrollHeight - log.scrollTop;
      control.after(renderHistory(messages, conv));
      noteOldest(messages);
      if (data.has_more !== true || !messages.length) {
        var hadFocus = ui.shadow.activeElement === button;
        control.replaceWith(createWelcome());
        ui.earlier = null;
        if (hadFocus) log.focus({ preventScroll: true }); // the button is gone: stay in the log
      }
      log.scrollTop = log.scrollHeight - fromBottom;
      announce(t("earlier_loaded"));
    }, function (err) {
      if (isConversationGone(err, true)) conversationGone(conv);
      showInlineError(control, t("history_error"));
    }).then(function () {
      state.loadingEarlier = false;
      button.removeAttribute("aria-busy");
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
      // End chat or Delete in another tab of this site: this tab lets the conversation go
      // too, rather than write it back to storage on its next activity
      window.addEventListener("storage", function (e) {
        if (e.key !== null && e.key !== prefix + "conversation") return;
        if (e.key !== null && e.newValue !== null) return;
        if (state.conv && !state.ended && !loadConversation()) newChat(false);
      });
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

  // A small API for the host page. The access token is deliberately not part of it: a
  // script on the page has no business holding the key to the conversation.
  window.CsbotWidget = {
    open: function () { if (ui.root) toggle(true); },
    close: function () { if (ui.root) toggle(false); },
    send: function (text) { if (ui.root) send(text); },
    conversationId: function () { return state.conv ? state.conv.id : null; },
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
