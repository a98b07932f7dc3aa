"""The agent page and its files, served by the agent_page router on a bare FastAPI app:
a strict CSP, nothing from another origin, no inline script or style, no HTML sinks."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from bot.server.routes import agent_page
from bot.server.routes.agent_page import AGENT_ASSETS, AGENT_DIR, router

SVG_NAMESPACE = "http://www.w3.org/2000/svg"


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    app.include_router(router)
    return TestClient(app)


def _directives(csp: str) -> dict[str, str]:
    return dict(d.strip().split(" ", 1) for d in csp.split(";"))


def test_page_has_a_strict_csp_and_is_not_framed(client):
    r = client.get("/agent")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    directives = _directives(csp)
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'"  # the API and its events stream: this origin only
    assert directives["frame-ancestors"] == "'none'"
    assert directives["form-action"] == "'none'"  # forms are sent by the script, never navigated
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "http" not in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["cache-control"] == "no-cache"


def test_page_loads_only_its_own_files_with_no_inline_code(client):
    html = client.get("/agent").text
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert [re.search(r'src="([^"]+)"', s).group(1) for s in scripts] == [
        "agent/static/chart.js",
        "agent/static/agent.js",
    ]
    assert re.search(r"<script\b[^>]*>\s*[^<\s]", html) is None  # no inline script
    assert " style=" not in html and "<style" not in html  # the CSP would block them
    assert re.search(r"\son[a-z]+=", html) is None  # no inline event handlers
    links = re.findall(r'<link\b[^>]*href="([^"]+)"', html)
    assert links == ["data:,", "agent/static/agent.css"]  # no favicon request: the icon is empty
    # every file the page names is one the router serves
    for src in [links[1], "agent/static/chart.js", "agent/static/agent.js"]:
        assert client.get("/" + src).status_code == 200, src


def test_every_input_of_the_page_has_a_label():
    html = (AGENT_DIR / "agent.html").read_text(encoding="utf-8")
    controls = re.findall(r"<(?:input|textarea|select)\b[^>]*\bid=\"([^\"]+)\"", html)
    assert len(controls) >= 12
    labelled = set(re.findall(r'<label\b[^>]*\bfor="([^"]+)"', html))
    assert set(controls) - labelled == set()


@pytest.mark.parametrize(("name", "media_type"), sorted(AGENT_ASSETS.items()))
def test_assets_are_served_with_type_cache_and_etag(client, name, media_type):
    r = client.get(f"/agent/static/{name}")
    assert r.status_code == 200
    assert r.headers["content-type"] == media_type
    assert "max-age=" in r.headers["cache-control"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cross-origin-resource-policy"] == "same-origin"
    etag = r.headers["etag"]
    again = client.get(f"/agent/static/{name}", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""


@pytest.mark.parametrize(
    "name", ["widget.js", "agent.html", "../widget.js", "..%2Fwidget.js", "AGENT.JS", "agent.js.map", "x" * 300]
)
def test_only_the_pages_own_files_are_served(client, name):
    assert client.get(f"/agent/static/{name}").status_code == 404


def test_files_reference_no_other_origin():
    for path in sorted(AGENT_DIR.iterdir()):
        text = path.read_text(encoding="utf-8")
        urls = set(re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}[^\s\"'<>)]*", text, flags=re.IGNORECASE))
        assert urls - {SVG_NAMESPACE} == set(), f"{path.name} references {urls}"
        if path.suffix == ".css":  # nothing loaded from the styles either
            assert "@import" not in text and "url(" not in text, path.name


def test_scripts_never_insert_html():
    for name in ("agent.js", "chart.js"):
        js = (AGENT_DIR / name).read_text(encoding="utf-8")
        code = re.sub(r"/\*.*?\*/", "", js, flags=re.DOTALL)  # the header comment names them
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in code, f"{name} uses {sink}"


def test_the_script_sends_the_csrf_token_on_every_write():
    js = (AGENT_DIR / "agent.js").read_text(encoding="utf-8")
    assert 'if (method !== "GET" && state.csrf) headers["X-CSRF-Token"] = state.csrf;' in js
    # every request goes through that one function
    assert js.count("window.fetch(") == 1


def test_page_is_missing_is_a_clear_404(client, monkeypatch, tmp_path):
    monkeypatch.setattr(agent_page, "AGENT_DIR", tmp_path)
    r = client.get("/agent")
    assert r.status_code == 404
    assert "agent.html" in r.json()["detail"]
