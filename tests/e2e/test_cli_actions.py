"""Business actions end to end: `csbot build` turns data/orders.json into the workspace's
orders database, and `csbot ask` answers an order question from it once the customer has
given the order's email."""

import sqlite3

import pytest

from tests.helpers import last_json, run_csbot

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def ask(workspace, text, conversation=None):
    args = ["ask", text] + (["--conversation", conversation] if conversation else [])
    return last_json(run_csbot(*args, workspace=workspace).stdout)


def test_the_build_writes_the_orders_database_and_the_routes(demo_workspace):
    assert (demo_workspace / "actions.json").is_file()
    with sqlite3.connect(demo_workspace / "orders.db") as db:
        row = db.execute("select email, status, tracking from orders where number = '40318275'").fetchone()
    assert row == ("jamie.rivera@example.com", "shipped", "PA1234567890")


def test_where_is_my_order_is_answered_from_the_demo_database_once_the_email_is_given(demo_workspace):
    first = ask(demo_workspace, "where is order #40318275?")
    assert (first["intent"], first["action"]) == ("order_status", "clarify")
    assert "email" in first["reply"].lower()

    second = ask(demo_workspace, "jamie.rivera@example.com", first["conversation_id"])
    assert (second["intent"], second["action"], second["composer"]) == (
        "order_status",
        "answer",
        "action:action_order_status",
    )
    assert second["reply"] == (
        "Order #40318275 (desk lamp, set of mugs) has shipped with ParcelCo, tracking number PA1234567890; "
        "estimated delivery 2026-03-06."
    )
    assert second["slots"]["order_status"] == "shipped"


def test_an_order_of_another_email_is_not_shown(demo_workspace):
    first = ask(demo_workspace, "where is order #40318275?")
    second = ask(demo_workspace, "someone.else@example.org", first["conversation_id"])
    assert second["reply"].startswith("I couldn't find order #40318275 for someone.else@example.org.")
    assert "PA1234567890" not in second["reply"] and "ParcelCo" not in second["reply"]
