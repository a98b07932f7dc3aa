"""The WhatsApp Cloud API adapter on fixed webhooks shaped like Meta's: the app-secret
signature over the raw bytes, the verify-token handshake, which entries are customer
turns, and the Graph API calls a reply becomes."""

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
from bot.channels.meta import hub_signature
from bot.channels.registry import enabled_channels
from bot.channels.whatsapp import WhatsAppChannel, from_config
from tests.bot.channels.whatsapp_payloads import (
    ACCESS_TOKEN,
    APP_SECRET,
    PHONE_NUMBER_ID,
    VERIFY_TOKEN,
    WA_ID,
    WAMID,
    incoming,
    webhook,
)

NOW = 1_700_000_000.0


def channel(verify_token: str | None = VERIFY_TOKEN) -> WhatsAppChannel:
    return WhatsAppChannel(app_secret=APP_SECRET, verify_token=verify_token, access_token=ACCESS_TOKEN)


def test_it_is_a_channel():
    assert isinstance(channel(), Channel)
    assert channel().name == "whatsapp"


def test_the_signature_over_the_raw_bytes_is_checked():
    body = incoming({"type": "text", "text": {"body": "hi"}})
    good = lower_headers({"X-Hub-Signature-256": hub_signature(APP_SECRET, body)})
    channel().verify(good, body, NOW)  # no exception
    upper_hex = {"x-hub-signature-256": "sha256=" + hub_signature(APP_SECRET, body)[7:].upper()}
    channel().verify(upper_hex, body, NOW)
    with pytest.raises(SignatureError, match="does not match"):
        channel().verify(good, body.replace(b"hi", b"ho"), NOW)  # the body was changed
    with pytest.raises(SignatureError, match="does not match"):
        channel().verify({"x-hub-signature-256": hub_signature("another secret", body)}, body, NOW)
    with pytest.raises(SignatureError, match="without X-Hub-Signature-256"):
        channel().verify({}, body, NOW)
    with pytest.raises(SignatureError, match="malformed"):
        channel().verify({"x-hub-signature-256": hub_signature(APP_SECRET, body)[7:]}, body, NOW)
    with pytest.raises(SignatureError, match="does not match"):
        channel().verify({"x-hub-signature-256": "sha256=ünïcode"}, body, NOW)


def test_the_subscription_handshake_echoes_the_challenge():
    query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
    assert channel().handshake("GET", query, b"") == WebhookResult(body="1158201444", media_type="text/plain")


def test_a_wrong_or_unset_verify_token_is_refused():
    query = {"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1158201444"}
    with pytest.raises(SignatureError, match="CSBOT_WHATSAPP_VERIFY_TOKEN"):
        channel().handshake("GET", query, b"")
    empty = {**query, "hub.verify_token": ""}
    with pytest.raises(SignatureError, match="set CSBOT_WHATSAPP_VERIFY_TOKEN"):
        channel(verify_token=None).handshake("GET", empty, b"")


def test_a_handshake_without_challenge_or_of_another_mode_is_bad():
    with pytest.raises(BadPayloadError, match=r"hub\.challenge"):
        channel().handshake("GET", {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN}, b"")
    with pytest.raises(BadPayloadError, match=r"hub\.mode"):
        channel().handshake("GET", {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN}, b"")


def test_what_is_no_handshake_says_so():
    assert channel().handshake("GET", {}, b"") is None
    assert channel().handshake("GET", {"page": "2"}, b"") is None
    assert channel().handshake("POST", {}, incoming({"type": "text", "text": {"body": "hi"}})) is None


def test_a_text_message_is_a_turn_of_that_customer_on_that_number():
    [message] = channel().parse(incoming({"type": "text", "text": {"body": "Does it come in another color?"}}))
    assert message == InboundMessage(
        platform="whatsapp",
        event_id=WAMID,
        external_id=f"{PHONE_NUMBER_ID}:{WA_ID}",
        address={"phone_number_id": PHONE_NUMBER_ID, "to": WA_ID},
        text="Does it come in another color?",
    )


