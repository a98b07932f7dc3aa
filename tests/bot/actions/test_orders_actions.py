"""The demo store's actions, run through the real in-process runner (rasa-sdk's
ActionExecutor) on a real orders file: each answer, and never a word of another
customer's order."""

from __future__ import annotations

from datetime import date

import pytest

from bot.actions.backend import OrdersDatabase
from bot.actions.contract import ActionResult
from bot.actions.orders import order_actions, order_number
from bot.actions.runner import ActionRunner
from bot.settings import ActionsConfig
from tests.bot.actions.orders_data import MINE, THEIR_FACTS, THEIRS


@pytest.fixture
def runner(orders: OrdersDatabase):
    r = ActionRunner(ActionsConfig(timeout_s=10), order_actions(orders, today=date(2026, 3, 12)))
    yield r
    r.close()


def run(runner: ActionRunner, action: str, order_id: str | None, email: str | None = MINE) -> ActionResult:
    slots = {"order_id": order_id, "email": email}
    return runner.run(action, sender_id="conv-1", slots=slots, text=f"about {order_id}", intent="order_status")


def test_order_numbers_are_read_in_every_form_customers_give():
    assert [order_number(v) for v in ("#40318275", "ORD-40318275", "40318275", "", None)] == [
        "40318275",
        "40318275",
        "40318275",
        None,
        None,
    ]


def test_order_status_of_a_shipped_order_names_carrier_tracking_and_eta(runner):
    result = run(runner, "action_order_status", "#40318275")
    assert result.reply == (
        "Order #40318275 (desk lamp) has shipped with ParcelCo, tracking number PA1234567890; "
        "estimated delivery 2026-03-06."
    )
    assert result.slots == {"order_status": "shipped"}


def test_the_email_matches_whatever_its_case(runner):
    assert "PA1234567890" in run(runner, "action_order_status", "40318275", email="Ada@Example.COM").reply


@pytest.mark.parametrize(
    "action", ["action_order_status", "action_cancel_order", "action_start_return", "action_check_refund"]
)
def test_another_customers_order_gets_the_unknown_order_answer_and_none_of_its_data(runner, action):
    theirs = run(runner, action, "#55555555")
    unknown = run(runner, action, "#99999999")
    assert theirs.reply == unknown.reply.replace("99999999", "55555555")
    assert theirs.reply.startswith(f"I couldn't find order #55555555 for {MINE}.")
    for fact in (*THEIR_FACTS, THEIRS):
        assert fact not in theirs.reply
    # the number is let go, so the customer can give the right one
    assert theirs.slots == {"order_id": None}


def test_an_action_without_the_email_asks_for_it_and_looks_nothing_up(runner):
    result = run(runner, "action_order_status", "#40318275", email=None)
    assert result.reply == "Could you tell me the email address on your account?"
    assert result.slots == {}


def test_cancelling_an_order_that_has_not_shipped_cancels_it(runner, orders):
    result = run(runner, "action_cancel_order", "#11111111")
    assert result.reply.startswith("Order #11111111 is cancelled.")
    assert result.slots == {"order_status": "cancelled"}
    assert orders.order_for("11111111", MINE).status == "cancelled"
    assert run(runner, "action_cancel_order", "#11111111").reply == "Order #11111111 is already cancelled."


def test_a_shipped_order_is_not_cancelled_and_a_return_is_offered(runner, orders):
    result = run(runner, "action_cancel_order", "#40318275")
    assert "has already shipped, so it can't be cancelled" in result.reply
    assert result.buttons == ("Start a return",)
    assert orders.order_for("40318275", MINE).status == "shipped"


def test_a_return_starts_for_a_delivered_order_and_not_for_one_in_transit(runner):
    started = run(runner, "action_start_return", "#22222222")
    assert started.reply.startswith("I've started a return for order #22222222 (kettle, toaster).")
    assert started.slots == {"order_status": "delivered", "return_started": "22222222"}
    in_transit = run(runner, "action_start_return", "#40318275")
    assert in_transit.reply == "Order #40318275 hasn't been delivered yet, so there is nothing to return."


def test_a_return_past_the_window_is_refused(orders):
    later = ActionRunner(ActionsConfig(), order_actions(orders, today=date(2026, 5, 1)))
    try:
        assert "past the return window" in run(later, "action_start_return", "#22222222").reply
    finally:
        later.close()


def test_a_refund_check_says_what_was_issued_and_when(runner):
    issued = run(runner, "action_check_refund", "#33333333")
    assert issued.reply == "A refund of $40.00 for order #33333333 was issued on 2026-03-10 to your Visa ending 4242."
    assert issued.slots["refund_status"] == "issued"
    none = run(runner, "action_check_refund", "#40318275")
    assert none.reply == "There is no refund on order #40318275 yet; it is shipped."
    assert none.slots["refund_status"] == "none"
