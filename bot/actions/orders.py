"""The demo store's business actions, as rasa-sdk `Action`s: any Rasa action server (or
csbot's in-process runner) can run them.

Each is constructed with the orders database it reads. An order is looked up by number
*and* the conversation's email: a number that does not exist and one that belongs to
another email get the same answer, and nothing of the other order is said.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.actions.backend import Order, OrdersDatabase

RETURN_WINDOW_DAYS = 30


def order_number(value: str | None) -> str | None:
    """The digits of an order slot ("#40318275", "ORD-40318275", "40318275")."""
    if not value:
        return None
    digits = re.sub(r"\D", "", value)
    return digits or None


class _OrderAction(Action):
    """Looks the conversation's order up for its email, then answers about it."""

    action_name = ""

    def __init__(self, orders: OrdersDatabase):
        self.orders = orders

    def name(self) -> str:
        return self.action_name

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[EventType]:
        number = order_number(tracker.get_slot("order_id"))
        email = tracker.get_slot("email")
        if number is None:
            dispatcher.utter_message(text="Could you tell me your order number?")
            return []
        if not email:
            dispatcher.utter_message(text="Could you tell me the email address on your account?")
            return []
        order = self.orders.order_for(number, email)
        if order is None:
            dispatcher.utter_message(
                text=(
                    f"I couldn't find order #{number} for {email}. Please check the order number in your "
                    "confirmation email, or the email address you ordered with."
                )
            )
            # forget the number, so the next one the customer gives is looked up afresh
            return [SlotSet("order_id", None)]
        return [SlotSet("order_status", order.status), *self.answer(dispatcher, order)]

    def answer(self, dispatcher: CollectingDispatcher, order: Order) -> list[EventType]:
        """What this action says and does about the customer's own order (found by number
        and email above); each action below defines it."""
        raise NotImplementedError(f"{type(self).__name__} must define answer()")


def _items(order: Order) -> str:
    return ", ".join(order.items)


class OrderStatusAction(_OrderAction):
    action_name = "action_order_status"

    def answer(self, dispatcher: CollectingDispatcher, order: Order) -> list[EventType]:
        head = f"Order #{order.number} ({_items(order)})"
        if order.status in ("processing", "packed"):
            doing = "packed" if order.status == "packed" else "prepared"
            text = f"{head} was placed on {order.placed} and is being {doing}; it hasn't shipped yet."
        elif order.status == "shipped":
            text = f"{head} has shipped"
            if order.carrier:
                text += f" with {order.carrier}"
            if order.tracking:
                text += f", tracking number {order.tracking}"
            if order.estimated_delivery:
                text += f"; estimated delivery {order.estimated_delivery}"
            text += "."
        elif order.status == "delivered":
            text = f"{head} was delivered" + (f" on {order.delivered}" if order.delivered else "") + "."
        elif order.status == "cancelled":
            text = f"{head} was cancelled; nothing was shipped."
        else:
            text = f"{head} was returned to us."
        dispatcher.utter_message(text=text)
        return []


class CancelOrderAction(_OrderAction):
    action_name = "action_cancel_order"

    def answer(self, dispatcher: CollectingDispatcher, order: Order) -> list[EventType]:
        if order.status == "processing":
            self.orders.set_status(order.number, "cancelled")
            dispatcher.utter_message(
                text=f"Order #{order.number} is cancelled. The refund goes back to your original payment method."
            )
            return [SlotSet("order_status", "cancelled")]
        if order.status == "cancelled":
            dispatcher.utter_message(text=f"Order #{order.number} is already cancelled.")
        elif order.status == "packed":
            dispatcher.utter_message(
                text=f"Order #{order.number} is already packed, so it can't be cancelled; "
                "once it arrives you can return it.",
                buttons=[{"title": "Start a return", "payload": "I want to return it"}],
            )
        else:
            done = "been returned" if order.status == "returned" else "shipped"
            dispatcher.utter_message(
                text=f"Order #{order.number} has already {done}, so it can't be cancelled; you can return it instead.",
                buttons=[{"title": "Start a return", "payload": "I want to return it"}],
            )
        return []


class StartReturnAction(_OrderAction):
    action_name = "action_start_return"

    def __init__(self, orders: OrdersDatabase, today: date | None = None):
        super().__init__(orders)
        self.today = today

    def answer(self, dispatcher: CollectingDispatcher, order: Order) -> list[EventType]:
        if order.status != "delivered":
            reason = {
                "returned": "has already been returned",
                "cancelled": "was cancelled",
            }.get(order.status, "hasn't been delivered yet")
            dispatcher.utter_message(text=f"Order #{order.number} {reason}, so there is nothing to return.")
            return []
        delivered = date.fromisoformat(order.delivered) if order.delivered else None
        if delivered and self.today and self.today > delivered + timedelta(days=RETURN_WINDOW_DAYS):
            dispatcher.utter_message(
                text=f"Order #{order.number} was delivered on {order.delivered}, more than "
                f"{RETURN_WINDOW_DAYS} days ago, so it is past the return window."
            )
            return []
        dispatcher.utter_message(
            text=(
                f"I've started a return for order #{order.number} ({_items(order)}). The return label is on its way "
                "to your email; items must be unused and in their original packaging."
            )
        )
        return [SlotSet("return_started", order.number)]


class CheckRefundAction(_OrderAction):
    action_name = "action_check_refund"

    def answer(self, dispatcher: CollectingDispatcher, order: Order) -> list[EventType]:
        refund = self.orders.refund_for(order.number)
        if refund is None:
            dispatcher.utter_message(text=f"There is no refund on order #{order.number} yet; it is {order.status}.")
        elif refund.status == "issued":
            dispatcher.utter_message(
                text=f"A refund of ${refund.amount_usd:,.2f} for order #{order.number} was issued on {refund.date}"
                + (f" to your {refund.card}." if refund.card else ".")
            )
        else:
            dispatcher.utter_message(
                text=f"We received the return of order #{order.number} on {refund.date}; the refund of "
                f"${refund.amount_usd:,.2f} is issued once it has been inspected."
            )
        return [SlotSet("refund_status", refund.status if refund else "none")]


def order_actions(orders: OrdersDatabase, today: date | None = None) -> list[Action]:
    """The four demo actions, ready for `ActionExecutor.register_action`."""
    return [
        OrderStatusAction(orders),
        CancelOrderAction(orders),
        StartReturnAction(orders, today),
        CheckRefundAction(orders),
    ]