def test_a_pressed_reply_button_comes_back_whole():
    button = "Where is my order right now?"  # longer than a 20-character title
    [call] = channel().render({"phone_number_id": PHONE_NUMBER_ID, "to": WA_ID}, Outgoing("Pick", buttons=(button,)))
    reply = call.json["interactive"]["action"]["buttons"][0]["reply"]
    pressed = {"type": "interactive", "interactive": {"type": "button_reply", "button_reply": reply}}
    [message] = channel().parse(incoming(pressed))
    assert message.text == button


def test_a_list_row_or_a_foreign_button_is_its_title():
    row = {"type": "list_reply", "list_reply": {"id": "row-2", "title": "Returns", "description": "30 days"}}
    [from_list] = channel().parse(incoming({"type": "interactive", "interactive": row}))
    assert from_list.text == "Returns"
    theirs = {"type": "button_reply", "button_reply": {"id": "btn_7", "title": "Yes please"}}
    [from_button] = channel().parse(incoming({"type": "interactive", "interactive": theirs}))
    assert from_button.text == "Yes please"
    template = {"type": "button", "button": {"payload": "STOP", "text": "Stop promotions"}}
    [from_template] = channel().parse(incoming(template))
    assert from_template.text == "Stop promotions"


def test_several_messages_in_one_delivery_are_several_turns():
    items = [
        {"from": WA_ID, "id": "wamid.A", "timestamp": "1", "type": "text", "text": {"body": "first"}},
        {"from": "447700900123", "id": "wamid.B", "timestamp": "2", "type": "text", "text": {"body": "second"}},
    ]
    messages = channel().parse(webhook({"messages": items}))
    assert [(m.event_id, m.external_id, m.text) for m in messages] == [
        ("wamid.A", f"{PHONE_NUMBER_ID}:{WA_ID}", "first"),
        ("wamid.B", f"{PHONE_NUMBER_ID}:447700900123", "second"),
    ]


def test_delivery_receipts_are_ignored():
    statuses = [
        {
            "id": WAMID,
            "status": status,
            "timestamp": "1749416390",
            "recipient_id": WA_ID,
            "conversation": {"id": "CONVERSATION_ID", "origin": {"type": "service"}},
            "pricing": {"billable": True, "pricing_model": "CBP", "category": "service"},
        }
        for status in ("sent", "delivered", "read")
    ]
    assert channel().parse(webhook({"statuses": statuses})) == []


@pytest.mark.parametrize(
    "message",
    [
        {"type": "image", "image": {"caption": "my receipt", "mime_type": "image/jpeg", "sha256": "x", "id": "1"}},
        {"type": "audio", "audio": {"mime_type": "audio/ogg; codecs=opus", "id": "2", "voice": True}},
        {"type": "location", "location": {"latitude": 51.5, "longitude": -0.1}},
        {"type": "reaction", "reaction": {"message_id": WAMID, "emoji": "👍"}},
        {"type": "unsupported", "errors": [{"code": 131051, "title": "Message type unknown"}]},
        {"type": "text", "text": {"body": "   "}},
        {"type": "text"},
        {"type": "interactive", "interactive": {"type": "nfm_reply", "nfm_reply": {"response_json": "{}"}}},
    ],
    ids=["image", "voice", "location", "reaction", "unsupported", "blank-text", "no-body", "flow"],
)
def test_what_is_no_text_is_ignored(message):
    assert channel().parse(incoming(message)) == []


