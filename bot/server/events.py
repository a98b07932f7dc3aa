"""Server-Sent Events on the wire: `event: NAME`, optional `id: N`, one `data: JSON` line
and a blank line per event; `: comment` lines keep idle connections open.

Why SSE and not WebSocket: a reply flows one way (server to browser), SSE is plain HTTP
(proxies, CORS, rate limits, auth and logs work unchanged), `Last-Event-ID` resumes a
live stream after a reconnect, and the widget reads a POSTed stream with fetch (an
EventSource cannot POST). Nothing the customer sends needs a socket of its own: each
message is one POST.
"""

from __future__ import annotations

import json
from typing import Any

MEDIA_TYPE = "text/event-stream"
# no caching, and no buffering by nginx-style proxies (a buffered stream arrives all at once)
HEADERS = {"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"}


def event(name: str, data: Any, event_id: int | str | None = None) -> bytes:
    """One event. `data` is JSON-encoded on one line (JSON escapes newlines), so no
    multi-line `data:` folding is ever needed."""
    if not name or any(c in name for c in "\r\n:"):
        raise ValueError(f"bad SSE event name {name!r}")
    lines = [f"event: {name}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def comment(text: str) -> bytes:
    """A comment line (ignored by clients): keeps proxies from closing an idle stream."""
    return f": {text.replace(chr(10), ' ').replace(chr(13), ' ')}\n\n".encode()
