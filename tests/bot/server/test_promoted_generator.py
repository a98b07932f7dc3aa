"""The running service follows the model registry: a GPT-2 promoted with `csbot models
promote` while the server runs writes (or, rejected by the guard, is named in) the next
reply, and `csbot models retire` hands the next turn back to the retrieval composer, with no
restart."""

import pytest

from tests.bot.server.conftest import copy_workspace, live_server, quiet_settings
from tests.finetune.test_train import train_registered_generator
from tests.helpers import run_csbot

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

QUESTION = "what payment methods do you accept?"


def test_a_model_promoted_while_serving_answers_the_next_turn(demo_workspace, tiny_checkpoint, tmp_path):
    ws = copy_workspace(demo_workspace, tmp_path / "ws")
    model_id = train_registered_generator(ws, tiny_checkpoint, tmp_path)

    with live_server(quiet_settings(ws)) as live:
        conversation = live.new_conversation()

        def composer_of(reply: dict) -> str:
            """Who wrote a reply: the store knows (the public reply object does not say)."""
            with live.store() as store:
                [message] = [m for m in store.messages(conversation) if m["id"] == reply["message_id"]]
            return message["composer"]

        before = live.say(conversation, QUESTION).json()
        assert before["action"] == "answer" and composer_of(before) == "retrieval", before

        run_csbot("models", "promote", model_id, workspace=ws)
        during = live.say(conversation, QUESTION).json()
        # a one-layer GPT-2 trained for seconds may well be rejected by the guard: either
        # way the promoted generator took the turn, and the reply still answers
        assert "gpt2" in composer_of(during), during
        assert during["reply"], during

        run_csbot("models", "retire", workspace=ws)
        after = live.say(conversation, QUESTION).json()
        assert composer_of(after) == "retrieval", after
        assert live.client.get("/readyz").status_code == 200  # no reload, no restart
