"""The Telegram adapter on fixed Updates shaped like the Bot API's: the secret-token
check, which updates are customer turns, and the sendMessage calls a reply becomes."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from bot.channels.base import (
    ApiCall,
    BadPayloadError,
    Channel,
    InboundMessage,
    Outgoing,
    SignatureError,
    lower_headers,
)
from bot.channels.config import ChannelsConfig
from bot.channels.registry import enabled_channels
from bot.channels.telegram import TelegramChannel, callback_data, from_config
from tests.bot.channels.telegram_payloads import (
    BOT,
    BOT_TOKEN,
    CUSTOMER,
    PRIVATE_CHAT,
    SECRET,
    button_update,
    encode,
    text_update,
)

NOW = 1_700_000_000.0


def channel() -> TelegramChannel:
    return TelegramChannel(secret_token=SECRET, bot_token=BOT_TOKEN)


def test_it_is_a_channel():
    assert isinstance(channel(), Channel)
    assert channel().name == "telegram"


def test_the_secret_token_header_is_checked():
    good = lower_headers({"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"})
    channel().verify(good, b"{}", NOW)  # no exception
    with pytest.raises(SignatureError, match="wrong secret token"):
        channel().verify({"x-telegram-bot-api-secret-token": SECRET + "x"}, b"{}", NOW)
    with pytest.raises(SignatureError, match="without X-Telegram-Bot-Api-Secret-Token"):
        channel().verify({"content-type": "application/json"}, b"{}", NOW)
    with pytest.raises(SignatureError):
        channel().verify({"x-telegram-bot-api-secret-token": ""}, b"{}", NOW)


def test_telegram_has_no_handshake():
    assert channel().handshake("POST", {}, encode(text_update("hi"))) is None
    assert channel().handshake("GET", {"hub.mode": "subscribe"}, b"") is None


def test_a_text_message_is_a_turn_in_its_chat():
    [message] = channel().parse(encode(text_update("Where is my order?")))
    assert message == InboundMessage(
        platform="telegram",
        event_id="10000",
        external_id="1111111",
        address={"chat_id": 1111111},
        text="Where is my order?",
    )


def test_a_group_topic_message_is_answered_in_its_topic():
    group = {"id": -1001234567890, "title": "Support", "type": "supergroup", "is_forum": True}
    update = text_update("help", chat=group, message_thread_id=42, is_topic_message=True)
    [message] = channel().parse(encode(update))
    assert message.external_id == "-1001234567890"
    assert message.address == {"chat_id": -1001234567890, "message_thread_id": 42}
    [call] = channel().render(message.address, Outgoing("On it."))
    assert call.json == {"chat_id": -1001234567890, "message_thread_id": 42, "text": "On it."}


def test_a_pressed_button_is_its_text():
    keyboard = [
        [{"text": "Track my order", "callback_data": "Track my order"}],
        [{"text": "Talk to a person", "callback_data": "Talk to a person"}],
    ]
    [message] = channel().parse(encode(button_update("Talk to a person", keyboard)))
    assert (message.event_id, message.external_id, message.text) == ("10001", "1111111", "Talk to a person")
    assert message.address == {"chat_id": 1111111}


def test_a_long_button_goes_out_cut_and_comes_back_whole():
    long = "I would like to return the blue jacket I bought last week because it is too small — " * 2
    [call] = channel().render({"chat_id": 1111111}, Outgoing("Pick one", buttons=("Yes", long)))
    keyboard = call.json["reply_markup"]["inline_keyboard"]
    data = keyboard[1][0]["callback_data"]
    assert len(data.encode()) <= 64 and data.startswith("1:")
    assert keyboard[0][0] == {"text": "Yes", "callback_data": "Yes"}
    [message] = channel().parse(encode(button_update(data, keyboard)))
    assert message.text == long


def test_callback_data_never_splits_a_character():
    data = callback_data(3, "ü" * 40)  # 80 bytes
    assert data == "3:" + "ü" * 31  # 2 + 62 bytes
    assert len(data.encode()) == 64


def test_a_press_on_a_message_too_old_to_be_returned_answers_the_customer():
    [message] = channel().parse(encode(button_update("Track my order", keyboard=None)))
    assert message.text == "Track my order"
    assert message.address == {"chat_id": 1111111}


@pytest.mark.parametrize(
    "update",
    [
        {"update_id": 1, "edited_message": text_update("edited")["message"]},
        {"update_id": 2, "channel_post": {"message_id": 1, "chat": {"id": -100, "type": "channel"}, "text": "news"}},
        {"update_id": 3, "my_chat_member": {"chat": PRIVATE_CHAT, "from": CUSTOMER, "date": 1}},
        {"update_id": 4, "poll": {"id": "1", "question": "?", "options": []}},
        text_update("", update_id=5),
        {"update_id": 6, "message": {**text_update("x")["message"], "text": None, "photo": [{"file_id": "AgAD"}]}},
        {"update_id": 7, "message": {"message_id": 2, "from": CUSTOMER, "chat": PRIVATE_CHAT, "sticker": {}}},
        text_update("I am a bot too", update_id=8, **{"from": {**BOT, "id": 5}}),
        {"message": text_update("no update id")["message"]},
        {"update_id": 9, "message": "not an object"},
        {"update_id": 10, "message": {"message_id": 3, "from": CUSTOMER, "text": "no chat"}},
        button_update("   ", keyboard=[]),
    ],
    ids=[
        "edit",
        "channel-post",
        "member-update",
        "poll",
        "empty-text",
        "photo",
        "sticker",
        "other-bot",
        "no-update-id",
        "message-not-object",
        "no-chat",
        "blank-button",
    ],
)
def test_what_is_no_customer_text_is_ignored(update):
    assert channel().parse(encode(update)) == []


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_a_body_that_is_no_json_object_is_refused(body):
    with pytest.raises(BadPayloadError, match="telegram"):
        channel().parse(body)


def test_a_reply_is_one_send_message_call():
    calls = channel().render({"chat_id": 1111111}, Outgoing("Your order shipped yesterday."))
    assert calls == [
        ApiCall(
            method="POST",
            path=f"/bot{BOT_TOKEN}/sendMessage",
            json={"chat_id": 1111111, "text": "Your order shipped yesterday."},
            headers={},
        )
    ]


def test_quick_replies_are_an_inline_keyboard_one_button_a_row():
    [call] = channel().render({"chat_id": 7}, Outgoing("Did you mean", buttons=("Refunds", "Returns"), kind="reply"))
    assert call.json == {
        "chat_id": 7,
        "text": "Did you mean",
        "reply_markup": {
            "inline_keyboard": [
                [{"text": "Refunds", "callback_data": "Refunds"}],
                [{"text": "Returns", "callback_data": "Returns"}],
            ]
        },
    }


def test_a_long_reply_is_split_and_the_keyboard_rides_on_the_last_piece():
    text = ("word " * 1000).strip() + "\n" + ("more " * 100).strip()  # 5099 characters
    calls = channel().render({"chat_id": 7}, Outgoing(text, buttons=("OK",)))
    assert len(calls) == 2
    assert all(len(c.json["text"]) <= 4096 for c in calls)
    assert " ".join(c.json["text"] for c in calls).split() == text.split()
    assert "reply_markup" not in calls[0].json
    assert calls[1].json["reply_markup"] == {"inline_keyboard": [[{"text": "OK", "callback_data": "OK"}]]}


def test_agent_messages_render_like_replies():
    agent = channel().render({"chat_id": 7}, Outgoing("Hi, Dana from support here.", kind="agent"))
    assert [c.json for c in agent] == [{"chat_id": 7, "text": "Hi, Dana from support here."}]


def test_a_429_waits_as_long_as_telegram_says_in_the_body():
    body = (
        b'{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7","parameters":{"retry_after":7}}'
    )
    outcome = channel().outcome(429, {}, body)
    assert (outcome.ok, outcome.retry, outcome.retry_after) == (False, True, 7.0)
    header_wins = channel().outcome(429, {"Retry-After": "3"}, body)
    assert header_wins.retry_after == 3.0


def test_a_blocked_bot_is_not_retried_and_a_200_is_delivered():
    blocked = channel().outcome(403, {}, b'{"ok":false,"error_code":403,"description":"Forbidden: bot was blocked"}')
    assert (blocked.ok, blocked.retry) == (False, False)
    assert "bot was blocked" in blocked.error
    assert channel().outcome(200, {}, b'{"ok":true,"result":{}}').ok
    assert channel().outcome(502, {}, b"Bad Gateway").retry


def test_telegram_is_off_without_its_secret_token():
    assert from_config(ChannelsConfig()) is None
    assert from_config(ChannelsConfig(telegram_secret_token=SecretStr(""))) is None
    assert "telegram" not in enabled_channels(ChannelsConfig(telegram_bot_token=SecretStr(BOT_TOKEN)))


def test_the_settings_build_the_adapter():
    config = ChannelsConfig(telegram_secret_token=SecretStr(SECRET), telegram_bot_token=SecretStr(BOT_TOKEN))
    built = enabled_channels(config)["telegram"]
    built.verify({"x-telegram-bot-api-secret-token": SECRET}, b"{}", NOW)
    assert built.render({"chat_id": 1}, Outgoing("hi"))[0].path == f"/bot{BOT_TOKEN}/sendMessage"
    assert SECRET not in repr(built) and BOT_TOKEN not in repr(built)
