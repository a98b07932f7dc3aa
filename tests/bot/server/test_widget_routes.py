"""The widget's files and the /demo page, served by the widget router on a bare FastAPI app."""

from __future__ import annotations

import json
import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from bot.server.routes import widget
from bot.server.routes.widget import STATIC_DIR, available_locales, router


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    app.include_router(router)
    return TestClient(app)


@pytest.mark.parametrize(
    ("path", "media_type", "needle"),
    [
        ("/widget.js", "text/javascript", "document.currentScript"),
        ("/widget.css", "text/css", ".csbot-launcher"),
        ("/demo.css", "text/css", ".products"),
    ],
)
def test_assets_are_served_with_type_and_cache_headers(client, path, media_type, needle):
    r = client.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(media_type)
    assert "charset=utf-8" in r.headers["content-type"]
    assert needle in r.text
    assert "max-age=" in r.headers["cache-control"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["etag"].startswith('"')


def test_etag_revalidation_answers_304(client):
    etag = client.get("/widget.js").headers["etag"]
    r = client.get("/widget.js", headers={"If-None-Match": etag})
    assert r.status_code == 304
    assert r.content == b""
    assert client.get("/widget.js", headers={"If-None-Match": '"other"'}).status_code == 200


def test_locales_are_listed_from_the_files_present():
    assert {"en", "ar"} <= set(available_locales())


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_locale_files_are_json_with_every_english_key(client, lang):
    r = client.get(f"/widget/locales/{lang}.json")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["access-control-allow-origin"] == "*"
    strings = r.json()
    english = json.loads((STATIC_DIR / "locales" / "en.json").read_text(encoding="utf-8"))
    assert set(strings) == set(english)
    assert all(isinstance(v, str) and v for v in strings.values())
    assert strings["dir"] == ("rtl" if lang == "ar" else "ltr")


def test_every_string_the_widget_uses_is_in_the_locale():
    js = (STATIC_DIR / "widget.js").read_text(encoding="utf-8")
    used = set(re.findall(r'\bt\("([a-z_0-9]+)"', js))
    used |= {f"csat_score_{i}" for i in range(1, 6)}  # t("csat_score_" + score)
    used |= {"you", "bot", "agent", "system"}  # roleLabel
    used.discard("csat_score_")
    english = json.loads((STATIC_DIR / "locales" / "en.json").read_text(encoding="utf-8"))
    assert used - set(english) == set()


@pytest.mark.parametrize("lang", ["xx", "EN", "en-us", "..", "a" * 40])
def test_unknown_locale_is_404(client, lang):
    r = client.get(f"/widget/locales/{lang}.json")
    assert r.status_code == 404
    assert "available" in r.json()["detail"]


def test_locale_path_cannot_escape_the_folder(client):
    assert client.get("/widget/locales/../widget.json").status_code == 404
    assert client.get("/widget/locales/%2e%2e%2fdemo.json").status_code == 404
    assert client.get("/widget/locales/..%2Fdemo.json").status_code == 404


def test_demo_page_has_a_strict_csp_and_one_script_tag(client):
    r = client.get("/demo")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "http" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    html = r.text
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert len(scripts) == 1 and 'src="/widget.js"' in scripts[0]
    assert 'data-lang="en"' in scripts[0]
    assert re.search(r"<script\b[^>]*>\s*[^<\s]", html) is None  # no inline script
    assert " style=" not in html and "<style" not in html  # the CSP would block them
    assert "Larkspur Goods" in html


def test_demo_page_takes_a_known_language_only(client):
    assert 'data-lang="ar"' in client.get("/demo", params={"lang": "ar"}).text
    page = client.get("/demo", params={"lang": '"><script>alert(1)</script>'}).text
    assert 'data-lang="en"' in page and "alert(1)" not in page


def test_static_files_reference_no_other_origin():
    for name in ("widget.js", "widget.css", "demo.html", "demo.css"):
        text = (STATIC_DIR / name).read_text(encoding="utf-8")
        # the only absolute URLs allowed are the SVG namespace and documentation examples
        urls = set(re.findall(r"https?://[^\s\"'<>)]+", text)) - {"http://www.w3.org/2000/svg"}
        urls = {u for u in urls if "HOST" not in u}
        assert urls == set(), f"{name} references {urls}"


def test_widget_never_inserts_html():
    js = (STATIC_DIR / "widget.js").read_text(encoding="utf-8")
    code = re.sub(r"/\*.*?\*/", "", js, flags=re.DOTALL)  # the header comment names them
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in code, sink


def test_missing_static_file_is_404(client, monkeypatch, tmp_path):
    monkeypatch.setattr(widget, "STATIC_DIR", tmp_path)
    assert client.get("/widget.js").status_code == 404