@pytest.mark.parametrize(
    "body",
    [
        {"object": "page", "entry": []},
        {"object": "whatsapp_business_account", "entry": "not a list"},
        {"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {"messages": []}}]}]},
        {"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "account_update", "value": {}}]}]},
    ],
    ids=["other-object", "entry-not-list", "no-metadata", "other-field"],
)
def test_unknown_shapes_and_events_are_ignored(body):
    assert channel().parse(json.dumps(body).encode()) == []


@pytest.mark.parametrize("body", [b"", b"{'single': 'quotes'}", b"[]", b"null"])
def test_a_body_that_is_no_json_object_is_refused(body):
    with pytest.raises(BadPayloadError, match="whatsapp"):
        channel().parse(body)


ADDRESS = {"phone_number_id": PHONE_NUMBER_ID, "to": WA_ID}
AUTH = {"Authorization": f"Bearer {ACCESS_TOKEN}"}


def test_a_reply_is_a_text_message_to_the_customer():
    calls = channel().render(ADDRESS, Outgoing("Your order shipped."))
    assert calls == [
        ApiCall(
            method="POST",
            path=f"/{PHONE_NUMBER_ID}/messages",
            json={
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": WA_ID,
                "type": "text",
                "text": {"body": "Your order shipped."},
            },
            headers=AUTH,
        )
    ]


def test_up_to_three_quick_replies_are_reply_buttons():
    [call] = channel().render(ADDRESS, Outgoing("Did you mean", buttons=("Refunds", "Returns and exchanges policy")))
    assert call.json["type"] == "interactive"
    assert call.json["interactive"] == {
        "type": "button",
        "body": {"text": "Did you mean"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": "csbot:Refunds", "title": "Refunds"}},
                {
                    "type": "reply",
                    "reply": {"id": "csbot:Returns and exchanges policy", "title": "Returns and exchang…"},
                },
            ]
        },
    }
    assert all(len(b["reply"]["title"]) <= 20 for b in call.json["interactive"]["action"]["buttons"])


def test_more_than_three_quick_replies_are_numbered_text():
    [call] = channel().render(ADDRESS, Outgoing("Choose", buttons=("A", "B", "C", "D")))
    assert call.json["type"] == "text"
    assert call.json["text"] == {"body": "Choose\n\n1. A\n2. B\n3. C\n4. D"}


def test_titles_that_would_collide_once_cut_are_numbered_text():
    buttons = ("Tell me about returns", "Tell me about refunds")  # distinct when cut to 20
    [call] = channel().render(
        ADDRESS, Outgoing("Which?", buttons=("Tell me about a thing 1", "Tell me about a thing 2"))
    )
    assert call.json["type"] == "text"
    [distinct] = channel().render(ADDRESS, Outgoing("Which?", buttons=buttons))
    assert distinct.json["type"] == "interactive"


def test_a_long_reply_is_split_into_text_messages():
    text = "x" * 5000
    calls = channel().render(ADDRESS, Outgoing(text, buttons=("Yes",)))  # body over 1024: no buttons
    assert [len(c.json["text"]["body"]) for c in calls] == [4096, 5000 - 4096 + len("\n\n1. Yes")]
    assert calls[-1].json["text"]["body"].endswith("\n\n1. Yes")


def test_without_an_access_token_no_authorization_is_sent():
    bare = WhatsAppChannel(app_secret=APP_SECRET)
    assert bare.render(ADDRESS, Outgoing("hi"))[0].headers == {}


def test_throttling_answers_are_retried_and_others_are_not():
    throttled = b'{"error":{"message":"(#130429) Rate limit hit","type":"OAuthException","code":130429}}'
    assert channel().outcome(400, {}, throttled).retry
    transient = b'{"error":{"message":"Service temporarily unavailable","code":2,"is_transient":true}}'
    assert channel().outcome(400, {}, transient).retry
    window = b'{"error":{"message":"Re-engagement message","code":131047,"is_transient":false}}'
    closed = channel().outcome(400, {}, window)
    assert (closed.ok, closed.retry) == (False, False)
    assert "Re-engagement" in closed.error
    assert channel().outcome(400, {}, b"<html>bad</html>").retry is False
    assert channel().outcome(200, {}, b'{"messages":[{"id":"wamid.X"}]}').ok


def test_whatsapp_is_off_without_its_app_secret():
    assert from_config(ChannelsConfig(whatsapp_verify_token=SecretStr(VERIFY_TOKEN))) is None
    assert "whatsapp" not in enabled_channels(ChannelsConfig(whatsapp_app_secret=SecretStr("")))


def test_the_settings_build_the_adapter():
    config = ChannelsConfig(
        whatsapp_app_secret=SecretStr(APP_SECRET),
        whatsapp_verify_token=SecretStr(VERIFY_TOKEN),
        whatsapp_access_token=SecretStr(ACCESS_TOKEN),
    )
    built = enabled_channels(config)["whatsapp"]
    body = incoming({"type": "text", "text": {"body": "hi"}})
    built.verify({"x-hub-signature-256": hub_signature(APP_SECRET, body)}, body, NOW)
    query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "42"}
    assert built.handshake("GET", query, b"") == WebhookResult(body="42")
    assert built.render(ADDRESS, Outgoing("hi"))[0].headers == AUTH
    assert APP_SECRET not in repr(built) and ACCESS_TOKEN not in repr(built)
