"""Small helpers the platform adapters share for reading webhook bodies and shaping
replies: platforms send JSON whose optional parts may be absent or of another shape, and
cap how long one message may be."""

from __future__ import annotations

import json
from typing import Any

from pydantic import SecretStr

from bot.channels.base import BadPayloadError


def json_object(platform: str, body: bytes) -> dict[str, Any]:
    """The webhook body as a JSON object, or `BadPayloadError` (400) when it is not one."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as e:
        raise BadPayloadError(f"{platform} webhook body is not JSON ({e}); the platform sends a JSON object") from None
    if not isinstance(data, dict):
        raise BadPayloadError(f"{platform} webhook body is JSON but not an object; the platform sends an object")
    return data


def obj(value: object) -> dict[str, Any]:
    """A JSON object, or {} for anything else: a field the platform did not send, or sent
    in a shape we do not know, reads as empty and the event is ignored, never an error."""
    return value if isinstance(value, dict) else {}


def objects(value: object) -> list[dict[str, Any]]:
    """The objects in a JSON list, skipping anything else."""
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]


def text_of(value: object) -> str | None:
    """A string that is not blank, or None."""
    return value if isinstance(value, str) and value.strip() else None


def id_of(value: object) -> str | None:
    """A platform id (a string, or an integer as Telegram sends them) as text, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    return value if isinstance(value, str) and value else None


def split_text(text: str, limit: int) -> list[str]:
    """`text` in pieces of at most `limit` characters, cut at a line break or a space
    where one is near, so that a long reply arrives whole instead of being refused by
    the platform. Never returns an empty list."""
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = rest.rfind("\n", limit // 2, limit + 1)
        if cut < 0:
            cut = rest.rfind(" ", limit // 2, limit + 1)
        if cut < 0:
            cut = limit
        piece = rest[:cut].rstrip()
        if piece:
            pieces.append(piece)
        rest = rest[cut:].lstrip()
    if rest or not pieces:
        pieces.append(rest)
    return pieces


def truncate(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, the cut marked with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def truncate_utf8(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes without splitting a character."""
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def secret_value(value: SecretStr | None) -> str | None:
    """A secret setting's text, or None when it is unset or empty (an empty secret is
    no secret: the channel stays off rather than accepting an empty signature key)."""
    if value is None:
        return None
    return value.get_secret_value() or None
