"""The website widget in headless Chromium against the real `csbot serve`.

Starts `csbot serve` on the demo workspace, opens /demo (which carries a strict
Content-Security-Policy) and drives the widget like a customer: a streamed reply, history
after a reload (and its earlier pages), 👍/👎 stored, markup never rendered, handoff with a
live agent message, CSAT, End chat and Delete leaving nothing behind, the conversation's
access token sent in a header only, the offline queue, keyboard use, the mobile layout and
the RTL locale. Screenshots are kept under tests/artifacts/ (git-ignored); their paths are
printed.

Needs the Debian packages `chromium` and `chromium-driver` (.ci/run installs them) and
Playwright's Python package; skipped, with the reason, when /usr/bin/chromium is absent.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bot.store import ConversationStore
from tests.e2e.browser import BROWSER_MARKS, CHROMIUM, CHROMIUM_ARGS, csbot_serve, http
from tests.helpers import REPO

ARTIFACTS = REPO / "tests" / "artifacts"
REPLY_TIMEOUT_MS = 30_000
TOKEN_HEADER = "x-conversation-token"
HISTORY_PAGE_SIZE = 20  # widget.js asks for pages of this many messages
DAY_MS = 24 * 3600 * 1000

pytestmark = BROWSER_MARKS

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed")
expect = sync_api.expect


# ------------------------------------------------------------------------------ fixtures
def _new_conversation(base: str) -> tuple[str, str]:
    """A conversation made through the API, as (id, access token)."""
    status, created = http("POST", f"{base}/api/v1/conversations", {"channel": "web"})
    assert status == 201, created
    return created["conversation_id"], created["access_token"]


def _history(base: str, conversation: str, token: str) -> dict:
    status, history = http("GET", f"{base}/api/v1/conversations/{conversation}?limit=500", token=token)
    assert status == 200, history
    return history


def _storage_key(base: str, name: str) -> str:
    return f"csbot:{base}/:{name}"


@pytest.fixture(scope="module")
def server(demo_workspace, tmp_path_factory):
    """`csbot serve` on a free port; yields (base URL, workspace)."""
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    # a visible typing effect, as a site would configure it; limits the tests do not probe
    settings = {"CSBOT_STREAM_PIECE_DELAY_MS": "25", "CSBOT_RATE_LIMIT_PER_IP": "0", "CSBOT_EVENTS_POLL_SECONDS": "0.2"}
    with csbot_serve(demo_workspace, log_path, **settings) as base:
        yield base, demo_workspace


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


class Page:
    """A fresh browser context (own localStorage) and page, with what went wrong recorded."""

    def __init__(self, browser, base: str, **context_args):
        self.base = base
        context_args.setdefault("viewport", {"width": 1280, "height": 800})
        self.context = browser.new_context(**context_args)
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("console", self._console)

    def _console(self, msg) -> None:
        text = msg.text
        if "Content Security Policy" in text or (msg.type == "error" and "Failed to load resource" not in text):
            self.errors.append(f"console {msg.type}: {text}")

    def goto(self, path: str = "/demo") -> None:
        self.page.goto(self.base + path)
        self.page.locator("#csbot-widget[data-ready='true']").wait_for(state="attached")

    def open_widget(self, path: str = "/demo", launcher_name: str = "Open chat", input_name: str = "Type your message"):
        self.goto(path)
        self.page.get_by_role("button", name=launcher_name).click()
        box = self.page.get_by_role("textbox", name=input_name)
        expect(box).to_be_focused()
        return box

    def send(self, text: str) -> None:
        box = self.page.locator(".csbot-input")
        box.fill(text)
        box.press("Enter")

    def conversation_id(self) -> str | None:
        return self.page.evaluate("() => window.CsbotWidget.conversationId()")

    def stored(self) -> dict | None:
        """The conversation record the widget keeps in localStorage: {id, token, at, ...}."""
        raw = self.page.evaluate("(key) => localStorage.getItem(key)", _storage_key(self.base, "conversation"))
        return None if raw is None else json.loads(raw)

    def local_storage(self) -> dict[str, str]:
        return self.page.evaluate("() => Object.fromEntries(Object.entries(localStorage))")

    def seed(self, conversation: str, token: str, age_ms: int = 0) -> None:
        """Before every load of the page: a stored conversation, as the widget writes it,
        whose last activity was `age_ms` ago."""
        key = json.dumps(_storage_key(self.base, "conversation"))
        record = json.dumps({"id": conversation, "token": token})
        self.page.add_init_script(
            f"localStorage.setItem({key}, JSON.stringify(Object.assign({record}, {{at: Date.now() - {age_ms}}})))"
        )

    def record_requests(self) -> list:
        requests: list = []
        self.page.on("request", lambda request: requests.append(request))
        return requests

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / name
        self.page.screenshot(path=str(path))
        print(f"screenshot: {path}")
        return path

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def web(browser, server):
    pages: list[Page] = []

    def make(**context_args) -> Page:
        page = Page(browser, server[0], **context_args)
        pages.append(page)
        return page

    yield make
    for p in pages:
        p.close()
        assert p.dialogs == [], f"a dialog opened: {p.dialogs}"
        assert p.errors == [], p.errors


# The widget's own events, recorded in order (see widget.js `emit`).
RECORD_EVENTS = """() => {
  window.__csbot = [];
  const host = document.querySelector('#csbot-widget');
  const typing = host.shadowRoot.querySelector('.csbot-typing');
  for (const name of ['typing', 'text', 'reply', 'error']) {
    host.addEventListener('csbot:' + name, (e) => window.__csbot.push(
      {name, detail: e.detail, typingVisible: !typing.hidden}));
  }
}"""


# ------------------------------------------------------------------------------ tests
def test_streamed_reply_history_after_reload_and_feedback(web, server):
    base, _ = server
    ui = web()
    ui.open_widget()
    page = ui.page
    page.evaluate(RECORD_EVENTS)
    ui.send("can I pay with paypal?")

    bot = page.locator(".csbot-msg--bot").last
    expect(bot).to_contain_text("PayPal", timeout=REPLY_TIMEOUT_MS)
    expect(bot.get_by_role("button", name="Helpful", exact=True)).to_be_visible()
    expect(page.locator(".csbot-typing")).to_be_hidden()
    expect(page.locator(".csbot-msg--customer .csbot-bubble").last).to_have_text("can I pay with paypal?")

    events = page.evaluate("() => window.__csbot")
    names = [e["name"] for e in events]
    assert names[0] == "typing" and events[0]["detail"] == {"on": True} and events[0]["typingVisible"]
    assert names.count("reply") == 1 and names[-1] in ("reply", "typing")
    pieces = [e["detail"]["text"] for e in events if e["name"] == "text"]
    assert len(pieces) >= 2, f"the reply came in {len(pieces)} piece(s): {names}"
    assert names.index("text") < names.index("reply")
    final = next(e["detail"] for e in events if e["name"] == "reply")
    assert "".join(pieces).strip() == final["reply"].strip()
    typing_states = [e["detail"]["on"] for e in events if e["name"] == "typing"]
    assert typing_states[0] is True and typing_states[-1] is False
    assert final["action"] == "answer"
    # a screen reader hears the reply once it is complete
    expect(page.locator(".csbot-announcer")).to_contain_text("PayPal")
    ui.screenshot("widget-chat.png")

    conversation = ui.conversation_id()
    assert conversation and conversation == final["conversation_id"]
    token = ui.stored()["token"]
    history = _history(base, conversation, token)
    assert history["channel"] == "web"
    assert [m["role"] for m in history["messages"]] == ["customer", "bot"]

    # after a reload the panel is still open and shows the server's history
    page.reload()
    page.locator("#csbot-widget[data-ready='true']").wait_for(state="attached")
    expect(page.locator(".csbot-panel")).to_be_visible()
    expect(page.locator(".csbot-msg--customer")).to_have_count(1)
    expect(page.locator(".csbot-msg--customer")).to_contain_text("can I pay with paypal?")
    bot = page.locator(".csbot-msg--bot", has_text="PayPal")
    expect(bot).to_have_count(1)
    assert ui.conversation_id() == conversation

    up = bot.get_by_role("button", name="Helpful", exact=True)
    down = bot.get_by_role("button", name="Not helpful")
    bot_id = final["message_id"]
    feedback_url = f"/api/v1/conversations/{conversation}/messages/{bot_id}/feedback"

    def rate(pressed, other, rating: str) -> None:
        """Click one thumb; the server stores that rating and the buttons show it."""
        with page.expect_response(lambda r: r.url.endswith(feedback_url)) as rated:
            pressed.click()
        assert rated.value.status == 200
        expect(pressed).to_have_attribute("aria-pressed", "true")
        expect(other).to_have_attribute("aria-pressed", "false")
        history = _history(base, conversation, token)["messages"]
        assert next(m["feedback"] for m in history if m["message_id"] == bot_id) == rating

    rate(up, down, "up")
    rate(down, up, "down")  # the customer changes their mind: the new rating replaces the first

    # the chosen state comes back with the history
    page.reload()
    page.locator("#csbot-widget[data-ready='true']").wait_for(state="attached")
    expect(
        page.locator(".csbot-msg--bot", has_text="PayPal").get_by_role("button", name="Not helpful")
    ).to_have_attribute("aria-pressed", "true")


def test_markup_in_messages_is_never_rendered(web, server):
    base, _ = server
    ui = web()
    ui.open_widget()
    page = ui.page
    attack = "<img src=x onerror=alert(1)>"

    # what the server says to this message, asked directly
    probe, probe_token = _new_conversation(base)
    status, body = http(
        "POST",
        f"{base}/api/v1/conversations/{probe}/messages",
        {"text": attack, "client_message_id": "probe-1"},
        token=probe_token,
    )
    assert status == 422, (status, body)

    page.evaluate(RECORD_EVENTS)
    ui.send(attack)
    mine = page.locator(".csbot-msg--customer").last
    expect(mine.locator(".csbot-bubble")).to_have_text(attack)  # literally, as text
    detail = mine.locator(".csbot-error-detail")
    expect(detail).to_be_visible(timeout=REPLY_TIMEOUT_MS)
    if isinstance(body["detail"], str):
        expect(detail).to_have_text(body["detail"])
    else:  # FastAPI's list of {loc, msg}: the widget shows the messages
        expect(detail).to_have_text("; ".join(d["msg"] for d in body["detail"]))
    expect(page.locator(".csbot-typing")).to_be_hidden()
    expect(page.locator(".csbot-input")).to_have_value(attack)  # back in the box, to edit
    errors = [e for e in page.evaluate("() => window.__csbot") if e["name"] == "error"]
    assert [e["detail"]["status"] for e in errors] == [422]
    assert page.locator("#csbot-widget img").count() == 0
    ui.screenshot("widget-rejected-markup.png")

    # bot and agent text with markdown and markup: a history served by a stand-in route
    fake = "md-test-conversation"
    bot_text = (
        "**Bold** and *italic*, a [safe link](https://larkspurgoods.example/help), "
        "[bad](javascript:alert(2)) and [relative](/account)\n"
        "<img src=x onerror=alert(3)><script>alert(4)</script>\n\n"
        "- one\n- two"
    )
    history = {
        "conversation_id": fake,
        "channel": "web",
        "created_at": "2026-01-01T00:00:00Z",
        "handed_off": False,
        "messages": [
            {
                "message_id": 1,
                "role": "customer",
                "text": "**not bold** <b>nor this</b>",
                "created_at": "2026-01-01T00:00:00Z",
                "action": None,
                "buttons": [],
                "feedback": None,
            },
            {
                "message_id": 2,
                "role": "bot",
                "text": bot_text,
                "created_at": "2026-01-01T00:00:01Z",
                "action": "answer",
                "buttons": ["<i>x</i>"],
                "feedback": None,
            },
        ],
        "has_more": False,
    }
    other = web()
    other.seed(fake, "a-stand-in-token")
    other.page.route(
        re.compile(rf"/api/v1/conversations/{fake}(\?.*)?$"),
        lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps(history)),
    )
    other.goto()
    page = other.page
    if not page.locator(".csbot-panel").is_visible():
        page.get_by_role("button", name="Open chat").click()
    bot = page.locator(".csbot-msg--bot")
    expect(bot).to_have_count(1)
    bubble = bot.locator(".csbot-bubble")
    expect(bubble.locator("strong")).to_have_text("Bold")
    expect(bubble.locator("em")).to_have_text("italic")
    links = bubble.locator("a")
    expect(links).to_have_count(1)
    assert links.get_attribute("href") == "https://larkspurgoods.example/help"
    assert links.get_attribute("target") == "_blank"
    assert "noopener" in links.get_attribute("rel")
    expect(bubble).to_contain_text("[bad](javascript:alert(2))")
    expect(bubble).to_contain_text("[relative](/account)")
    expect(bubble).to_contain_text("<img src=x onerror=alert(3)><script>alert(4)</script>")
    expect(bubble.locator("br")).to_have_count(1)
    expect(bubble.locator("li")).to_have_count(2)
    customer = page.locator(".csbot-msg--customer .csbot-bubble")
    expect(customer).to_have_text("**not bold** <b>nor this</b>")
    expect(page.locator(".csbot-quick-reply")).to_have_text("<i>x</i>")
    found = page.evaluate("""() => {
        const root = document.querySelector('#csbot-widget').shadowRoot;
        return Array.from(root.querySelectorAll('img, script, iframe, b, i, [onerror]')).map(e => e.tagName);
    }""")
    assert found == []
    other.screenshot("widget-markdown.png")


def test_handoff_live_agent_message_csat_and_keyboard(web, server):
    _, workspace = server
    ui = web()
    ui.goto()
    page = ui.page
    # keyboard only: the launcher is a labelled button; Enter opens, focus goes to the input
    launcher = page.get_by_role("button", name="Open chat")
    expect(launcher).to_have_attribute("aria-expanded", "false")
    launcher.focus()
    page.keyboard.press("Enter")
    box = page.get_by_role("textbox", name="Type your message")
    expect(box).to_be_focused()
    expect(page.locator(".csbot-launcher")).to_have_attribute("aria-expanded", "true")
    expect(page.locator(".csbot-launcher")).to_have_attribute("aria-label", "Close chat")

    with page.expect_response(lambda r: r.url.endswith("/events"), timeout=REPLY_TIMEOUT_MS) as events:
        page.keyboard.type("I want to talk to a person")
        page.keyboard.press("Enter")
        expect(page.locator(".csbot-msg--bot[data-action='handoff']")).to_have_count(1, timeout=REPLY_TIMEOUT_MS)
    assert events.value.status == 200
    # read with fetch (an EventSource could not send the token header), and the token goes
    # in the header
    conversation = ui.conversation_id()
    token = ui.stored()["token"]
    assert events.value.request.resource_type == "fetch"
    assert events.value.request.headers[TOKEN_HEADER] == token
    handoff_id = int(page.locator(".csbot-msg--bot[data-action='handoff']").get_attribute("data-message-id"))
    assert events.value.request.headers["last-event-id"] == str(handoff_id)  # what the page has shown
    expect(page.locator(".csbot-notice").first).to_contain_text("A member of our support team will join this chat")

    # an agent's message written to the store reaches the open page through the events stream
    with ConversationStore(workspace / "store.db").open() as store:
        agent_id = store.record_agent_message(conversation, "Hi, this is **Dana** from Larkspur Goods. How can I help?")
    agent = page.locator(".csbot-msg--agent")
    expect(agent).to_contain_text("Hi, this is Dana", timeout=REPLY_TIMEOUT_MS)
    expect(agent).to_have_attribute("data-message-id", str(agent_id))
    expect(agent.locator("strong")).to_have_text("Dana")
    expect(page.locator(".csbot-announcer")).to_contain_text("Dana")

    # after a reload the history says handed_off: the agent message comes with the history,
    # and the events stream resumes after it (Last-Event-ID), so it is not replayed
    with page.expect_request(lambda r: r.url.endswith("/events")) as resumed:
        page.reload()
    assert resumed.value.headers["last-event-id"] == str(agent_id)
    assert resumed.value.headers[TOKEN_HEADER] == token
    page.locator("#csbot-widget[data-ready='true']").wait_for(state="attached")
    expect(page.locator(".csbot-msg--agent")).to_have_count(1)

    # End chat -> CSAT, operable with the keyboard
    page.get_by_role("button", name="End chat").click()
    first = page.get_by_role("button", name="1 out of 5")
    expect(first).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="5 out of 5")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator(".csbot-csat-thanks")).to_be_visible()
    with ConversationStore(workspace / "store.db").open() as store:
        assert [r["score"] for r in store.csat(conversation)] == [5]
    ui.screenshot("widget-handoff-csat.png")

    # Escape closes the panel and gives focus back to the launcher
    expect(box).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator(".csbot-panel")).to_be_hidden()
    expect(page.get_by_role("button", name="Open chat")).to_be_focused()


def test_an_order_is_looked_up_in_the_demo_database_from_the_widget(web):
    ui = web()
    ui.open_widget()
    page = ui.page
    bots = page.locator(".csbot-msg--bot")
    ui.send("where is my order?")
    expect(bots.last).to_contain_text("order number", timeout=REPLY_TIMEOUT_MS)
    ui.send("it's #40318275")
    expect(bots).to_have_count(2, timeout=REPLY_TIMEOUT_MS)
    expect(bots.last).to_contain_text("email", timeout=REPLY_TIMEOUT_MS)
    ui.send("jamie.rivera@example.com")
    expect(bots).to_have_count(3, timeout=REPLY_TIMEOUT_MS)
    # the answer of the order-status action, read from the workspace's orders.db
    expect(bots.last).to_contain_text("PA1234567890", timeout=REPLY_TIMEOUT_MS)
    expect(bots.last).to_contain_text("ParcelCo")
    expect(bots.last).to_have_attribute("data-action", "answer")


def test_goodbye_offers_csat(web):
    ui = web()
    ui.open_widget()
    ui.send("thanks, bye!")
    expect(ui.page.locator(".csbot-msg--bot[data-action='smalltalk']")).to_have_count(1, timeout=REPLY_TIMEOUT_MS)
    expect(ui.page.locator(".csbot-csat")).to_be_visible()
    ui.page.get_by_role("button", name="Skip").click()
    expect(ui.page.locator(".csbot-csat")).to_have_count(0)


def test_messages_typed_offline_are_sent_once_back_online(web, server):
    base, _ = server
    ui = web()
    ui.open_widget()
    page = ui.page
    ui.context.set_offline(True)
    ui.send("how much is express shipping?")
    ui.send("and next day?")
    expect(page.locator(".csbot-msg--queued")).to_have_count(2)
    expect(page.locator(".csbot-status")).to_contain_text("offline")
    expect(page.locator(".csbot-msg--bot")).to_have_count(0)
    ui.screenshot("widget-offline.png")

    ui.context.set_offline(False)
    expect(page.locator(".csbot-msg--bot")).to_have_count(2, timeout=REPLY_TIMEOUT_MS)
    expect(page.locator(".csbot-msg--queued")).to_have_count(0)
    expect(page.locator(".csbot-status")).to_be_hidden()
    history = _history(base, ui.conversation_id(), ui.stored()["token"])
    customer = [m["text"] for m in history["messages"] if m["role"] == "customer"]
    assert customer == ["how much is express shipping?", "and next day?"]  # in order, once each


def test_a_reply_lost_on_the_way_is_not_duplicated_after_a_reload(web, server):
    """The server takes the turn but the connection drops before the reply arrives: the
    message stays queued (also across a reload) and is re-sent with its client_message_id;
    the server answers from the store and the page shows the turn once."""
    base, _ = server
    ui = web()
    ui.open_widget()
    page = ui.page
    drop = {"on": True, "dropped": 0, "ids": set()}

    def lose_reply(route):
        if not drop["on"]:
            route.continue_()
            return
        drop["ids"].add(json.loads(route.request.post_data)["client_message_id"])
        if not drop["dropped"]:
            route.fetch()  # the server runs the turn and stores it...
        drop["dropped"] += 1
        route.abort("connectionreset")  # ...and the reply never reaches the page

    page.route("**/messages/stream", lose_reply)
    ui.send("where is my order?")
    expect(page.locator(".csbot-msg--queued")).to_have_count(1, timeout=REPLY_TIMEOUT_MS)
    expect(page.locator(".csbot-status")).to_contain_text("Connection lost")
    expect(page.locator(".csbot-typing")).to_be_hidden()
    assert drop["dropped"] >= 1
    conversation = ui.conversation_id()
    token = ui.stored()["token"]
    assert [m["role"] for m in _history(base, conversation, token)["messages"]] == ["customer", "bot"]

    drop["on"] = False
    with page.expect_request("**/messages/stream") as resent:  # by the reloaded page
        page.reload()
    body = json.loads(resent.value.post_data)
    assert body["text"] == "where is my order?" and {body["client_message_id"]} == drop["ids"]
    page.locator("#csbot-widget[data-ready='true']").wait_for(state="attached")
    # the saved queue empties once the re-sent message has been answered and shown
    page.wait_for_function(
        "(key) => localStorage.getItem(key) === null", arg=_storage_key(base, "queue"), timeout=REPLY_TIMEOUT_MS
    )
    expect(page.locator(".csbot-msg--queued")).to_have_count(0)
    expect(page.locator(".csbot-msg--customer")).to_have_count(1)
    expect(page.locator(".csbot-msg--bot")).to_have_count(1)
    assert [m["role"] for m in _history(base, conversation, token)["messages"]] == ["customer", "bot"]


def test_rate_limit_waits_retry_after_and_a_stale_conversation_starts_afresh(web, server):
    base, _ = server
    ui = web()
    stale = "0" * 32  # a conversation the server does not know (say, a wiped store)
    ui.seed(stale, "not-a-token-the-server-gave")
    limited = {"n": 0}

    def limit_once(route):
        if limited["n"] == 0:
            limited["n"] += 1
            route.fulfill(
                status=429,
                headers={"Retry-After": "1"},
                content_type="application/json",
                body=json.dumps({"code": "rate_limited", "detail": "too many messages in this conversation"}),
            )
        else:
            route.continue_()

    ui.page.route("**/messages/stream", limit_once)
    ui.open_widget()
    page = ui.page
    assert ui.conversation_id() is None  # the 404 on the history dropped the stale id
    assert ui.stored() is None
    ui.send("how much is express shipping?")
    expect(page.locator(".csbot-status")).to_contain_text("Sending again in 1 s")
    expect(page.locator(".csbot-msg--bot")).to_have_count(1, timeout=REPLY_TIMEOUT_MS)
    expect(page.locator(".csbot-status")).to_be_hidden()
    assert limited["n"] == 1
    conversation = ui.conversation_id()
    assert conversation and conversation != stale
    history = _history(base, conversation, ui.stored()["token"])
    assert [m["text"] for m in history["messages"] if m["role"] == "customer"] == ["how much is express shipping?"]


def test_mobile_layout_in_arabic(web):
    ui = web(viewport={"width": 375, "height": 720}, is_mobile=True, has_touch=True)
    ui.open_widget("/demo?lang=ar", launcher_name="فتح المحادثة", input_name="اكتب رسالتك")
    page = ui.page
    root = page.locator(".csbot-root")
    assert root.get_attribute("dir") == "rtl" and root.get_attribute("lang") == "ar"
    panel = page.locator(".csbot-panel").bounding_box()
    assert panel == {"x": 0, "y": 0, "width": 375, "height": 720}
    expect(page.get_by_role("button", name="إغلاق المحادثة")).to_be_visible()
    ui.send("can I pay with paypal?")
    expect(page.locator(".csbot-msg--bot").last).to_contain_text("PayPal", timeout=REPLY_TIMEOUT_MS)
    expect(page.locator(".csbot-msg--bot .csbot-feedback")).to_be_visible()  # the reply is complete
    ui.screenshot("widget-mobile-ar.png")


def test_the_access_token_travels_in_a_header_never_in_a_url(web, server):
    base, _ = server
    ui = web()
    requests = ui.record_requests()
    ui.open_widget()
    page = ui.page
    ui.send("can I pay with paypal?")
    bot = page.locator(".csbot-msg--bot").last
    expect(bot.get_by_role("button", name="Helpful", exact=True)).to_be_visible(timeout=REPLY_TIMEOUT_MS)
    conversation = ui.conversation_id()
    token = ui.stored()["token"]
    with page.expect_response(lambda r: r.url.endswith("/feedback")):
        bot.get_by_role("button", name="Helpful", exact=True).click()
    page.reload()
    page.locator("#csbot-widget[data-ready='true']").wait_for(state="attached")
    expect(page.locator(".csbot-msg--bot")).to_have_count(1)

    urls = [r.url for r in requests]
    assert not [u for u in urls if token in u or "token" in u.lower()], urls
    calls = [r for r in requests if f"/api/v1/conversations/{conversation}" in r.url]
    # (method, last path segment after the id): the reply stream, the rating, the history
    kinds = {(r.method, r.url.split(conversation, 1)[1].split("?")[0].rsplit("/", 1)[-1]) for r in calls}
    assert kinds == {("POST", "stream"), ("POST", "feedback"), ("GET", "")}, kinds
    assert all(r.headers.get(TOKEN_HEADER) == token for r in calls), [(r.method, r.url) for r in calls]
    # the one call without a conversation yet carries no token
    created = [r for r in requests if r.url == f"{base}/api/v1/conversations"]
    assert [r.method for r in created] == ["POST"] and TOKEN_HEADER not in created[0].headers
    # the host page's API names the conversation but never hands out its token
    exposed = page.evaluate("""() => Object.keys(window.CsbotWidget).sort().map(
        (k) => [k, k === 'conversationId' ? window.CsbotWidget[k]() : null])""")
    assert exposed == [["close", None], ["conversationId", conversation], ["open", None], ["send", None]]


def test_end_chat_leaves_nothing_of_the_conversation_in_the_browser(web, server):
    base, _ = server
    ui = web()
    requests = ui.record_requests()
    ui.open_widget()
    page = ui.page
    ui.send("can I pay with paypal?")
    expect(page.locator(".csbot-msg--bot").last).to_contain_text("PayPal", timeout=REPLY_TIMEOUT_MS)
    conversation = ui.conversation_id()
    token = ui.stored()["token"]
    # the same conversation in a second tab of the site
    other_tab = ui.context.new_page()
    other_tab.goto(base + "/demo")
    other_tab.locator("#csbot-widget[data-ready='true']").wait_for(state="attached")
    expect(other_tab.locator(".csbot-msg--customer")).to_have_count(1)

    # a message typed offline waits in the saved queue...
    ui.context.set_offline(True)
    ui.send("and next day?")
    expect(page.locator(".csbot-msg--queued")).to_have_count(1)
    assert ui.page.evaluate("(key) => localStorage.getItem(key)", _storage_key(base, "queue")) is not None

    # ...and End chat drops it, with the conversation and its token
    page.get_by_role("button", name="End chat").click()
    expect(page.locator(".csbot-msg--cancelled")).to_contain_text("Not sent: the chat was ended.")
    expect(page.locator(".csbot-ended")).to_contain_text("This chat has ended.")
    stored = ui.local_storage()
    assert not [k for k, v in stored.items() if conversation in k + v or token in k + v or k.endswith(":queue")], stored
    assert ui.stored() is None
    # the other tab lets it go too, instead of writing it back on its next activity
    expect(other_tab.locator(".csbot-msg--customer")).to_have_count(0)
    assert other_tab.evaluate("() => window.CsbotWidget.conversationId()") is None

    ui.context.set_offline(False)
    page.reload()
    page.locator("#csbot-widget[data-ready='true']").wait_for(state="attached")
    if not page.locator(".csbot-panel").is_visible():
        page.get_by_role("button", name="Open chat").click()
    expect(page.locator(".csbot-msg--welcome")).to_have_count(1)
    expect(page.locator(".csbot-msg--customer")).to_have_count(0)
    expect(page.locator(".csbot-msg--bot")).to_have_count(0)
    assert ui.conversation_id() is None
    assert ui.local_storage() == {}
    # the dropped message was never sent: the server has the one turn
    assert len([r for r in requests if r.url.endswith("/messages/stream")]) == 1
    customer = [m["text"] for m in _history(base, conversation, token)["messages"] if m["role"] == "customer"]
    assert customer == ["can I pay with paypal?"]


def test_delete_this_conversation_erases_it(web, server):
    base, workspace = server
    conversation, token = _new_conversation(base)
    with ConversationStore(workspace / "store.db").open() as store:
        store.record_agent_message(conversation, "Your parcel left our warehouse this morning.")
    ui = web()
    ui.seed(conversation, token)
    ui.goto()
    page = ui.page
    if not page.locator(".csbot-panel").is_visible():
        page.get_by_role("button", name="Open chat").click()
    expect(page.locator(".csbot-msg--agent")).to_contain_text("Your parcel left")

    menu = page.get_by_role("button", name="More options")
    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    page.get_by_role("button", name="Delete this conversation").click()
    expect(page.locator(".csbot-menu")).to_contain_text("This cannot be undone.")
    expect(page.get_by_role("button", name="Cancel")).to_be_focused()
    ui.screenshot("widget-delete-confirm.png")
    with page.expect_response(lambda r: r.request.method == "DELETE") as deleted:
        page.get_by_role("button", name="Delete", exact=True).click()
    assert deleted.value.status == 204
    assert deleted.value.request.headers[TOKEN_HEADER] == token
    expect(page.locator(".csbot-notice")).to_have_text("The conversation was deleted.")
    expect(page.locator(".csbot-msg--agent")).to_have_count(0)
    expect(menu).to_be_hidden()  # nothing left to delete
    assert ui.conversation_id() is None
    assert ui.local_storage() == {}
    status, body = http("GET", f"{base}/api/v1/conversations/{conversation}", token=token)
    assert (status, body["code"]) == (404, "conversation_not_found")


def test_a_stored_conversation_past_the_read_window_is_forgotten(web, server):
    base, workspace = server
    conversation, token = _new_conversation(base)
    with ConversationStore(workspace / "store.db").open() as store:
        store.record_agent_message(conversation, "An old answer nobody should see here.")
    ui = web()
    requests = ui.record_requests()
    ui.seed(conversation, token, age_ms=31 * DAY_MS)  # the server's read window is 30 days
    ui.goto()
    assert ui.conversation_id() is None
    assert ui.stored() is None
    assert [r.url for r in requests if conversation in r.url] == []  # not even asked
    expect(ui.page.locator(".csbot-msg--agent")).to_have_count(0)


def test_earlier_messages_page_back_through_the_history(web, server):
    base, workspace = server
    conversation, token = _new_conversation(base)
    total = HISTORY_PAGE_SIZE + 5
    with ConversationStore(workspace / "store.db").open() as store:
        for n in range(1, total + 1):
            store.record_agent_message(conversation, f"Agent note {n}")
    ui = web()
    ui.seed(conversation, token)
    ui.goto()
    page = ui.page
    if not page.locator(".csbot-panel").is_visible():
        page.get_by_role("button", name="Open chat").click()
    notes = page.locator(".csbot-msg--agent .csbot-bubble")
    expect(notes).to_have_count(HISTORY_PAGE_SIZE)
    page.locator(".csbot-log").evaluate("(log) => { log.scrollTop = 0; }")
    ui.screenshot("widget-earlier-messages.png")
    expect(notes.first).to_have_text("Agent note 6")
    expect(notes.last).to_have_text(f"Agent note {total}")
    expect(page.locator(".csbot-msg--welcome")).to_have_count(0)  # the start is not on screen yet

    earlier = page.get_by_role("button", name="Show earlier messages")
    expect(earlier).to_be_visible()
    earlier.focus()  # keyboard only
    with page.expect_request(lambda r: "before=" in r.url) as paged:
        page.keyboard.press("Enter")
    assert paged.value.headers[TOKEN_HEADER] == token and token not in paged.value.url
    expect(notes).to_have_count(total)
    assert notes.all_text_contents() == [f"Agent note {n}" for n in range(1, total + 1)]
    expect(earlier).to_have_count(0)  # nothing older left
    expect(page.locator(".csbot-log > *").first).to_have_class(re.compile(r"\bcsbot-msg--welcome\b"))
    expect(page.locator(".csbot-log")).to_be_focused()
    expect(page.locator(".csbot-announcer")).to_have_text("Earlier messages loaded.")
