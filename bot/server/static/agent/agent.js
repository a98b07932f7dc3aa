/*
 * csbot agent page (/agent). Plain JavaScript, no dependencies, no build step.
 *
 * Talks to /api/v1/agent/ on the server it was loaded from: the session cookie
 * (HttpOnly) goes along by itself, and every POST/DELETE carries the session's CSRF token
 * in X-CSRF-Token. The queue and the open conversation stay live through the events
 * stream (EventSource, same origin).
 *
 * Safety rule: text from the server (messages, notes, names, sources) is only ever put
 * into the page as text (textContent / text nodes); this file never assigns innerHTML or
 * outerHTML, nor calls insertAdjacentHTML or document.write.
 *
 * Nothing typed is lost: the reply being written is kept in sessionStorage as it is typed,
 * so when the session has ended (401) the sign-in form comes back and, once signed in,
 * the same conversation opens with the draft in its box.
 */
(function () {
  "use strict";

  var script = document.currentScript || document.querySelector('script[src$="agent.js"]');
  // the page's files live under <base>/agent/static/: the API is under <base>/api/v1/agent/
  var BASE = new URL("../../", script.src).href;
  var API = "api/v1/agent/";
  var TITLE = "csbot agent";
  var KEEP = "csbot-agent:";
  var RECONNECT_MS = 3000;
  var MAX_SUGGESTIONS = 3;

  var state = {
    me: null,            // {id, name, role}
    csrf: null,
    tab: "queue",
    queue: null,
    queueAt: 0,
    queueSignature: null,
    knownPending: null,  // ids seen pending, to notice new ones
    conversationId: null,
    conversation: null,
    messageIds: {},
    lastMessageId: 0,
    lastCustomerId: 0,
    suggestions: null,
    suggestion: null,    // {id, text, rank} of the suggestion inserted in the box
    events: null,
    eventsKey: null,
    reconnect: null,
    users: null,
  };

  // ---------------------------------------------------------------- small helpers
  function $(id) { return document.getElementById(id); }

  function make(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text != null) node.textContent = String(text);
    return node;
  }

  function button(label, cls, onClick, ariaLabel) {
    var b = make("button", cls, label);
    b.type = "button";
    if (ariaLabel) b.setAttribute("aria-label", ariaLabel);
    b.addEventListener("click", onClick);
    return b;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function url(path) { return new URL(path, BASE).href; }

  function shortId(id) { return String(id).slice(0, 8); }

  function percent(v) { return v == null ? "–" : (Math.round(v * 1000) / 10) + "%"; }

  function score(v) { return typeof v === "number" ? v.toFixed(2) : "–"; }

  function duration(seconds) {
    if (seconds == null || !isFinite(seconds)) return "–";
    seconds = Math.max(0, Math.round(seconds));
    if (seconds < 60) return seconds + " s";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min";
    var hours = Math.floor(minutes / 60);
    return hours + " h " + (minutes % 60) + " min";
  }

  function when(iso) {
    if (!iso) return "";
    var d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    return d.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
  }

  function timeEl(iso) {
    var t = make("time", null, when(iso));
    if (iso) t.dateTime = iso;
    return t;
  }

  function agentName(agent) {
    if (!agent) return null;
    return typeof agent === "object" ? agent.name : String(agent);
  }

  function keep(key, value) {
    try {
      if (value == null) window.sessionStorage.removeItem(KEEP + key);
      else window.sessionStorage.setItem(KEEP + key, JSON.stringify(value));
    } catch (e) { /* storage off: the draft lives as long as the page */ }
  }

  function kept(key) {
    try { return JSON.parse(window.sessionStorage.getItem(KEEP + key) || "null"); } catch (e) { return null; }
  }

  // ---------------------------------------------------------------- messages to the agent
  function say(text) {
    $("status").textContent = text || "";
  }

  function fail(text) {
    $("alert").textContent = text || "";
  }

  function announce(text) {
    var a = $("announcer");
    a.textContent = "";
    // a fresh text node, a tick later, so that a repeat is announced too
    window.setTimeout(function () { a.textContent = text; }, 50);
  }

  function errorText(err) {
    if (!err) return "Something went wrong.";
    var body = err.body || {};
    if (body.code === "conversation_held") {
      return (body.holder || "Another agent") + " has it.";
    }
    var detail = body.detail;
    if (Array.isArray(detail)) {
      detail = detail.map(function (d) { return d && d.msg ? d.msg : String(d); }).join("; ");
    }
    if (typeof detail === "string" && detail) return detail;
    if (err.status === 0) return "The server cannot be reached. Check the connection and try again.";
    if (err.status === 503) return "The server is starting up. Try again in a moment.";
    return "The server answered " + err.status + ". Try again.";
  }

  // ---------------------------------------------------------------- the API
  function ApiError(status, body, headers) {
    this.status = status;
    this.body = body || {};
    this.code = this.body.code || null;
    this.headers = headers;
  }

  function api(method, path, body, opts) {
    opts = opts || {};
    var headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET" && state.csrf) headers["X-CSRF-Token"] = state.csrf;
    return window.fetch(url(API + path), {
      method: method,
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    }).then(function (r) {
      return r.text().then(function (raw) {
        var data = null;
        try { data = raw ? JSON.parse(raw) : null; } catch (e) { data = { detail: raw.slice(0, 200) }; }
        if (r.ok) return data;
        var err = new ApiError(r.status, data, r.headers);
        if (r.status === 401 && !opts.signIn) signedOut(err);
        throw err;
      });
    }, function () {
      throw new ApiError(0, null, null);
    });
  }

  // Runs an action: its errors go to the alert region (401 already shows the sign-in form).
  function act(promise) {
    fail("");
    return promise.catch(function (err) {
      if (err instanceof ApiError && err.status === 401) return null;
      if (!(err instanceof ApiError)) {
        fail("Something went wrong on this page: " + err);
        throw err;
      }
      fail(errorText(err));
      return null;
    });
  }

  // ---------------------------------------------------------------- sign-in
  function showSignIn(why, focus) {
    stopEvents();
    state.me = null;
    state.csrf = null;
    $("tabs").hidden = true;
    $("who").hidden = true;
    document.querySelectorAll(".view").forEach(function (v) { v.hidden = true; });
    $("sign-in").hidden = false;
    $("sign-in-why").textContent = why || "";
    document.title = TITLE;
    // on first load the page starts at the top (the skip link first); later, the form
    // takes the focus, since what the agent was using is gone
    if (focus !== false) $("sign-in-name").focus();
  }

  function signedOut(err) {
    if ($("sign-in").hidden === false && !state.me) return;
    var draft = kept("draft");
    var why = "Your sign-in has ended. Sign in again to go on.";
    if (err && err.body && err.body.reason === "expired") why = "Your sign-in expired. Sign in again to go on.";
    if (draft && draft.text) why += " Your unsent reply is kept and comes back after you sign in.";
    showSignIn(why);
  }

  function signIn(event) {
    event.preventDefault();
    var name = $("sign-in-name").value.trim().toLowerCase();
    var password = $("sign-in-password").value;
    var error = $("sign-in-error");
    error.textContent = "";
    $("sign-in-name").removeAttribute("aria-invalid");
    $("sign-in-password").removeAttribute("aria-invalid");
    if (!name || !password) {
      error.textContent = !name ? "Enter your name." : "Enter your password.";
      (!name ? $("sign-in-name") : $("sign-in-password")).setAttribute("aria-invalid", "true");
      (!name ? $("sign-in-name") : $("sign-in-password")).focus();
      return;
    }
    primeAudio();
    $("sign-in-submit").disabled = true;
    api("POST", "session", { name: name, password: password }, { signIn: true }).then(function (session) {
      $("sign-in-password").value = "";
      signedIn(session);
    }, function (err) {
      if (err.status === 429) {
        var wait = err.headers && err.headers.get("Retry-After");
        error.textContent = "Too many failed sign-ins. Try again in " + duration(Number(wait) || 60) + ".";
      } else if (err.status === 401) {
        error.textContent = "Wrong name or password.";
        $("sign-in-password").setAttribute("aria-invalid", "true");
      } else {
        error.textContent = errorText(err);
      }
      $("sign-in-password").focus();
    }).then(function () {
      $("sign-in-submit").disabled = false;
    });
  }

  function signedIn(session) {
    // a draft is its writer's: another agent signing in to this tab starts clean
    // (who signed in last is kept with the draft, so a reload does not forget it)
    var before = kept("agent");
    keep("agent", session.agent.name);
    var mine = kept("draft");
    if (mine && mine.agent !== session.agent.name) keep("draft", null);
    if (before && before !== session.agent.name) {
      keep("open", null);
      $("composer").value = "";
      setSuggestion(null);
      closeConversation();
    }
    state.me = session.agent;
    state.csrf = session.csrf_token;
    $("sign-in").hidden = true;
    $("sign-in-error").textContent = "";
    $("tabs").hidden = false;
    $("who").hidden = false;
    $("who-name").textContent = session.agent.name;
    $("who-role").textContent = session.agent.role;
    var admin = session.agent.role === "admin";
    document.querySelectorAll("[data-admin]").forEach(function (n) { n.hidden = !admin; });
    showTab("queue", false);
    say("Signed in as " + session.agent.name + ".");
    loadQueue();
    var reopen = kept("open");
    var draft = kept("draft");
    if (draft && draft.conversation) reopen = draft.conversation;
    if (reopen) openConversation(reopen, { focus: false });
    else startEvents();
    $("main").focus();
  }

  function signOut() {
    // the agent chose to leave: nothing of theirs stays in this tab
    keep("draft", null);
    keep("open", null);
    api("DELETE", "session").catch(function () { return null; }).then(function () {
      closeConversation();
      showSignIn("You have signed out.");
    });
  }

  // ---------------------------------------------------------------- tabs
  function showTab(tab, focus) {
    if (state.me && state.me.role !== "admin" && (tab === "users" || tab === "models")) tab = "queue";
    if (tab !== state.tab) {
      say("");
      fail("");
    }
    state.tab = tab;
    document.querySelectorAll(".tab").forEach(function (b) {
      if (b.dataset.tab === tab) b.setAttribute("aria-current", "page");
      else b.removeAttribute("aria-current");
    });
    ["queue", "metrics", "users", "models"].forEach(function (name) {
      $("view-" + name).hidden = name !== tab;
    });
    if (tab === "metrics") loadMetrics();
    if (tab === "users") loadUsers();
    if (tab === "models") loadModels();
    if (focus) {
      var heading = $("view-" + tab).querySelector("h2");
      heading.setAttribute("tabindex", "-1");
      heading.focus();
    }
  }

  // ---------------------------------------------------------------- sound and title
  var audio = null;

  function primeAudio() {
    try {
      var Ctx = window.AudioContext || window.webkitAudioContext;
      if (!audio && Ctx) audio = new Ctx();
      if (audio && audio.state === "suspended") audio.resume();
    } catch (e) { audio = null; }
  }

  function beep() {
    if (!audio) return;
    try {
      var t = audio.currentTime;
      var osc = audio.createOscillator();
      var gain = audio.createGain();
      osc.type = "sine";
      osc.frequency.setValueAtTime(880, t);
      gain.gain.setValueAtTime(0.0001, t);
      gain.gain.exponentialRampToValueAtTime(0.15, t + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.25);
      osc.connect(gain);
      gain.connect(audio.destination);
      osc.start(t);
      osc.stop(t + 0.3);
    } catch (e) { /* no sound: the title and the announcement still say it */ }
  }

  function updateTitle() {
    var pending = state.queue ? state.queue.pending.length : 0;
    document.title = pending > 0 ? "(" + pending + ") " + TITLE : TITLE;
  }

  // ---------------------------------------------------------------- queue
  function loadQueue() {
    return api("GET", "queue").then(function (queue) {
      renderQueue(queue);
    }, function (err) {
      if (err.status !== 401) fail("The queue could not be loaded: " + errorText(err));
    });
  }

  function renderQueue(queue) {
    queue = {
      pending: queue.pending || [],
      open: queue.open || [],
      bot: queue.bot || [],
    };
    var ids = queue.pending.map(function (c) { return c.conversation_id; });
    if (state.knownPending !== null) {
      var fresh = ids.filter(function (id) { return state.knownPending.indexOf(id) < 0; });
      if (fresh.length) {
        beep();
        announce(fresh.length === 1 ? "A new conversation is waiting for an agent."
          : fresh.length + " new conversations are waiting for an agent.");
      }
    }
    state.knownPending = ids;
    state.queue = queue;
    state.queueAt = Date.now();
    drawQueue();
    updateTitle();
    // the open conversation changed hands elsewhere (claimed, assigned, resolved): show it
    var c = state.conversation;
    var item = null;
    queue.pending.concat(queue.open, queue.bot).forEach(function (i) {
      if (state.conversationId && i.conversation_id === state.conversationId) item = i;
    });
    if (c && item && (item.handling !== c.handling || (item.agent_name || null) !== (agentName(c.agent) || null))) {
      refreshConversation();
    }
  }

  function drawQueue() {
    var q = state.queue;
    if (!q) return;
    // the lists are drawn anew: the item that had the focus gets it back
    var active = document.activeElement;
    var focused = active && active.classList && active.classList.contains("queue-item")
      ? active.dataset.conversation + ":" + active.dataset.kind : null;
    var since = (Date.now() - state.queueAt) / 1000;
    fillList($("queue-pending"), q.pending, function (c) {
      var waited = c.waiting_seconds != null ? c.waiting_seconds + since : null;
      return ["Waiting " + duration(waited), c.reason ? "Reason: " + c.reason : null];
    }, "pending");
    fillList($("queue-open"), q.open, function (c) {
      return [(c.agent_name || agentName(c.agent) || "An agent") + " has it"];
    }, "open");
    fillList($("queue-bot"), q.bot, function (c) {
      var at = c.updated_at || c.last_message_at || c.handling_changed_at;
      return [at ? "Last message " + when(at) : null];
    }, "bot");
    $("pending-count").textContent = String(q.pending.length);
    $("open-count").textContent = String(q.open.length);
    $("bot-count").textContent = String(q.bot.length);
    $("queue-updated").textContent = "Updated " + new Date(state.queueAt).toLocaleTimeString();
    if (focused) {
      var parts = focused.split(":");
      var again = document.querySelector('.queue-item[data-kind="' + parts[1] + '"][data-conversation="' + parts[0] + '"]') ||
        document.querySelector('.queue-item[data-conversation="' + parts[0] + '"]');
      if (again) again.focus();
      else $("queue-title").focus();
    }
  }

  function fillList(list, items, lines, kind) {
    clear(list);
    items.forEach(function (c) {
      var li = make("li");
      var b = make("button", "queue-item");
      b.type = "button";
      b.dataset.conversation = c.conversation_id;
      b.dataset.kind = kind;
      if (c.conversation_id === state.conversationId) b.setAttribute("aria-current", "true");
      var first = make("span", "line");
      var badge = make("span", "badge badge--" + kind, kind === "pending" ? "waiting" : kind === "open" ? "with agent" : "bot");
      first.appendChild(badge);
      first.appendChild(document.createTextNode(" Conversation " + shortId(c.conversation_id) + (c.channel ? " · " + c.channel : "")));
      b.appendChild(first);
      lines(c).forEach(function (text) {
        if (text) b.appendChild(make("span", "line sub", text));
      });
      if (c.last_customer_text) b.appendChild(make("span", "snippet", "“" + c.last_customer_text + "”"));
      b.addEventListener("click", function () { openConversation(c.conversation_id, { focus: true }); });
      li.appendChild(b);
      list.appendChild(li);
    });
  }

  // ---------------------------------------------------------------- events
  function startEvents() {
    if (!state.me || typeof window.EventSource !== "function") return;
    var query = [];
    if (state.conversationId) {
      query.push("conversation=" + encodeURIComponent(state.conversationId));
      query.push("after=" + state.lastMessageId);
    }
    var key = query.join("&");
    if (state.events && state.eventsKey === key && state.events.readyState !== 2) return;
    stopEvents();
    var source = new window.EventSource(url(API + "events" + (key ? "?" + key : "")), { withCredentials: true });
    state.events = source;
    state.eventsKey = key;
    source.addEventListener("queue", function (e) {
      var data = parse(e.data) || {};
      if (data.signature == null || data.signature !== state.queueSignature) {
        state.queueSignature = data.signature == null ? null : data.signature;
        loadQueue();
      }
    });
    source.addEventListener("message", function (e) {
      var m = parse(e.data);
      if (!m || !state.conversationId) return;
      if (m.conversation_id && m.conversation_id !== state.conversationId) return;
      addMessage(m, true);
    });
    source.addEventListener("handling", function () {
      if (state.conversationId) refreshConversation();
    });
    source.onerror = function () {
      if (source.readyState !== 2 || state.events !== source) return;
      // closed for good (a 401, say): find out why before trying again
      state.events = null;
      api("GET", "session").then(function (session) {
        state.csrf = session.csrf_token;
        scheduleReconnect();
      }, function (err) {
        if (err.status !== 401) scheduleReconnect();
      });
    };
  }

  function scheduleReconnect() {
    window.clearTimeout(state.reconnect);
    state.reconnect = window.setTimeout(function () {
      state.eventsKey = null;
      startEvents();
      loadQueue();
      if (state.conversationId) refreshConversation();
    }, RECONNECT_MS);
  }

  function stopEvents() {
    window.clearTimeout(state.reconnect);
    if (state.events) state.events.close();
    state.events = null;
    state.eventsKey = null;
  }

  function parse(raw) {
    try { return JSON.parse(raw); } catch (e) { return null; }
  }

  // ---------------------------------------------------------------- conversation
  function openConversation(id, opts) {
    opts = opts || {};
    var switching = id !== state.conversationId;
    if (switching) {
      state.conversationId = id;
      state.conversation = null;
      state.messageIds = {};
      state.lastMessageId = 0;
      state.lastCustomerId = 0;
      state.suggestions = null;
      setSuggestion(null);
      clear($("transcript"));
      clear($("suggestions"));
      clear($("similar"));
      clear($("notes"));
      $("composer").value = "";
      var draft = kept("draft");
      if (draft && draft.conversation === id) {
        $("composer").value = draft.text || "";
        if (draft.suggestion) setSuggestion(draft.suggestion);
      }
    }
    keep("open", id);
    showTab("queue", false);
    drawQueue();
    $("conv-empty").hidden = true;
    $("conversation").hidden = false;
    $("conv-title").textContent = "Conversation " + shortId(id);
    if (opts.focus) $("conv-title").focus();
    return api("GET", "conversations/" + encodeURIComponent(id)).then(function (data) {
      if (state.conversationId !== id) return;
      renderConversation(data);
      startEvents();
      if (switching || !state.suggestions) loadSuggestions();
      if (kept("draft") && kept("draft").conversation === id && $("composer").value) {
        say("Your unsent reply is back in the box.");
      }
    }, function (err) {
      if (err.status === 401) return;
      fail(err.status === 404 ? "That conversation is gone (erased or never existed)." : errorText(err));
      if (err.status === 404) closeConversation();
    });
  }

  function refreshConversation() {
    var id = state.conversationId;
    if (!id) return Promise.resolve();
    return api("GET", "conversations/" + encodeURIComponent(id)).then(function (data) {
      if (state.conversationId === id) renderConversation(data);
    }, function (err) {
      if (err.status !== 401) fail(errorText(err));
    });
  }

  function closeConversation() {
    state.conversationId = null;
    state.conversation = null;
    keep("open", null);
    $("conversation").hidden = true;
    $("conv-empty").hidden = false;
    $("conv-title").textContent = "No conversation open";
    drawQueue();
    if (state.me) startEvents();
  }

  function renderConversation(data) {
    var c = data.conversation || {};
    state.conversation = c;
    $("conv-title").textContent = "Conversation " + shortId(c.id || state.conversationId) + (c.channel ? " · " + c.channel : "");
    renderHeader(c, data.csat);
    (data.messages || []).forEach(function (m) { addMessage(m, false); });
    renderNotes(data.notes || []);
    markStale();
  }

  function renderHeader(c, csat) {
    var holder = agentName(c.agent);
    var parts = ["State: " + handlingText(c.handling)];
    if (holder) parts.push("Agent: " + holder);
    if (c.reason) parts.push("Handoff reason: " + c.reason);
    if (c.tags && c.tags.length) parts.push("Tags: " + c.tags.join(", "));
    if (c.created_at) parts.push("Started " + when(c.created_at));
    if (csat != null) parts.push("CSAT: " + csat + " of 5");
    $("conv-meta").textContent = parts.join(" · ");

    var mine = holder && state.me && holder === state.me.name;
    var admin = state.me && state.me.role === "admin";
    var held = c.handling === "open" && holder && !mine;
    $("conv-held").hidden = !held;
    $("conv-held").textContent = held ? holder + " has it." : "";
    var can = {
      "act-claim": c.handling === "pending",
      "act-take-over": c.handling === "bot" || c.handling === "resolved",
      "act-hand-back": c.handling === "open" && (mine || admin),
      "resolve-form": c.handling === "pending" || (c.handling === "open" && (mine || admin)),
      "assign-form": (c.handling === "pending" && admin) || (c.handling === "open" && (mine || admin)),
    };
    Object.keys(can).forEach(function (id) { $(id).hidden = !can[id]; });
    var resolved = c.handling === "resolved";
    $("composer-form").hidden = resolved;
    $("composer-closed").hidden = !resolved;
  }

  function handlingText(handling) {
    return {
      bot: "handled by the bot",
      pending: "waiting for an agent",
      open: "with an agent",
      resolved: "resolved",
    }[handling] || String(handling || "unknown");
  }

  function roleText(m) {
    if (m.role === "customer") return "Customer";
    if (m.role === "bot") return "Bot";
    if (m.role === "agent") return "Agent" + (agentName(m.agent) ? " " + agentName(m.agent) : "");
    return m.role ? m.role.charAt(0).toUpperCase() + m.role.slice(1) : "System";
  }

  function addMessage(m, live) {
    if (m.message_id == null || state.messageIds[m.message_id]) return;
    state.messageIds[m.message_id] = true;
    var li = make("li", "msg msg--" + (["customer", "bot", "agent"].indexOf(m.role) >= 0 ? m.role : "system"));
    li.dataset.messageId = String(m.message_id);
    li.dataset.role = m.role || "";
    var head = make("div", "msg-head");
    head.appendChild(make("strong", null, roleText(m)));
    head.appendChild(timeEl(m.created_at));
    li.appendChild(head);
    li.appendChild(make("p", "msg-text", m.text || ""));
    if (m.role === "customer" && m.intent) {
      li.appendChild(make("p", "msg-meta", "Intent: " + m.intent + (typeof m.confidence === "number" ? " · confidence " + score(m.confidence) : "")));
    }
    if (m.role === "bot") {
      var meta = [];
      if (m.composer) meta.push("Composer: " + m.composer);
      if (m.action) meta.push("action: " + m.action);
      if (meta.length) li.appendChild(make("p", "msg-meta", meta.join(" · ")));
      if (m.sources && m.sources.length) li.appendChild(sourcesEl(m.sources));
    }
    if (m.role === "agent" && m.edited_from) {
      li.appendChild(make("p", "msg-meta", "Edited from a suggested reply."));
    }
    // keep the transcript in message order even when a live event overtakes a reload
    var list = $("transcript");
    var after = null;
    Array.prototype.forEach.call(list.children, function (node) {
      if (Number(node.dataset.messageId) < m.message_id) after = node;
    });
    list.insertBefore(li, after ? after.nextSibling : list.firstChild);
    state.lastMessageId = Math.max(state.lastMessageId, m.message_id);
    if (m.role === "customer") state.lastCustomerId = Math.max(state.lastCustomerId, m.message_id);
    if (live) {
      list.scrollTop = list.scrollHeight;
      if (m.role !== "agent" || agentName(m.agent) !== (state.me && state.me.name)) {
        announce(roleText(m) + ": " + (m.text || ""));
      }
      if (m.role === "customer") markStale();
      if (m.role !== "customer") refreshHeaderSoon();
    } else {
      list.scrollTop = list.scrollHeight;
    }
  }

  var headerTimer = null;
  function refreshHeaderSoon() {
    // a bot or agent message can come with a change of hands (a handoff, a claim)
    window.clearTimeout(headerTimer);
    headerTimer = window.setTimeout(refreshConversation, 300);
  }

  function sourcesEl(sources) {
    var details = make("details");
    details.appendChild(make("summary", null, "Sources (" + sources.length + ")"));
    var ul = make("ul", "sources");
    sources.forEach(function (s) {
      var label = (s.kind ? s.kind + ": " : "") + (s.title || s.id || "source") + " (" + score(s.score) + ")";
      var li = make("li", null, label);
      if (s.text) li.title = s.text;
      ul.appendChild(li);
    });
    details.appendChild(ul);
    return details;
  }

  function renderNotes(notes) {
    var list = $("notes");
    clear(list);
    notes.forEach(function (n) {
      var li = make("li");
      var head = make("div", "msg-head");
      head.appendChild(make("strong", null, n.agent_name || agentName(n.agent) || "agent"));
      head.appendChild(timeEl(n.created_at));
      li.appendChild(head);
      li.appendChild(make("p", "note-text", n.text || ""));
      list.appendChild(li);
    });
    if (!notes.length) list.appendChild(make("li", "hint", "No notes yet."));
  }

  // ---------------------------------------------------------------- conversation actions
  // A change of hands; `next` is what gets the focus after it (the button pressed may be
  // gone): the reply box once the agent holds it, the conversation's heading otherwise.
  function transition(path, body, done, next) {
    var id = state.conversationId;
    if (!id) return;
    act(api("POST", "conversations/" + encodeURIComponent(id) + "/" + path, body).then(function (data) {
      if (data && data.conversation && state.conversationId === id) renderHeader(data.conversation);
      say(done);
      var target = $(next || "conv-title");
      if (target && !target.closest("[hidden]")) target.focus();
      else $("conv-title").focus();
      loadQueue();
      return refreshConversation();
    }, function (err) {
      if (err.status === 409) refreshConversation();
      throw err;
    }));
  }

  function resolve(event) {
    event.preventDefault();
    var tags = $("resolve-tags").value.split(",").map(function (t) { return t.trim(); }).filter(Boolean);
    transition("resolve", { tags: tags }, "Resolved.", "conv-title");
    $("resolve-tags").value = "";
  }

  function assign(event) {
    event.preventDefault();
    var name = $("assign-to").value.trim().toLowerCase();
    if (!name) {
      fail("Enter the name of the agent to assign it to.");
      $("assign-to").focus();
      return;
    }
    transition("assign", { agent: name }, "Assigned to " + name + ".", "conv-title");
    $("assign-to").value = "";
  }

  // ---------------------------------------------------------------- composer
  function setSuggestion(s) {
    state.suggestion = s;
    $("composer-from").textContent = s
      ? "From suggestion " + (s.rank + 1) + ". Edit it as you like before sending." : "";
  }

  function saveDraft() {
    var text = $("composer").value;
    if (!text && state.suggestion) setSuggestion(null);
    keep("draft", text && state.conversationId && state.me
      ? { agent: state.me.name, conversation: state.conversationId, text: text, suggestion: state.suggestion } : null);
  }

  function send(event) {
    if (event) event.preventDefault();
    var id = state.conversationId;
    var box = $("composer");
    var text = box.value.trim();
    if (!id) return;
    if (!text) {
      fail("Write a reply first.");
      box.focus();
      return;
    }
    saveDraft();
    var body = { text: text };
    if (state.suggestion) body.suggestion_id = state.suggestion.id;
    $("send").disabled = true;
    act(api("POST", "conversations/" + encodeURIComponent(id) + "/messages", body).then(function () {
      if (state.conversationId === id && box.value.trim() === text) {
        box.value = "";
        setSuggestion(null);
      }
      keep("draft", null);
      say("Sent.");
      loadQueue();
      return refreshConversation();
    })).then(function () {
      $("send").disabled = false;
    });
  }

  function insertText(text, suggestion) {
    var box = $("composer");
    box.value = text;
    setSuggestion(suggestion || null);
    saveDraft();
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
  }

  // ---------------------------------------------------------------- suggestions and search
  function loadSuggestions() {
    var id = state.conversationId;
    if (!id) return;
    var status = $("suggestions-state");
    status.textContent = "Looking for suggested replies…";
    api("GET", "conversations/" + encodeURIComponent(id) + "/suggestions").then(function (data) {
      if (state.conversationId !== id) return;
      state.suggestions = data;
      renderSuggestions();
    }, function (err) {
      if (state.conversationId !== id || err.status === 401) return;
      status.textContent = "No suggestions: " + errorText(err);
    });
  }

  function renderSuggestions() {
    var data = state.suggestions || {};
    var list = $("suggestions");
    clear(list);
    var items = (data.suggestions || []).slice(0, MAX_SUGGESTIONS);
    items.forEach(function (s, rank) {
      var li = make("li", "card suggestion");
      li.dataset.suggestionId = String(s.suggestion_id);
      var head = make("div", "card-head");
      head.appendChild(make("strong", null, "Suggestion " + (rank + 1)));
      head.appendChild(make("span", "badge", s.kind || "suggested"));
      head.appendChild(make("span", null, "score " + score(s.score)));
      if (s.composer) head.appendChild(make("span", null, "composer " + s.composer));
      var stale = make("span", "badge badge--stale stale-mark", "stale");
      stale.title = "The customer wrote again after this was suggested";
      stale.hidden = true;
      head.appendChild(stale);
      li.appendChild(head);
      li.appendChild(make("p", "card-text", s.text || ""));
      if (s.sources && s.sources.length) li.appendChild(sourcesEl(s.sources));
      var actions = make("div", "card-actions");
      actions.appendChild(button("Insert", "small", function () {
        insertText(s.text || "", { id: s.suggestion_id, text: s.text || "", rank: rank });
        say("Suggestion " + (rank + 1) + " is in the reply box.");
      }, "Insert suggestion " + (rank + 1)));
      actions.appendChild(button("Discard", "small", function () {
        discard(s, li, rank);
      }, "Discard suggestion " + (rank + 1)));
      li.appendChild(actions);
      list.appendChild(li);
    });
    var similar = $("similar");
    clear(similar);
    (data.similar || []).forEach(function (h) {
      similar.appendChild(hitCard(h, "Insert this answer"));
    });
    if (!(data.similar || []).length) similar.appendChild(make("li", "hint", "None found."));
    markStale();
  }

  function markStale() {
    var data = state.suggestions;
    var status = $("suggestions-state");
    if (!data) return;
    var count = (data.suggestions || []).length;
    var stale = data.for_message_id != null && state.lastCustomerId > data.for_message_id;
    document.querySelectorAll("#suggestions .stale-mark").forEach(function (n) { n.hidden = !stale; });
    document.querySelectorAll("#suggestions .suggestion").forEach(function (n) {
      n.classList.toggle("card--stale", stale);
    });
    if (!count) status.textContent = "No suggested replies for this conversation.";
    else if (stale) status.textContent = "The customer wrote again since these were suggested: refresh them.";
    else status.textContent = count + " suggested " + (count === 1 ? "reply" : "replies") + " for the customer's last message.";
  }

  function discard(s, li, rank) {
    var id = state.conversationId;
    act(api("POST", "conversations/" + encodeURIComponent(id) + "/suggestions/" + s.suggestion_id + "/discard")
      .then(function () {
        if (state.suggestion && state.suggestion.id === s.suggestion_id) setSuggestion(null);
        if (state.suggestions) {
          state.suggestions.suggestions = (state.suggestions.suggestions || []).filter(function (x) {
            return x.suggestion_id !== s.suggestion_id;
          });
        }
        li.remove();
        say("Suggestion " + (rank + 1) + " discarded.");
        var next = document.querySelector("#suggestions button");
        (next || $("composer")).focus();
      }));
  }

  function hitCard(h, insertLabel) {
    var li = make("li", "card");
    var head = make("div", "card-head");
    head.appendChild(make("strong", null, h.title || h.id || "result"));
    if (h.kind) head.appendChild(make("span", "badge", h.kind));
    head.appendChild(make("span", null, "score " + score(h.score)));
    li.appendChild(head);
    li.appendChild(make("p", "card-text", h.text || ""));
    if (h.text) {
      var actions = make("div", "card-actions");
      actions.appendChild(button("Insert", "small", function () {
        insertText(h.text, null);
      }, insertLabel + ": " + (h.title || h.id || "")));
      li.appendChild(actions);
    }
    return li;
  }

  function search(event) {
    event.preventDefault();
    var q = $("search-q").value.trim();
    var status = $("search-state");
    var list = $("search-results");
    if (!q) {
      status.textContent = "Type what to search for.";
      $("search-q").focus();
      return;
    }
    status.textContent = "Searching…";
    api("GET", "search?q=" + encodeURIComponent(q) + "&k=5").then(function (data) {
      clear(list);
      var hits = (data && data.hits) || [];
      hits.forEach(function (h) { list.appendChild(hitCard(h, "Insert search result")); });
      status.textContent = hits.length ? hits.length + " results." : "Nothing found.";
    }, function (err) {
      if (err.status !== 401) status.textContent = "Search failed: " + errorText(err);
    });
  }

  function addNote(event) {
    event.preventDefault();
    var id = state.conversationId;
    var box = $("note-text");
    var text = box.value.trim();
    if (!text) {
      fail("Write the note first.");
      box.focus();
      return;
    }
    act(api("POST", "conversations/" + encodeURIComponent(id) + "/notes", { text: text }).then(function () {
      box.value = "";
      say("Note added.");
      return refreshConversation();
    }));
  }

  // ---------------------------------------------------------------- metrics
  // The JSON of GET metrics (bot/metrics.py): `totals` and `days` (one per UTC day, with
  // `date`) hold the same nested figures; `handoff_intents` lists {intent, handoffs}.
  function number(v) { return (Math.round(v * 100) / 100).toString(); }

  // durations in the charts: tenths of a second for the short ones
  function seconds(v) { return v < 10 ? (Math.round(v * 10) / 10) + " s" : duration(v); }

  var METRIC_CHARTS = [
    // key, title, kind, format, fixed top, series: [name, path in a day's figures]
    ["handoff_rate", "Handoff rate", "line", percent, 1, [["Handed over", "handoff.rate"]]],
    ["bot_resolved_rate", "Resolved by the bot", "line", percent, 1,
      [["Resolved (confirmed or assumed)", "bot_resolved.rate"], ["Confirmed by the customer", "bot_resolved.confirmed_rate"]]],
    ["first_response", "Agent first-response time", "bar", seconds, null,
      [["Median", "first_response_seconds.median"], ["90th percentile", "first_response_seconds.p90"]]],
    ["handle_time", "Agent handle time (median)", "bar", seconds, null, [["Median", "handle_seconds.median"]]],
    ["csat", "CSAT (mean score, 1–5)", "line", number, 5, [["Mean score", "csat.mean"]]],
    ["suggestions", "Suggested replies: accepted and edited", "line", percent, 1,
      [["Sent as suggested", "suggestions.acceptance_rate"], ["Sent after an edit", "suggestions.edit_rate"]]],
    ["fallback_rate", "Fallback rate", "line", percent, 1, [["Fallback replies", "fallback.rate"]]],
  ];
  var METRIC_TOTALS = [
    ["Conversations", "conversations", String],
    ["Handoff rate", "handoff.rate", percent],
    ["Resolved by the bot", "bot_resolved.rate", percent],
    ["First response (median)", "first_response_seconds.median", seconds],
    ["Handle time (median)", "handle_seconds.median", seconds],
    ["CSAT (mean)", "csat.mean", number],
    ["Suggestions accepted", "suggestions.acceptance_rate", percent],
    ["Suggestions edited", "suggestions.edit_rate", percent],
    ["Fallback rate", "fallback.rate", percent],
  ];

  function isoDay(d) {
    return d.getUTCFullYear() + "-" + String(d.getUTCMonth() + 1).padStart(2, "0") + "-" +
      String(d.getUTCDate()).padStart(2, "0");
  }

  function loadMetrics(event) {
    if (event) event.preventDefault();
    var since = $("metrics-since");
    var until = $("metrics-until");
    if (!since.value) since.value = isoDay(new Date(Date.now() - 13 * 86400000));
    if (!until.value) until.value = isoDay(new Date());
    $("metrics-state").textContent = "Loading…";
    api("GET", "metrics?since=" + encodeURIComponent(since.value) + "&until=" + encodeURIComponent(until.value))
      .then(function (data) {
        renderMetrics(data || {});
        $("metrics-state").textContent = "Days " + (data.since || since.value) + " to " + (data.until || until.value) +
          " (UTC); each conversation counts on the day it started.";
      }, function (err) {
        if (err.status !== 401) $("metrics-state").textContent = "The metrics could not be loaded: " + errorText(err);
      });
  }

  function pick(obj, path) {
    var v = obj;
    path.split(".").forEach(function (k) { v = v != null && typeof v === "object" ? v[k] : null; });
    return typeof v === "number" && isFinite(v) ? v : null;
  }

  function renderMetrics(data) {
    var days = data.days || [];
    var labels = days.map(function (d) { return d.date; });
    var charts = $("metrics-charts");
    clear(charts);
    METRIC_CHARTS.forEach(function (spec) {
      var draw = spec[2] === "bar" ? window.CsbotChart.bar : window.CsbotChart.line;
      charts.appendChild(draw({
        key: spec[0], title: spec[1], labels: labels, format: spec[3], max: spec[4],
        series: spec[5].map(function (s) {
          return { name: s[0], values: days.map(function (d) { return pick(d, s[1]); }) };
        }),
      }));
    });
    var totals = $("metrics-totals");
    clear(totals);
    var t = data.totals || {};
    METRIC_TOTALS.forEach(function (spec) {
      var v = pick(t, spec[1]);
      var box = make("div", "total");
      box.appendChild(make("span", "total-label", spec[0]));
      box.appendChild(make("span", "total-value", v == null ? "–" : spec[2](v)));
      totals.appendChild(box);
    });
    var body = $("intents-table").querySelector("tbody");
    clear(body);
    var intents = data.handoff_intents || [];
    intents.forEach(function (row) {
      var tr = make("tr");
      tr.appendChild(make("td", null, row.intent == null ? "(out of scope)" : row.intent));
      tr.appendChild(make("td", "num", row.handoffs));
      body.appendChild(tr);
    });
    if (!intents.length) {
      var tr = make("tr");
      var td = make("td", null, "No handovers in these days.");
      td.colSpan = 2;
      tr.appendChild(td);
      body.appendChild(tr);
    }
  }

  // ---------------------------------------------------------------- users (admins)
  function loadUsers() {
    return api("GET", "users").then(function (data) {
      var users = Array.isArray(data) ? data : (data && (data.users || data.agents)) || [];
      state.users = users;
      renderUsers(users);
    }, function (err) {
      if (err.status !== 401) fail(errorText(err));
    });
  }

  function renderUsers(users) {
    var body = $("users-table").querySelector("tbody");
    clear(body);
    var select = $("user-reset-name");
    var chosen = select.value;
    clear(select);
    var names = $("agent-names");
    clear(names);
    users.forEach(function (u) {
      var tr = make("tr");
      tr.dataset.user = u.name;
      tr.appendChild(make("td", null, u.name));
      tr.appendChild(make("td", null, u.role));
      tr.appendChild(make("td", null, u.disabled ? "disabled" : "active"));
      tr.appendChild(make("td", null, when(u.created_at)));
      var cell = make("td");
      var actions = make("div", "row-actions");
      if (u.disabled) {
        actions.appendChild(button("Enable", "small", function () { userAction(u.name, "enable", "enabled"); }, "Enable " + u.name));
      } else if (!state.me || u.name !== state.me.name) {
        actions.appendChild(button("Disable", "small", function () { userAction(u.name, "disable", "disabled"); }, "Disable " + u.name));
      }
      cell.appendChild(actions);
      tr.appendChild(cell);
      body.appendChild(tr);
      var option = make("option", null, u.name);
      option.value = u.name;
      select.appendChild(option);
      if (!u.disabled) {
        var o = make("option");
        o.value = u.name;
        names.appendChild(o);
      }
    });
    if (chosen) select.value = chosen;
  }

  function userAction(name, action, done) {
    act(api("POST", "users/" + encodeURIComponent(name) + "/" + action).then(function () {
      say(name + " is " + done + ".");
      return loadUsers();
    }).then(function () {
      // the row is drawn anew: its new button (Enable for Disable) takes the focus
      var again = document.querySelector('#users-table tr[data-user="' + name + '"] button');
      (again || $("users-title")).focus();
    }));
  }

  function addUser(event) {
    event.preventDefault();
    var name = $("user-add-name").value.trim().toLowerCase();
    var password = $("user-add-password").value;
    var role = $("user-add-role").value;
    if (!name || !password) {
      fail(!name ? "Enter the new user's name." : "Enter a password for the new user.");
      (!name ? $("user-add-name") : $("user-add-password")).focus();
      return;
    }
    act(api("POST", "users", { name: name, password: password, role: role }).then(function () {
      $("user-add-name").value = "";
      $("user-add-password").value = "";
      say(name + " was added as " + role + ".");
      loadUsers();
    }));
  }

  function resetPassword(event) {
    event.preventDefault();
    var name = $("user-reset-name").value;
    var password = $("user-reset-password").value;
    if (!name || !password) {
      fail(!name ? "Pick the user." : "Enter the new password.");
      return;
    }
    act(api("POST", "users/" + encodeURIComponent(name) + "/reset-password", { password: password }).then(function () {
      $("user-reset-password").value = "";
      say("The password of " + name + " was reset; their sign-ins have ended.");
    }));
  }

  // ---------------------------------------------------------------- models (admins)
  function loadModels() {
    api("GET", "models").then(function (data) {
      data = data || {};
      renderModels(data.models || [], data);
    }, function (err) {
      if (err.status !== 401) fail(errorText(err));
    });
  }

  function figures(obj) {
    if (!obj || typeof obj !== "object") return obj == null ? "–" : String(obj);
    return Object.keys(obj).filter(function (k) {
      return typeof obj[k] === "number" || typeof obj[k] === "string" || typeof obj[k] === "boolean";
    }).slice(0, 6).map(function (k) {
      var v = obj[k];
      return k + " " + (typeof v === "number" ? (Math.round(v * 1000) / 1000) : String(v));
    }).join(", ") || "–";
  }

  function evaluationText(e) {
    if (!e) return "–";
    var parts = [];
    if (e.decision) parts.push(String(e.decision) + (e.reason ? ": " + e.reason : ""));
    if (e.held_out_pairs != null) parts.push(e.held_out_pairs + " held-out pairs");
    if (e.candidate && typeof e.candidate === "object") parts.push("this model: " + figures(e.candidate));
    if (e.current && typeof e.current === "object") parts.push("the one before: " + figures(e.current));
    return parts.join("; ") || figures(e);
  }

  function renderModels(models, registry) {
    var body = $("models-table").querySelector("tbody");
    clear(body);
    $("models-rollback").hidden = !registry.previous;
    if (registry.problem) fail("The promoted model cannot be used: " + registry.problem);
    models.forEach(function (m) {
      var tr = make("tr");
      tr.dataset.model = m.id;
      var status = m.state || "";
      if (m.promoted && status.indexOf("promoted") < 0) status += (status ? ", " : "") + "promoted";
      if (m.previous) status += (status ? ", " : "") + "previous (a rollback brings it back)";
      var name = m.name && m.name !== m.id ? m.id + " (" + m.name + ")" : m.id;
      tr.appendChild(make("td", null, name));
      tr.appendChild(make("td", null, m.base || "–"));
      tr.appendChild(make("td", null, m.data_sha256 ? String(m.data_sha256).slice(0, 12) : "–"));
      tr.appendChild(make("td", null, figures(m.validation)));
      tr.appendChild(make("td", null, evaluationText(m.evaluation)));
      tr.appendChild(make("td", null, status || "–"));
      var cell = make("td");
      var actions = make("div", "row-actions");
      var path = "models/" + encodeURIComponent(m.id);
      if (m.promoted) {
        actions.appendChild(button("Retire", "small", function () {
          modelAction(path + "/retire", m.id + " is retired: the retrieval composer answers from the next turn.");
        }, "Retire " + m.id));
      } else {
        actions.appendChild(button("Promote", "small", function () {
          modelAction(path + "/promote", m.id + " is promoted.");
        }, "Promote " + m.id));
      }
      cell.appendChild(actions);
      tr.appendChild(cell);
      body.appendChild(tr);
    });
    if (!models.length) {
      var tr = make("tr");
      var td = make("td", null, "No models are registered yet.");
      td.colSpan = 7;
      tr.appendChild(td);
      body.appendChild(tr);
    }
  }

  function modelAction(path, done) {
    act(api("POST", path).then(function () {
      say(done);
      $("models-title").setAttribute("tabindex", "-1");
      $("models-title").focus();
      loadModels();
    }));
  }

  // ---------------------------------------------------------------- start
  function wire() {
    $("sign-in-form").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", signOut);
    document.querySelectorAll(".tab").forEach(function (b) {
      b.addEventListener("click", function () { showTab(b.dataset.tab, true); });
    });
    $("act-claim").addEventListener("click", function () { transition("claim", undefined, "You have it now.", "composer"); });
    $("act-take-over").addEventListener("click", function () { transition("take-over", undefined, "You took it over.", "composer"); });
    $("act-hand-back").addEventListener("click", function () { transition("hand-back", undefined, "Handed back to the bot.", "conv-title"); });
    $("resolve-form").addEventListener("submit", resolve);
    $("assign-form").addEventListener("submit", assign);
    $("composer-form").addEventListener("submit", send);
    $("composer").addEventListener("input", saveDraft);
    $("composer").addEventListener("keydown", function (e) {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) send(e);
    });
    $("refresh-suggestions").addEventListener("click", function () {
      state.suggestions = null;
      loadSuggestions();
    });
    $("search-form").addEventListener("submit", search);
    $("note-form").addEventListener("submit", addNote);
    $("metrics-form").addEventListener("submit", loadMetrics);
    $("user-add-form").addEventListener("submit", addUser);
    $("user-reset-form").addEventListener("submit", resetPassword);
    $("models-rollback").addEventListener("click", function () { modelAction("models/rollback", "Rolled back."); });
    // the browser lets a page make sound only after a gesture: the first one wakes the beep
    document.addEventListener("pointerdown", primeAudio, { once: true });
    document.addEventListener("keydown", primeAudio, { once: true });
    // waiting times keep counting between queue updates
    window.setInterval(drawQueue, 15000);
  }

  function start() {
    wire();
    api("GET", "session", undefined, { signIn: true }).then(signedIn, function (err) {
      if (err.status === 401) {
        showSignIn(kept("draft") ? "Sign in to go on: your unsent reply is kept." : "", false);
      } else {
        showSignIn(errorText(err), false);
      }
    });
    document.documentElement.dataset.ready = "true";
  }

  start();
})();
