"""The support agents' web page, served by csbot itself: GET /agent and its files.

One HTML page (``bot/server/static/agent/agent.html``) with its script, styles and chart
drawer beside it, all from this origin. The page talks to ``/api/v1/agent/`` only; its
Content-Security-Policy allows nothing from elsewhere and no inline script or style, so a
message that slipped markup past every other check still could not run here.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

# the widget's loader: file bytes with a strong ETag, re-read when the file changes
from bot.server.routes.widget import ASSET_CACHE, STATIC_DIR, asset_etags, load_asset

AGENT_DIR = STATIC_DIR / "agent"
# The files the page loads, by the name in its URL: never a path built from the request.
AGENT_ASSETS = {
    "agent.js": "text/javascript; charset=utf-8",
    "chart.js": "text/javascript; charset=utf-8",
    "agent.css": "text/css; charset=utf-8",
}
AGENT_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'; object-src 'none'"
)
# The page and its files are for this origin only: another site may neither frame the
# page nor load its script.
_COMMON = {
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "same-origin",
}

router = APIRouter(tags=["agent"])


@router.get("/agent", include_in_schema=False)
def agent_page() -> Response:
    """The panel: sign-in, queue, conversation, admin pages and metrics, all drawn by agent.js."""
    return Response(
        load_asset(AGENT_DIR / "agent.html").body,
        media_type="text/html; charset=utf-8",
        headers={
            **_COMMON,
            "Content-Security-Policy": AGENT_CSP,
            "Cache-Control": "no-cache",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",
        },
    )


@router.get("/agent/static/{name}", include_in_schema=False)
def agent_asset(name: str, request: Request) -> Response:
    media_type = AGENT_ASSETS.get(name)
    if media_type is None:
        raise HTTPException(status_code=404, detail=f"no agent panel file {name[:40]!r}; the page loads only its own")
    asset = load_asset(AGENT_DIR / name)
    headers = {**_COMMON, "Cache-Control": ASSET_CACHE, "ETag": asset.etag}
    if asset.etag in asset_etags(request.headers.get("if-none-match", "")):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=media_type, headers=headers)
