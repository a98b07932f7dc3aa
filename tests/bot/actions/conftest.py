"""A small orders database on disk (the real SQLite file `csbot build` writes) for the
actions' tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.actions.backend import OrdersDatabase, build_orders_db
from tests.bot.actions.orders_data import ORDERS


@pytest.fixture
def orders_path(tmp_path: Path) -> Path:
    source = tmp_path / "orders.json"
    source.write_text(json.dumps(ORDERS), encoding="utf-8")
    build_orders_db(source, tmp_path / "orders.db")
    return tmp_path / "orders.db"


@pytest.fixture
def orders(orders_path: Path) -> OrdersDatabase:
    return OrdersDatabase(orders_path)
