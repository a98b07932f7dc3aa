"""The demo store's orders and accounts, as the actions read them: a SQLite file that
`csbot build` writes from the data directory's `orders.json`.

Reads open the file read-only, one connection per lookup, so that actions may run on any
thread. Lookups take the customer's email with the order number: an order is only ever
returned to the email it belongs to.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from bot.errors import CsbotError

ORDER_STATUSES = ("processing", "packed", "shipped", "delivered", "cancelled", "returned")


class OrdersBackendError(CsbotError):
    pass


@dataclass(frozen=True)
class Order:
    number: str
    email: str
    status: str
    placed: str
    items: tuple[str, ...]
    total_usd: float
    shipping: str
    carrier: str | None
    tracking: str | None
    shipped: str | None
    estimated_delivery: str | None
    delivered: str | None


@dataclass(frozen=True)
class Refund:
    order: str
    status: str  # "pending" (return received, refund not yet issued) or "issued"
    amount_usd: float
    date: str
    card: str | None


def build_orders_db(source: Path, target: Path) -> int:
    """Write `source` (orders.json: accounts, orders, refunds) into the SQLite file `target`,
    replacing it; returns the number of orders."""
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
        orders = [{**o, "items": json.dumps(o["items"])} for o in data["orders"]]
        accounts, refunds = data["accounts"], data.get("refunds", [])
    except (ValueError, KeyError, TypeError) as e:
        raise OrdersBackendError(
            f"{source}: not an orders file ({e}); regenerate it with `python data/generate.py`"
        ) from None
    bad = sorted({o.get("status") for o in orders} - set(ORDER_STATUSES), key=str)
    if bad:
        raise OrdersBackendError(f"{source}: unknown order status(es) {bad}; known: {', '.join(ORDER_STATUSES)}")
    tmp = target.with_suffix(".db.tmp")
    tmp.unlink(missing_ok=True)
    db = Database(tmp)
    try:
        db.table("accounts").insert_all(accounts, pk="email")
        db.table("orders").insert_all(orders, pk="number", foreign_keys=[("email", "accounts", "email")])
        db.table("refunds").insert_all(refunds, pk="order")
        db.table("orders").create_index(["email"])
    finally:
        db.close()
    tmp.replace(target)
    return len(orders)


class OrdersDatabase:
    """Lookups in the orders file. Constructed with its path; holds no connection."""

    def __init__(self, path: Path):
        if not path.is_file():
            raise OrdersBackendError(f"orders database {path} does not exist; run `csbot build` with an orders.json")
        self.path = path

    def _rows(self, sql: str, *params: object) -> list[dict[str, Any]]:
        with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute(sql, params)]

    def order_for(self, number: str, email: str) -> Order | None:
        """The order `number` if it belongs to `email` (case-insensitive); None when it does
        not exist and when it is someone else's: a caller cannot tell the two apart."""
        rows = self._rows("select * from orders where number = ? and lower(email) = lower(?)", number, email.strip())
        if not rows:
            return None
        row = rows[0]
        return Order(**{**row, "items": tuple(json.loads(row["items"]))})

    def refund_for(self, number: str) -> Refund | None:
        rows = self._rows('select * from refunds where "order" = ?', number)
        return Refund(**rows[0]) if rows else None

    def set_status(self, number: str, status: str) -> None:
        """A change the actions make (a cancellation, a started return)."""
        if status not in ORDER_STATUSES:
            raise OrdersBackendError(f"unknown order status {status!r}; known: {', '.join(ORDER_STATUSES)}")
        with sqlite3.connect(self.path) as conn:
            conn.execute("update orders set status = ? where number = ?", (status, number))
