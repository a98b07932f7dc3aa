"""End to end through the installed `csbot` CLI, on a workspace built from data/."""

import sqlite3

import pytest

from tests.helpers import last_json, run_csbot

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def ask(workspace, text, conversation=None):
    args = ["ask", text] + (["--conversation", conversation] if conversation else [])
    return last_json(run_csbot(*args, workspace=workspace).stdout)


def stored_messages(workspace, conversation_id):
    with sqlite3.connect(workspace / "store.db") as db:
        return db.execute(
            "select role, text, action, composer from messages where conversation_id = ? order by turn",
            [conversation_id],
        ).fetchall()


def test_ask_prints_every_documented_field(demo_workspace):
    result = ask(demo_workspace, "hello there")
    for key in ("reply", "intent", "confidence", "action", "sources", "conversation_id", "composer"):
        assert key in result
    assert result["action"] == "smalltalk" and result["intent"] == "greeting"


def test_order_status_with_the_order_number_given_in_a_later_turn(demo_workspace):
    first = ask(demo_workspace, "hi, where is my order?")
    assert first["intent"] == "order_status"
    assert first["action"] == "clarify"
    assert "order number" in first["reply"].lower()

    second = ask(demo_workspace, "sure, it's #40318275", first["conversation_id"])
    assert second["conversation_id"] == first["conversation_id"]
    assert second["intent"] == "order_status"
    # the order's details need the email on it (the demo orders database, data/actions.json)
    assert second["action"] == "clarify" and "email" in second["reply"].lower()
    assert second["slots"]["order_id"] == "#40318275"

    third = ask(demo_workspace, "jamie.rivera@example.com", first["conversation_id"])
    assert (third["intent"], third["action"], third["composer"]) == (
        "order_status",
        "answer",
        "action:action_order_status",
    )
    assert "{{" not in third["reply"] and "PA1234567890" in third["reply"]

    roles = [row[0] for row in stored_messages(demo_workspace, first["conversation_id"])]
    assert roles == ["customer", "bot"] * 3


def test_a_request_for_a_human_hands_over_and_is_recorded(demo_workspace):
    result = ask(demo_workspace, "I want to talk to a real person please")
    assert result["action"] == "handoff"
    with sqlite3.connect(demo_workspace / "store.db") as db:
        reasons = db.execute(
            "select reason from handoffs where conversation_id = ?", [result["conversation_id"]]
        ).fetchall()
    assert reasons and "human" in reasons[0][0]
    # the bot does not carry on as if nothing happened
    after = ask(demo_workspace, "hello?", result["conversation_id"])
    assert after["action"] == "handoff"


@pytest.mark.parametrize(
    "question", ["what's the weather going to be like in Paris tomorrow?", "should I buy Tesla stock this week?"]
)
def test_an_out_of_scope_question_gets_a_fallback_not_a_confident_wrong_answer(demo_workspace, question):
    result = ask(demo_workspace, question)
    assert result["out_of_scope"] is True
    assert result["action"] == "fallback"


def test_repeated_failure_hands_over(demo_workspace):
    first = ask(demo_workspace, "what's the weather going to be like in Paris tomorrow?")
    second = ask(demo_workspace, "who won the football match last night?", first["conversation_id"])
    assert second["action"] == "handoff"


def test_a_policy_question_is_answered_from_retrieved_replies(demo_workspace):
    result = ask(demo_workspace, "what payment methods do you accept?")
    assert result["intent"] == "payment_methods"
    assert result["action"] == "answer" and result["composer"] == "retrieval"
    assert result["sources"][0]["score"] > 0.5


def test_chat_holds_a_conversation_over_stdin(demo_workspace):
    proc = run_csbot(
        "chat",
        "--debug",
        workspace=demo_workspace,
        stdin="hello\nwhere is my parcel?\nORD-40318275\njamie.rivera@example.com\n/quit\n",
    )
    assert "intent=greeting" in proc.stdout
    assert "intent=order_status" in proc.stdout
    assert "action=answer" in proc.stdout
    assert "conversation saved as" in proc.stdout


@pytest.mark.parametrize("text,expected", [("", "empty"), ("   ", "empty"), ("x" * 4001, "4000")])
def test_bad_messages_are_refused_and_nothing_is_stored(demo_workspace, text, expected):
    before = ask(demo_workspace, "hi")
    proc = run_csbot("ask", text, "--conversation", before["conversation_id"], workspace=demo_workspace, check=False)
    assert proc.returncode == 1
    assert expected in proc.stderr
    assert len(stored_messages(demo_workspace, before["conversation_id"])) == 2


def test_an_unknown_conversation_is_refused(demo_workspace):
    proc = run_csbot("ask", "hello", "--conversation", "no-such-id", workspace=demo_workspace, check=False)
    assert proc.returncode == 1
    assert "unknown conversation id 'no-such-id'" in proc.stderr


def test_a_missing_workspace_says_to_build_first(tmp_path):
    proc = run_csbot("ask", "hello", workspace=tmp_path / "nothing-here", check=False)
    assert proc.returncode == 1
    assert "run `csbot build" in proc.stderr
