"""The Messenger adapter on fixed webhooks shaped like Meta's: the app-secret signature,
the verify-token handshake, which `messaging` events are customer turns (echoes,
receipts and attachments are not), and the Send API calls a reply becomes."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from bot.channels.base import (
    ApiCall,
    BadPayloadError,
    Channel,
    InboundMessage,
    Outgoing,
    SignatureError,
    WebhookResult,
    lower_headers,
)
from bot.channels.config import ChannelsConfig
from bot.channels.messenger import MessengerChannel, from_config
from bot.channels.meta import hub_signature
from bot.channels.registry import enabled_channels
from tests.bot.channels.messenger_payloads import (
    APP_SECRET,
    MID,
    PAGE_ID,
    PAGE_TOKEN,
    PSID,
    VERIFY_TOKEN,
    from_customer,
    webhook,
)

NOW = 1_700_000_000.0
AUTH = {"Authorization": f"Bearer {PAGE_TOKEN}"}


def channel(verify_token: str | None = VERIFY_TOKEN) -> MessengerChannel:
    return MessengerChannel(app_secret=APP_SECRET, verify_token=verify_token, page_token=PAGE_TOKEN)


def test_it_is_a_channel():
    assert isinstance(channel(), Channel)
    assert channel().name == "messenger"


def test_the_signature_over_the_raw_bytes_is_checked():
    body = webhook(from_customer(message={"mid": MID, "text": "hello"}))
    channel().verify(lower_headers({"X-Hub-Signature-256": hub_signature(APP_SECRET, body)}), body, NOW)
    with pytest.raises(SignatureError, match="does not match"):
        channel().verify({"x-hub-signature-256": hub_signature(APP_SECRET, body + b" ")}, body, NOW)
    with pytest.raises(SignatureError, match="without X-Hub-Signature-256"):
        channel().verify({"x-hub-signature": "sha1=" + "0" * 40}, body, NOW)  # only the old SHA-1 header
    with pytest.raises(SignatureError, match="malformed"):
        channel().verify({"x-hub-signature-256": "sha1=" + "0" * 40}, body, NOW)


def test_the_subscription_handshake_echoes_the_challenge_with_its_own_token():
    query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "CHALLENGE_ACCEPTED"}
    assert channel().handshake("GET", query, b"") == WebhookResult(body="CHALLENGE_ACCEPTED")
    whatsapps = {**query, "hub.verify_token": "whatsapp-verify-me"}
    with pytest.raises(SignatureError, match="CSBOT_MESSENGER_VERIFY_TOKEN"):
        channel().handshake("GET", whatsapps, b"")
    with pytest.raises(SignatureError, match="set CSBOT_MESSENGER_VERIFY_TOKEN"):
        channel(verify_token=None).handshake("GET", query, b"")
    assert channel().handshake("GET", {}, b"") is None
    assert channel().handshake("POST", query, b"") is None


def test_a_text_message_is_a_turn_of_that_customer():
    [message] = channel().parse(webhook(from_customer(message={"mid": MID, "text": "Where is my order?"})))
    assert message == InboundMessage(
        platform="messenger",
        event_id=MID,
        external_id=f"{PAGE_ID}:{PSID}",
        address={"psid": PSID, "page_id": PAGE_ID},
        text="Where is my order?",
    )


def test_a_quick_reply_comes_back_as_its_full_payload():
    button = "Talk to a person about my refund"
    [call] = channel().render({"psid": PSID}, Outgoing("Anything else?", buttons=(button,)))
    [quick] = call.json["message"]["quick_replies"]
    pressed = {"mid": MID, "text": quick["title"], "quick_reply": {"payload": quick["payload"]}}
    [message] = channel().parse(webhook(from_customer(message=pressed)))
    assert message.text == button


def test_a_postback_is_a_turn_with_its_title():
    postback = {"title": "Get Started", "payload": "GET_STARTED", "mid": "m_postback_1"}
    [message] = channel().parse(webhook(from_customer(postback=postback)))
    assert (message.event_id, message.text) == ("m_postback_1", "Get Started")
    untitled = {"payload": "Track my order"}  # an older postback: no title, no mid
    [older] = channel().parse(webhook(from_customer(postback=untitled)))
    assert (older.event_id, older.text) == (f"postback:{PSID}:1458692752478", "Track my order")


def test_several_events_in_one_delivery_are_several_turns():
    events = [
        from_customer(message={"mid": "m_1", "text": "first"}),
        {**from_customer(message={"mid": "m_2", "text": "second"}), "sender": {"id": "777"}},
    ]
    assert [(m.event_id, m.external_id, m.text) for m in channel().parse(webhook(*events))] == [
        ("m_1", f"{PAGE_ID}:{PSID}", "first"),
        ("m_2", f"{PAGE_ID}:777", "second"),
    ]


def test_echoes_of_our_own_messages_are_ignored():
    echo = {
        "sender": {"id": PAGE_ID},
        "recipient": {"id": PSID},
        "timestamp": 1458692752478,
        "message": {"is_echo": True, "app_id": 1517776481860111, "metadata": "", "mid": "m_echo", "text": "Hi!"},
    }
    assert channel().parse(webhook(echo)) == []


@pytest.mark.parametrize(
    "event",
    [
        from_customer(delivery={"mids": [MID], "watermark": 1458668856253}),
        from_customer(read={"watermark": 1458668856253}),
        from_customer(reaction={"reaction": "love", "emoji": "❤", "action": "react", "mid": MID}),
        from_customer(message={"mid": MID, "attachments": [{"type": "image", "payload": {"url": "https://x/y.jpg"}}]}),
        from_customer(message={"mid": MID, "sticker_id": 369239263222822, "attachments": [{"type": "image"}]}),
        from_customer(message={"text": "no mid"}),
        from_customer(message={"mid": MID, "text": "  "}),
        from_customer(postback={"title": "", "payload": ""}),
        from_customer(optin={"ref": "landing"}),
        {"recipient": {"id": PAGE_ID}, "message": {"mid": MID, "text": "no sender"}},
        {"sender": {"id": PSID}, "postback": {"payload": "no mid, no timestamp"}},
    ],
    ids=[
        "delivery",
        "read",
        "reaction",
        "image",
        "sticker",
        "no-mid",
        "blank-text",
        "empty-postback",
        "optin",
        "no-sender",
        "undedupable-postback",
    ],
)
def test_what_is_no_customer_text_is_ignored(event):
    assert channel().parse(webhook(event)) == []


def test_other_objects_are_ignored():
    instagram = {
        "object": "instagram",
        "entry": [{"id": "1", "messaging": [from_customer(message={"mid": "m", "text": "x"})]}],
    }
    assert channel().parse(json.dumps(instagram).encode()) == []
    assert channel().parse(json.dumps({"object": "page", "entry": [{"id": PAGE_ID, "changes": []}]}).encode()) == []


@pytest.mark.parametrize("body", [b"not json", b"[{}]", b"42"])
def test_a_body_that_is_no_json_object_is_refused(body):
    with pytest.raises(BadPayloadError, match="messenger"):
        channel().parse(body)


def test_a_reply_is_one_send_api_call():
    calls = channel().render({"psid": PSID, "page_id": PAGE_ID}, Outgoing("Your order shipped."))
    assert calls == [
        ApiCall(
            method="POST",
            path="/me/messages",
            json={"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "message": {"text": "Your order shipped."}},
            headers=AUTH,
        )
    ]


def test_quick_replies_carry_a_short_title_and_the_full_text():
    [call] = channel().render(
        {"psid": PSID}, Outgoing("Did you mean", buttons=("Refunds", "Returns and exchanges policy"))
    )
    assert call.json["message"] == {
        "text": "Did you mean",
        "quick_replies": [
            {"content_type": "text", "title": "Refunds", "payload": "Refunds"},
            {"content_type": "text", "title": "Returns and exchang…", "payload": "Returns and exchanges policy"},
        ],
    }


def test_more_than_thirteen_quick_replies_are_numbered_text():
    buttons = tuple(f"Option {i}" for i in range(1, 15))
    [call] = channel().render({"psid": PSID}, Outgoing("Choose", buttons=buttons))
    assert "quick_replies" not in call.json["message"]
    assert call.json["message"]["text"].startswith("Choose\n\n1. Option 1\n2. Option 2")
    assert call.json["message"]["text"].endswith("14. Option 14")
    [thirteen] = channel().render({"psid": PSID}, Outgoing("Choose", buttons=buttons[:13]))
    assert len(thirteen.json["message"]["quick_replies"]) == 13


def test_a_long_reply_is_split_and_the_quick_replies_ride_on_the_last_piece():
    text = "\n".join(f"Line {i} of a long policy answer." for i in range(120))  # about 3900 characters
    calls = channel().render({"psid": PSID}, Outgoing(text, buttons=("Thanks",)))
    assert len(calls) == 2
    assert all(len(c.json["message"]["text"]) <= 2000 for c in calls)
    assert "\n".join(c.json["message"]["text"] for c in calls) == text
    assert "quick_replies" not in calls[0].json["message"]
    assert calls[1].json["message"]["quick_replies"][0]["payload"] == "Thanks"


def test_handoff_notices_render_like_replies():
    [call] = channel().render({"psid": PSID}, Outgoing("A person will take over shortly.", kind="handoff"))
    assert call.json["message"] == {"text": "A person will take over shortly."}


def test_page_throttling_is_retried():
    limited = b'{"error":{"message":"(#613) Calls to this api have exceeded the rate limit.","code":613}}'
    assert channel().outcome(400, {}, limited).retry
    gone = b'{"error":{"message":"(#551) This person isn\'t available right now.","code":551}}'
    assert channel().outcome(400, {}, gone).retry is False
    assert channel().outcome(503, {"Retry-After": "12"}, b"").retry_after == 12.0


def test_messenger_is_off_without_its_app_secret():
    assert from_config(ChannelsConfig(messenger_page_token=SecretStr(PAGE_TOKEN))) is None
    assert "messenger" not in enabled_channels(ChannelsConfig())


def test_the_settings_build_the_adapter():
    config = ChannelsConfig(
        messenger_app_secret=SecretStr(APP_SECRET),
        messenger_verify_token=SecretStr(VERIFY_TOKEN),
        messenger_page_token=SecretStr(PAGE_TOKEN),
    )
    built = enabled_channels(config)["messenger"]
    body = webhook(from_customer(message={"mid": MID, "text": "hello"}))
    built.verify({"x-hub-signature-256": hub_signature(APP_SECRET, body)}, body, NOW)
    assert built.render({"psid": PSID}, Outgoing("hi"))[0].headers == AUTH
    assert APP_SECRET not in repr(built) and PAGE_TOKEN not in repr(built)
