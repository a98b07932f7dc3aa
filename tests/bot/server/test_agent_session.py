"""Signing in to the agent panel, the session cookie, CSRF, roles, throttling and expiry,
against the real app (real store, real HTTP)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.bot.server.agent_panel import PANEL, PASSWORD, panel_server

pytestmark = pytest.mark.slow

# every panel route of the spec, with a sample path: none may answer without a session
PANEL_ROUTES = [
    ("GET", "/session"),
    ("DELETE", "/session"),
    ("GET", "/queue"),
    ("GET", "/conversations/c0ffee"),
    ("POST", "/conversations/c0ffee/claim"),
    ("POST", "/conversations/c0ffee/take-over"),
    ("POST", "/conversations/c0ffee/hand-back"),
    ("POST", "/conversations/c0ffee/assign"),
    ("POST", "/conversations/c0ffee/resolve"),
    ("POST", "/conversations/c0ffee/messages"),
    ("POST", "/conversations/c0ffee/notes"),
    ("GET", "/conversations/c0ffee/suggestions"),
    ("POST", "/conversations/c0ffee/suggestions/1/discard"),
    ("GET", "/search?q=refund"),
    ("GET", "/events"),
    ("GET", "/users"),
    ("POST", "/users"),
    ("POST", "/users/somebody/disable"),
    ("POST", "/users/somebody/enable"),
    ("POST", "/users/somebody/reset-password"),
    ("GET", "/models"),
    ("POST", "/models/gen-1/promote"),
    ("POST", "/models/rollback"),
    ("POST", "/models/gen-1/retire"),
    ("GET", "/metrics?since=2024-01-01"),
]


@pytest.fixture(scope="module")
def panel(demo_workspace, tmp_path_factory):
    with panel_server(demo_workspace, tmp_path_factory.mktemp("agent-session")) as server:
        yield server


def _cookie_attributes(set_cookie: str) -> dict[str, str]:
    parts = [p.strip() for p in set_cookie.split(";")]
    return {p.partition("=")[0].lower(): p.partition("=")[2] for p in parts[1:]}


def test_signing_in_sets_an_httponly_lax_cookie_and_returns_the_csrf_token(panel):
    name = panel.add_agent("agent")
    with panel.browser() as client:
        r = client.post(f"{PANEL}/session", json={"name": name.upper(), "password": PASSWORD})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["agent"]["name"] == name and body["agent"]["role"] == "agent"
        assert len(body["csrf_token"]) >= 32 and body["expires_at"]
        set_cookie = r.headers["set-cookie"]
        token = set_cookie.split(";")[0].partition("=")[2]
        attributes = _cookie_attributes(set_cookie)
        assert set_cookie.startswith("csbot_agent=")
        assert "httponly" in attributes and attributes["samesite"].lower() == "lax" and attributes["path"] == "/"
        assert 12 * 3600 - 60 <= int(attributes["max-age"]) <= 12 * 3600
        assert "secure" not in attributes  # plain http here; https requests get Secure
        assert token not in r.text  # the cookie's value is never in a body scripts can read

        again = client.get(f"{PANEL}/session")
        assert again.status_code == 200
        assert again.json() == body  # a reloaded page gets its CSRF token back


def test_the_cookie_is_secure_when_a_trusted_proxy_says_the_browser_came_over_https(panel):
    name = panel.add_agent("agent")
    with panel.browser(**{"X-Forwarded-Proto": "https"}) as client:  # 127.0.0.1 is a trusted proxy here
        r = client.post(f"{PANEL}/session", json={"name": name, "password": PASSWORD})
    assert r.status_code == 200
    assert "secure" in _cookie_attributes(r.headers["set-cookie"])


def test_a_wrong_password_and_an_unknown_name_get_the_same_401(panel):
    name = panel.add_agent("agent")
    with panel.browser(**{"X-Forwarded-For": "10.0.0.1"}) as client:
        wrong = client.post(f"{PANEL}/session", json={"name": name, "password": "not the password"})
        unknown = client.post(f"{PANEL}/session", json={"name": "nobody-here", "password": PASSWORD})
    for r in (wrong, unknown):
        assert r.status_code == 401
        assert r.json()["code"] == "sign_in_failed"
        assert "set-cookie" not in r.headers
    assert wrong.json()["detail"] == unknown.json()["detail"] == "wrong name or password"


def test_too_many_failures_from_one_address_are_throttled_with_retry_after(panel):
    victim, other = panel.add_agent("agent"), panel.add_agent("agent")
    attacker = {"X-Forwarded-For": "10.0.0.2"}
    with panel.browser(**attacker) as client:
        for _ in range(5):
            r = client.post(f"{PANEL}/session", json={"name": victim, "password": "guess guess guess"})
            assert r.status_code == 401
        # throttled before the password is checked: the right one is refused too, for any name
        for name in (victim, other):
            r = client.post(f"{PANEL}/session", json={"name": name, "password": PASSWORD})
            assert r.status_code == 429, r.text
            assert r.json()["code"] == "sign_in_throttled"
            assert 1 <= int(r.headers["retry-after"]) <= 15 * 60
    # another address may still sign in as the other agent
    assert panel.sign_in(other, **{"X-Forwarded-For": "10.0.0.3"}).name == other


def test_too_many_failures_for_one_name_are_throttled_from_any_address(panel):
    name = panel.add_agent("agent")
    for i in range(5):
        with panel.browser(**{"X-Forwarded-For": f"10.0.1.{i}"}) as client:
            assert client.post(f"{PANEL}/session", json={"name": name, "password": "x" * 12}).status_code == 401
    with panel.browser(**{"X-Forwarded-For": "10.0.1.99"}) as client:
        r = client.post(f"{PANEL}/session", json={"name": name, "password": PASSWORD})
    assert r.status_code == 429 and r.json()["code"] == "sign_in_throttled"


@pytest.mark.parametrize(("method", "path"), PANEL_ROUTES)
def test_every_panel_route_refuses_a_request_without_a_session(panel, method, path):
    with panel.browser() as client:
        r = client.request(method, PANEL + path, json={} if method == "POST" else None)
    assert r.status_code == 401, (method, path, r.status_code, r.text)
    assert r.json()["code"] == "not_signed_in"
    assert r.json()["reason"] == "missing"


def test_the_openapi_schema_tags_every_panel_route_and_none_answers_without_a_session(panel):
    paths = panel.live.client.get("/openapi.json").json()["paths"]
    panel_paths = {p: ops for p, ops in paths.items() if p.startswith(PANEL)}
    assert {f"{PANEL}/session", f"{PANEL}/queue", f"{PANEL}/conversations/{{conversation_id}}"} <= set(panel_paths)
    answered = []
    with panel.browser() as client:
        for path, operations in panel_paths.items():
            for method, operation in operations.items():
                assert "agent" in operation["tags"], (method, path)
                if (method, path) == ("post", f"{PANEL}/session"):
                    continue  # signing in is the one call without a session
                sample = path.replace("{conversation_id}", "c0ffee").replace("{name}", "somebody")
                sample = sample.replace("{model_id}", "gen-1").replace("{suggestion_id}", "1")
                r = client.request(method.upper(), sample, json={} if method != "get" else None)
                if r.status_code != 401:
                    answered.append((method, path, r.status_code))
    assert answered == []


def test_a_session_cookie_that_was_never_issued_is_unknown(panel):
    with panel.browser() as client:
        client.cookies.set("csbot_agent", "made-up-token")
        r = client.get(f"{PANEL}/queue")
    assert r.status_code == 401 and r.json()["reason"] == "unknown"


def test_state_changes_need_the_csrf_header(panel):
    browser = panel.new_agent()
    path = f"{PANEL}/conversations/c0ffee/claim"
    missing = browser.client.post(path)
    wrong = browser.client.post(path, headers={"X-CSRF-Token": browser.csrf[:-2] + "xx"})
    for r in (missing, wrong):
        assert r.status_code == 403, r.text
        assert r.json()["code"] == "csrf_failed"
    assert browser.client.delete(f"{PANEL}/session").status_code == 403
    # with the token the request gets through to the route (no such conversation)
    right = browser.post("/conversations/c0ffee/claim")
    assert right.status_code == 404 and right.json()["code"] == "not_found"


def test_an_agent_is_refused_the_admin_routes(panel):
    agent, admin = panel.new_agent("agent"), panel.new_agent("admin")
    for r in (
        agent.get("/users"),
        agent.post("/users", {"name": "mallory", "password": PASSWORD, "role": "admin"}),
        agent.post(f"/users/{admin.name}/disable"),
        agent.get("/models"),
        agent.post("/models/rollback"),
    ):
        assert r.status_code == 403, r.text
        assert r.json()["code"] == "forbidden"
    assert admin.get("/users").status_code == 200
    assert "mallory" not in {u["name"] for u in admin.get("/users").json()["users"]}


def test_a_disabled_agents_session_is_refused_and_they_cannot_sign_in(panel):
    agent, admin = panel.new_agent("agent"), panel.new_agent("admin")
    assert agent.get("/queue").status_code == 200
    assert admin.post(f"/users/{agent.name}/disable").json()["disabled"] is True
    r = agent.get("/queue")
    assert r.status_code == 401 and r.json()["code"] == "not_signed_in"
    with panel.browser(**{"X-Forwarded-For": "10.0.2.1"}) as client:
        again = client.post(f"{PANEL}/session", json={"name": agent.name, "password": PASSWORD})
    assert again.status_code == 401 and again.json()["code"] == "sign_in_failed"
    admin.post(f"/users/{agent.name}/enable")
    assert panel.sign_in(agent.name).get("/queue").status_code == 200


@pytest.mark.parametrize(
    "later", [timedelta(hours=12, minutes=1), timedelta(minutes=61)], ids=["past-lifetime", "idle"]
)
def test_an_expired_session_is_refused_with_reason_expired(panel, later):
    browser = panel.new_agent()
    assert browser.get("/session").status_code == 200
    panel.clock.offset = later
    try:
        r = browser.get("/session")
    finally:
        panel.clock.offset = timedelta(0)
    assert r.status_code == 401
    assert r.json()["code"] == "not_signed_in" and r.json()["reason"] == "expired"
    assert browser.get("/session").json()["reason"] == "unknown"  # an expired session is gone for good


def test_a_session_in_use_does_not_go_idle(panel):
    browser = panel.new_agent()
    try:
        for minutes in (40, 80, 120):  # each request within the idle hour of the one before
            panel.clock.offset = timedelta(minutes=minutes)
            assert browser.get("/queue").status_code == 200
    finally:
        panel.clock.offset = timedelta(0)


def test_signing_out_ends_the_session_and_clears_the_cookie(panel):
    browser = panel.new_agent()
    token = browser.client.cookies["csbot_agent"]
    r = browser.delete("/session")
    assert r.status_code == 204
    assert 'csbot_agent=""' in r.headers["set-cookie"] or "csbot_agent=;" in r.headers["set-cookie"]
    assert "max-age=0" in r.headers["set-cookie"].lower()
    assert browser.get("/session").status_code == 401
    with panel.browser() as other:  # the old cookie value is dead wherever it is replayed
        other.cookies.set("csbot_agent", token)
        assert other.get(f"{PANEL}/queue").json()["reason"] == "unknown"


def test_another_sites_page_cannot_sign_a_browser_in(panel):
    name = panel.add_agent("agent")
    with panel.browser(**{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}) as client:
        r = client.post(f"{PANEL}/session", json={"name": name, "password": PASSWORD})
    assert r.status_code == 403 and r.json()["code"] == "csrf_failed"
    assert "set-cookie" not in r.headers
    with panel.browser(**{"Sec-Fetch-Site": "same-origin"}) as client:
        assert client.post(f"{PANEL}/session", json={"name": name, "password": PASSWORD}).status_code == 200
