"""The website chat widget and the /demo store page, served by csbot itself.

The files live in ``bot/server/static/`` (package data): ``widget.js``, ``widget.css``,
``locales/<lang>.json``, ``demo.html`` and ``demo.css``. Nothing here reaches another origin;
/demo carries a Content-Security-Policy that allows this origin only, so the page also
proves the widget runs without inline scripts or styles.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
LOCALES_DIR = STATIC_DIR / "locales"
_LANG = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{2,8})?")

# Short browser caching with revalidation: the file names carry no version, so a deploy
# must show up within minutes; the ETag makes the revalidation a 304.
ASSET_CACHE = "public, max-age=300, stale-while-revalidate=3600"
DEMO_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'; object-src 'none'"
)

router = APIRouter(tags=["widget"])


@dataclass(frozen=True)
class Asset:
    body: bytes
    etag: str
    mtime_ns: int


_cache: dict[Path, Asset] = {}


def load_asset(path: Path) -> Asset:
    """File bytes and a strong ETag, re-read when the file changes on disk."""
    try:
        mtime_ns = path.stat().st_mtime_ns
    except FileNotFoundError:
        raise HTTPException(status_code=404, detail=f"{path.name} is not installed") from None
    cached = _cache.get(path)
    if cached is None or cached.mtime_ns != mtime_ns:
        body = path.read_bytes()
        cached = Asset(body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"', mtime_ns)
        _cache[path] = cached
    return cached


def _asset(
    request: Request, path: Path, media_type: str, *, cache: str = ASSET_CACHE, headers: dict[str, str] | None = None
) -> Response:
    asset = load_asset(path)
    common = {
        "Cache-Control": cache,
        "ETag": asset.etag,
        "X-Content-Type-Options": "nosniff",
        # the widget is embedded by other sites: its files may be loaded cross-origin
        "Cross-Origin-Resource-Policy": "cross-origin",
        **(headers or {}),
    }
    if asset.etag in asset_etags(request.headers.get("if-none-match", "")):
        return Response(status_code=304, headers=common)
    return Response(asset.body, media_type=media_type, headers=common)


def asset_etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def available_locales() -> list[str]:
    """The languages the widget has a locale file for, e.g. ``["ar", "en"]``."""
    if not LOCALES_DIR.is_dir():
        return []
    return sorted(p.stem for p in LOCALES_DIR.glob("*.json") if _LANG.fullmatch(p.stem))


@router.get("/widget.js", include_in_schema=False)
def widget_js(request: Request) -> Response:
    return _asset(request, STATIC_DIR / "widget.js", "text/javascript; charset=utf-8")


@router.get("/widget.css", include_in_schema=False)
def widget_css(request: Request) -> Response:
    return _asset(request, STATIC_DIR / "widget.css", "text/css; charset=utf-8")


@router.get("/widget/locales/{lang}.json", include_in_schema=False)
def widget_locale(lang: str, request: Request) -> Response:
    # Only names of files that are present: never a path built from the request.
    known = available_locales()
    if lang not in known:
        raise HTTPException(status_code=404, detail=f"no widget locale {lang[:20]!r}; available: {', '.join(known)}")
    return _asset(
        request,
        LOCALES_DIR / f"{lang}.json",
        "application/json; charset=utf-8",
        # public strings, fetched by the widget from whatever site embeds it
        headers={"Access-Control-Allow-Origin": "*"},
    )


@router.get("/demo.css", include_in_schema=False)
def demo_css(request: Request) -> Response:
    return _asset(request, STATIC_DIR / "demo.css", "text/css; charset=utf-8")


@router.get("/demo", include_in_schema=False)
def demo(lang: str = "en") -> Response:
    """A sample store page with the widget embedded; ``?lang=ar`` shows the widget in Arabic."""
    if lang not in available_locales():
        lang = "en"
    html = load_asset(STATIC_DIR / "demo.html").body.decode("utf-8").replace("{{lang}}", lang)
    return Response(
        html,
        media_type="text/html; charset=utf-8",
        headers={
            "Content-Security-Policy": DEMO_CSP,
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",
        },
    )
