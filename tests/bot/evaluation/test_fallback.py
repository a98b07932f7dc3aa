"""bot.evaluation.fallback: the evaluations score what the live retrieval composer answers, with
placeholders kept as text."""

from __future__ import annotations

from bot.contracts import ComposeRequest, Slots
from bot.domain import Domain
from bot.evaluation.fallback import fallback_reply
from bot.settings import DialogueConfig
from retrieval.types import Hit, Unit

DOMAIN = Domain()


def request(*hits: Hit) -> ComposeRequest:
    return ComposeRequest("where is my order?", "order_status", (), hits, Slots({}))


def reply_unit(uid: str, reply: str, **extra: bool) -> Unit:
    return Unit(id=uid, kind="transcript", text="q", intent="order_status", reply=reply, extra=dict(extra))


def test_placeholders_stay_text_where_the_live_composer_would_ask_for_the_slot() -> None:
    hit = Hit(reply_unit("u1", "Order {{Order Number}} ships from {{Company Website}}."), 0.9)
    assert (
        fallback_reply(request(hit), DialogueConfig(), DOMAIN)
        == "Order {{Order Number}} ships from {{Company Website}}."
    )


def test_the_live_thresholds_and_skips_apply() -> None:
    weak = Hit(reply_unit("u1", "It ships today."), 0.2)
    assert fallback_reply(request(weak), DialogueConfig(answer_min_score=0.5), DOMAIN) == DOMAIN.unsure_message
    looked_up = Hit(reply_unit("u2", "It was delivered on 2026-03-02.", after_lookup=True), 0.9)
    policy = Hit(reply_unit("u3", "Standard delivery takes 3-5 business days."), 0.8)
    assert fallback_reply(request(looked_up, policy), DialogueConfig(), DOMAIN) == policy.unit.reply
